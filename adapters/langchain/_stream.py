"""Streaming a program through LangChain: ``ProgramRunnable.stream`` / ``astream`` chunks.

The program's field events (``lmbridge.streaming``) become LangChain chunks that add up (``+``) to
what ``invoke`` returns:

* the output dict: ``AddableDict`` chunks; a text field arrives in pieces as the model writes it,
  a typed field (int, Literal, a model, ...) once, when its text is complete;
* ``output_key`` or a parser after the program: the one field's text in pieces (plain strings);
* a JSON parser after the program: the whole JSON once, at the end.

A text field's pieces are its final value: leading and trailing whitespace is held back until the
value goes on. Only the program's own output fields are streamed (a ReAct step's thoughts are not).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables.utils import AddableDict

from lmbridge import (
    ChainOfThought,
    FieldDelta,
    FieldValue,
    Module,
    ParseRetry,
    Predict,
    Prediction,
    Signature,
    StreamEnd,
    StreamEvent,
    streamify,
)

logger = logging.getLogger("lmbridge.adapters.langchain")


def events(program: Module, inputs: dict[str, Any]) -> Iterator[StreamEvent]:
    """The program's stream events, from sync code (a module without ``stream`` runs on a thread)."""
    if isinstance(program, (Predict, ChainOfThought)):
        return program.stream(**inputs)
    return _threaded(program, inputs)


def aevents(program: Module, inputs: dict[str, Any]) -> AsyncIterator[StreamEvent]:
    if isinstance(program, (Predict, ChainOfThought)):
        return program.astream(**inputs)
    return streamify(program)(**inputs)


def _threaded(program: Module, inputs: dict[str, Any]) -> Iterator[StreamEvent]:
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    ctx = contextvars.copy_context()

    async def consume() -> None:
        async for event in streamify(program)(**inputs):
            items.put(("event", event))

    def work() -> None:
        try:
            ctx.run(asyncio.run, consume())
        except BaseException as error:
            items.put(("error", error))
        else:
            items.put(("end", None))

    threading.Thread(target=work, name="lmbridge-stream", daemon=True).start()
    while True:
        kind, value = items.get()
        if kind == "event":
            yield value
        elif kind == "error":
            raise value
        else:
            return


class _Text:
    """The pieces of one text field. Whitespace at either end is held back, and so is a start that
    may still turn out to be a field label (a model that repeats ``Answer:`` after the prompt's cue)."""

    def __init__(self, labels: tuple[str, ...] = ()) -> None:
        self.sent = ""
        self.pending = ""
        self.broken = False
        self.labels = tuple(label.lower() for label in labels)

    def _maybe_label(self, text: str) -> bool:
        head = text.lower()
        return any(label.startswith(head) or head.startswith(label) for label in self.labels)

    def feed(self, delta: str) -> str:
        if self.broken:
            return ""
        text = self.pending + delta
        if not self.sent:
            text = text.lstrip()
            if self._maybe_label(text):
                self.pending = text
                return ""
        core = text.rstrip()
        self.pending = text[len(core):]
        self.sent += core
        return core

    def close(self, final: str, field: str) -> str:
        if final.startswith(self.sent):
            rest, self.sent = final[len(self.sent):], final
            return rest
        logger.warning("streamed text of %r differs from its final value (the answer was re-read)", field)
        return ""


class Chunker:
    """Turns stream events into the chunks ``ProgramRunnable`` yields for its output shape."""

    def __init__(self, runnable: Any, signature: type[Signature] | None) -> None:
        self.runnable = runnable
        self.shape: str = runnable.shape
        self.only: str | None = None
        if self.shape == "text" or runnable.output_key is not None:
            self.only = runnable.output_key or runnable._main_output(
                dict.fromkeys(signature.output_fields if signature is not None else ()))
        self.fields = set(signature.output_fields) if signature is not None else None
        self.text_fields = {n for n, f in signature.output_fields.items() if f.annotation is str} \
            if signature is not None else set()
        self.labels = tuple(f.label for f in signature.fields().values()) if signature is not None else ()
        self.texts: dict[str, _Text] = {}
        self.values: dict[str, Any] = {}
        self.owner: dict[str, str] = {}

    def _wanted(self, event: FieldDelta | FieldValue) -> bool:
        name = event.field
        if (self.only is not None and name != self.only) or (self.fields is not None and name not in self.fields):
            return False
        owner = self.owner.setdefault(name, event.predictor)
        if owner != event.predictor and name in self.texts:
            self.texts[name].broken = True  # another predictor writes a field of the same name
        return True

    def _chunk(self, name: str, value: Any) -> Any:
        return value if self.only is not None else AddableDict({name: value})

    def feed(self, event: StreamEvent) -> list[Any]:
        if self.shape == "json":
            return []
        if isinstance(event, ParseRetry):
            for text in self.texts.values():
                text.broken = True
            return []
        if isinstance(event, FieldDelta) and event.field in self.text_fields and self._wanted(event):
            piece = self.texts.setdefault(event.field, _Text(self.labels)).feed(event.delta)
            return [self._chunk(event.field, piece)] if piece else []
        if isinstance(event, FieldValue) and event.field not in self.text_fields and self._wanted(event) \
                and event.field not in self.values:
            self.values[event.field] = event.value
            return [self._shown(event.field, event.value)]
        return []

    def _shown(self, name: str, value: Any) -> Any:
        if self.shape == "text":
            from lmbridge.signatures import render

            return render(value)
        return self._chunk(name, value)

    def end(self, prediction: Prediction) -> list[Any]:
        if self.shape == "json":
            return [self.runnable._outputs(prediction)]
        out: list[Any] = []
        for name, value in prediction.items():
            if (self.only is not None and name != self.only) or name in self.values:
                continue
            if isinstance(value, str) and name in self.text_fields:
                rest = self.texts.setdefault(name, _Text()).close(value, name)
                if rest:
                    out.append(self._chunk(name, rest))
            else:
                out.append(self._shown(name, value))
        if self.runnable.include_usage and self.only is None:
            out.append(AddableDict({"usage": prediction.usage.to_dict()}))
        return out


def stream_program(runnable: Any, program: Module, inputs: dict[str, Any]) -> Iterator[Any]:
    chunker = Chunker(runnable, runnable._signature)
    for event in events(program, inputs):
        if isinstance(event, StreamEnd):
            yield from chunker.end(event.prediction)
        else:
            yield from chunker.feed(event)


async def astream_program(runnable: Any, program: Module, inputs: dict[str, Any]) -> AsyncIterator[Any]:
    chunker = Chunker(runnable, runnable._signature)
    async for event in aevents(program, inputs):
        chunks = chunker.end(event.prediction) if isinstance(event, StreamEnd) else chunker.feed(event)
        for chunk in chunks:
            yield chunk


__all__ = ["Chunker", "astream_program", "events", "stream_program"]
