"""A tiny OpenAI-compatible chat server on 127.0.0.1, scripted per request, for fault injection.

``FakeOpenAI`` serves ``POST /v1/chat/completions``. Each request takes the next ``Reply`` from
the script (the last one repeats when the script runs out). A reply can be a success, an error
status with a JSON error body and optional headers, or a delay before answering (to trip the
client's timeout), or native tool calls in OpenAI's shape (``calls``), or a raw body of any kind
(``raw``). Every request body is recorded in ``requests`` (``count`` says how many arrived), so a
test can check what was sent (``tools`` among it) and that a completed request was not sent again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    content: str = "ok"
    """The assistant message text of a 200 answer."""
    error: str = "scripted error"
    """The error message of a non-200 answer."""
    error_type: str = ""
    """The error body's "type"; by default the one an OpenAI-style server sends for the status."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    body: str | None = None
    """A raw response body sent instead of the JSON one (to test malformed answers)."""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """Tool calls of a 200 answer, as (name, arguments text) pairs."""
    cut_after: int | None = None
    """Streamed: drop the connection after this many chunks (a stream broken midway)."""


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
          429: "rate_limit_error"}


def ok(content: str = "ok") -> Reply:
    return Reply(200, content)


def fail(status: int, error: str = "scripted error", *, error_type: str = "", **headers: str) -> Reply:
    """An error answer; keyword arguments become headers (``Retry_After="0"`` -> ``Retry-After: 0``)."""
    return Reply(status, error=error, error_type=error_type,
                 headers={k.replace("_", "-"): v for k, v in headers.items()})


def raw(body: str, status: int = 200, **headers: str) -> Reply:
    """A raw body; keyword arguments become headers (``Content_Type="text/html"``)."""
    return Reply(status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})


def slow(seconds: float, content: str = "late") -> Reply:
    return Reply(200, content, delay=seconds)


def calls(*pairs: tuple[str, Any], content: str = "") -> Reply:
    """A 200 answer that calls tools: ``calls(("add", {"a": 1}))``; a str is sent as the raw arguments."""
    return Reply(200, content, tool_calls=[(name, args if isinstance(args, str) else json.dumps(args))
                                           for name, args in pairs])


class FakeOpenAI:
    """Start with ``with FakeOpenAI([...]) as server:``; ``server.base_url`` ends in ``/v1``."""

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script: list[Reply] = list(script or [ok()])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self, script: list[Reply]) -> None:
        """Replace the script and forget the requests received so far."""
        with self._lock:
            self.script = list(script) or [ok()]
            self.requests.clear()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": name, "arguments": arguments}}
                                 for i, (name, arguments) in enumerate(reply.tool_calls)]
    else:
        message["content"] = reply.content
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                     "message": message}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _chunks(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """A 200 answer as OpenAI stream chunks: the text 4 characters at a time, the tool calls, the
    finish reason, and a last chunk with the usage when ``stream_options.include_usage`` asks."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model", "fake")}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": reply.content[i:i + 4]} for i in range(0, len(reply.content), 4)]
    for i, (name, arguments) in enumerate(reply.tool_calls):
        deltas.append({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
        deltas.append({"tool_calls": [{"index": i, "function": {"arguments": arguments}}]})
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {},
                                        "finish_reason": "tool_calls" if reply.tool_calls else "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3,
                                                         "total_tokens": 10}})
    return chunks


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                return
            reply = server._next(body)
            if reply.delay:
                threading.Event().wait(reply.delay)  # not time.sleep: tests patch that to record backoff
            if reply.body is not None:
                self._send_bytes(reply.status, reply.body.encode(), reply.headers)
            elif reply.status == 200 and body.get("stream"):
                self._stream(_chunks(body, reply), reply.cut_after)
            elif reply.status == 200:
                self._send(200, _completion(body, reply), reply.headers)
            else:
                kind = reply.error_type or _TYPES.get(reply.status, "server_error")
                error = {"message": reply.error, "type": kind,
                         "code": str(reply.status)}
                self._send(reply.status, {"error": error}, reply.headers)

        def _stream(self, chunks: list[dict[str, Any]], cut_after: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
            try:
                for i, event in enumerate(events):
                    if cut_after is not None and i >= cut_after:
                        self.close_connection = True
                        self.wfile.write(b"5\r\nbroke")  # a chunk that never ends
                        self.wfile.flush()
                        return
                    data = event.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                if not any(k.lower() == "content-type" for k in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler
