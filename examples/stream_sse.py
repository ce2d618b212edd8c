"""Serve a program's answer as server-sent events while the model writes it, with the standard
library only (``http.server``): each field's text as it is written, each typed value as soon as it
is complete, then the whole prediction.

    python -m examples.stream_sse              # ChainOfThought on the embedded model, port 8765
    curl -N 'http://127.0.0.1:8765/?question=What+is+the+capital+of+France%3F'

The events on the wire::

    event: delta
    data: {"predictor": "predict", "field": "reasoning", "text": "France's capital"}

    event: value
    data: {"predictor": "predict", "field": "reasoning", "value": "France's capital is Paris."}

    event: end
    data: {"prediction": {"reasoning": "...", "answer": "Paris"}, "lm_calls": 1}

Any module works: ``lmbridge.streamify(program)`` streams each predictor it runs, under its name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import lmbridge


def sse(event: lmbridge.StreamEvent) -> bytes:
    """One streaming event as a server-sent event."""
    name: str
    data: dict[str, Any]
    if isinstance(event, lmbridge.FieldDelta):
        name, data = "delta", {"predictor": event.predictor, "field": event.field, "text": event.delta}
    elif isinstance(event, lmbridge.FieldValue):
        name, data = "value", {"predictor": event.predictor, "field": event.field, "value": event.value}
    elif isinstance(event, lmbridge.ParseRetry):
        name, data = "retry", {"predictor": event.predictor, "error": event.error}
    else:
        prediction = event.prediction
        name, data = "end", {"prediction": prediction.to_dict(), "lm_calls": prediction.usage.calls}
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def make_server(program: lmbridge.Module, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server whose ``GET /?field=value...`` streams ``program(**fields)`` as events."""
    stream: Callable[..., AsyncIterator[lmbridge.StreamEvent]] = lmbridge.streamify(program)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            inputs = dict(parse_qsl(urlsplit(self.path).query))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            asyncio.run(self._pump(inputs))

        async def _pump(self, inputs: dict[str, str]) -> None:
            try:
                async for event in stream(**inputs):
                    self.wfile.write(sse(event))
                    self.wfile.flush()
            except lmbridge.BridgeError as error:  # a documented failure: tell the client, end the stream
                message = json.dumps({"error": f"{type(error).__name__}: {error}"})
                self.wfile.write(f"event: error\ndata: {message}\n\n".encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", default="local/smollm2")
    args = parser.parse_args()
    lmbridge.configure(lm=lmbridge.LM(args.model, max_tokens=128))
    server = make_server(lmbridge.ChainOfThought("question -> answer"), port=args.port)
    print(f"streaming on http://127.0.0.1:{args.port}/?question=...")
    server.serve_forever()


if __name__ == "__main__":
    main()
