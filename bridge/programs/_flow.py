"""Predict's call, written once for sync and async (httpx's ``Auth.auth_flow`` is the model).

``Predict._flow`` is a generator: it yields the I/O it needs (``Ask`` an LM, ``Score`` the labels)
and the stream events it makes, receives each answer by ``send``, and returns the Prediction.
``drive`` runs it with the sync LM methods, ``adrive`` with the async ones; both yield the events
and end with ``StreamEnd(prediction)``, and ``run``/``arun`` keep only that prediction. Sync
callers never touch asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from lmbridge.formats import PromptFormat
from lmbridge.lm import BaseLM
from lmbridge.programs._streaming import FieldParser, StreamEnd, StreamEvent
from lmbridge.signatures import Signature
from lmbridge.types import Message, Prediction


@dataclass(frozen=True)
class Ask:
    """Ask the LM; streamed through ``parser`` (whose field events are passed on) when there is one.
    The flow receives the ``Completion``."""

    lm: BaseLM
    fmt: PromptFormat
    signature: type[Signature]
    messages: list[Message]
    params: dict[str, Any]
    parser: FieldParser | None


@dataclass(frozen=True)
class Score:
    """Score the labels instead of sampling text (sync work; async runs it on a worker thread).
    The flow receives the Prediction, or None when scoring does not apply."""

    call: Callable[[], Prediction | None]


Step = Ask | Score | StreamEvent
Flow = Generator[Step, Any, Prediction]


def drive(flow: Flow) -> Iterator[StreamEvent]:
    """Run ``flow`` with the sync LM methods."""
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            yield StreamEnd(done.value)
            return
        reply = None
        if isinstance(step, Score):
            reply = step.call()
        elif isinstance(step, Ask) and (parser := step.parser) is not None:
            for item in step.lm.stream(step.messages, step.params, signature=step.signature, fmt=step.fmt):
                if isinstance(item, str):
                    yield from parser.feed(item)
                else:
                    reply = item
        elif isinstance(step, Ask):
            reply = step.lm.complete(step.messages, step.params, signature=step.signature, fmt=step.fmt)
        else:
            yield step


async def adrive(flow: Flow) -> AsyncIterator[StreamEvent]:
    """Run ``flow`` with the async LM methods: the mirror of ``drive``, differing only in ``await``."""
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            yield StreamEnd(done.value)
            return
        reply = None
        if isinstance(step, Score):
            reply = await asyncio.to_thread(step.call)
        elif isinstance(step, Ask) and (parser := step.parser) is not None:
            async for item in step.lm.astream(step.messages, step.params, signature=step.signature, fmt=step.fmt):
                if isinstance(item, str):
                    for event in parser.feed(item):
                        yield event
                else:
                    reply = item
        elif isinstance(step, Ask):
            reply = await step.lm.acomplete(step.messages, step.params, signature=step.signature, fmt=step.fmt)
        else:
            yield step


def run(flow: Flow) -> Prediction:
    """The prediction ``flow`` returns, run with the sync LM methods (a plain call yields no event)."""
    for event in drive(flow):
        if isinstance(event, StreamEnd):
            return event.prediction
    raise AssertionError("a flow ends with its prediction")


async def arun(flow: Flow) -> Prediction:
    """The async twin of ``run``."""
    async for event in adrive(flow):
        if isinstance(event, StreamEnd):
            return event.prediction
    raise AssertionError("a flow ends with its prediction")
