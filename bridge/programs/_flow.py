"""Predict's call, written once for sync and async (httpx's ``Auth.auth_flow`` is the model).

``Predict._flow`` is a generator: it yields the I/O it needs (``Ask`` an LM, ``Score`` the labels)
and the stream events it makes, receives each answer by ``send``, and returns the Prediction.
A plain call's flow (no parser, no events) is run by ``run`` with the sync LM methods and by
``arun`` with the async ones, through the core's one flow loop (``lmbridge._drive``). A streamed
call's flow is run by ``drive``/``adrive``, which yield its events and end with
``StreamEnd(prediction)``. Sync callers never touch asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from lmbridge._drive import adrive as adrive_flow
from lmbridge._drive import drive as drive_flow
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


def _perform(step: Step) -> Any:
    if isinstance(step, Ask):
        return step.lm.complete(step.messages, step.params, signature=step.signature, fmt=step.fmt)
    if isinstance(step, Score):
        return step.call()
    return None  # a stream event: a plain call has no reader for it


def _aperform(step: Step) -> Awaitable[Any]:
    if isinstance(step, Ask):
        return step.lm.acomplete(step.messages, step.params, signature=step.signature, fmt=step.fmt)
    if isinstance(step, Score):
        return asyncio.to_thread(step.call)
    return _nothing()


async def _nothing() -> None:
    return None


def run(flow: Flow) -> Prediction:
    """The prediction ``flow`` returns, run with the sync LM methods (a plain call: no parser)."""
    return drive_flow(flow, _perform)


async def arun(flow: Flow) -> Prediction:
    """The async twin of ``run``."""
    return await adrive_flow(flow, _aperform)


# The streamed shells are generators that pass events out between steps, so they cannot be a
# ``perform`` of the one flow loop; they stream an ``Ask`` through its parser and leave every
# other step to ``_perform``. A step's error leaves the stream at once (it is not thrown in).
def drive(flow: Flow) -> Iterator[StreamEvent]:
    """Run ``flow`` with the sync LM methods, yielding its events, then ``StreamEnd(prediction)``."""
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            yield StreamEnd(done.value)
            return
        reply = None
        if isinstance(step, Ask) and (parser := step.parser) is not None:
            for item in step.lm.stream(step.messages, step.params, signature=step.signature, fmt=step.fmt):
                if isinstance(item, str):
                    yield from parser.feed(item)
                else:
                    reply = item
        elif isinstance(step, (Ask, Score)):
            reply = _perform(step)
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
        if isinstance(step, Ask) and (parser := step.parser) is not None:
            async for item in step.lm.astream(step.messages, step.params, signature=step.signature, fmt=step.fmt):
                if isinstance(item, str):
                    for event in parser.feed(item):
                        yield event
                else:
                    reply = item
        elif isinstance(step, (Ask, Score)):
            reply = await _aperform(step)
        else:
            yield step
