"""Sync and async written once: a request's whole course (cache, retries, backoff, storing) is a
generator, a *flow*, that yields the I/O it needs and receives the result; ``drive`` runs a flow with
plain calls and ``time.sleep``, ``adrive`` with awaits. Neither shell decides anything, and a sync
caller never touches asyncio (the model is httpx's ``Auth.auth_flow``).

A flow yields four kinds of step:

* ``Open(streamed, args)``: start one attempt, through the backend's ``send`` (whole) or
  ``send_stream`` (streamed); the shell sends back None;
* ``Pull()``: the next item of the attempt, ``str`` deltas then the ``RawResult``; ``END`` when the
  backend's stream stopped without one;
* ``Sleep(seconds)``: wait before the next attempt;
* ``Emit(item)``: hand ``item`` (a text delta or the ``Completion``) to the caller.

A backend's failure is thrown into the flow at the step that met it, so the flow alone decides what
is retried. ``tapped`` wraps a flow to watch what it emits and how it ends (tracing).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, Union

from lmbridge.lm._types import Completion, RawResult

Item = Union[str, Completion]


class Backend(Protocol):
    """The four hooks of ``BaseLM`` that a flow's shells call."""

    def send(self, *args: Any) -> RawResult: ...
    async def asend(self, *args: Any) -> RawResult: ...
    def send_stream(self, *args: Any) -> Iterator[str | RawResult]: ...
    def asend_stream(self, *args: Any) -> AsyncIterator[str | RawResult]: ...


@dataclass(frozen=True, slots=True)
class Open:
    backend: Backend
    streamed: bool
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Pull:
    pass


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    item: Item


Step = Union[Open, Pull, Sleep, Emit]
Flow = Generator[Step, Any, None]
END: Any = object()
"""What ``Pull`` receives when the backend's stream stopped without a ``RawResult``."""


def drive(flow: Flow) -> Iterator[Item]:
    """Run ``flow`` synchronously, yielding what it emits."""
    source: Iterator[str | RawResult] | None = None
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(step, Emit):
                yield step.item
                continue
            try:
                if isinstance(step, Open):
                    _close(source)
                    source = (step.backend.send_stream(*step.args) if step.streamed
                              else iter((step.backend.send(*step.args),)))
                elif isinstance(step, Pull):
                    reply = next(source, END) if source is not None else END
                else:
                    time.sleep(step.seconds)
            except Exception as exc:
                error = exc
    finally:
        _close(source)
        flow.close()


async def adrive(flow: Flow) -> AsyncIterator[Item]:
    """Run ``flow`` with awaits, yielding what it emits; ``drive``'s async twin."""
    source: AsyncIterator[str | RawResult] | None = None
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(step, Emit):
                yield step.item
                continue
            try:
                if isinstance(step, Open):
                    await _aclose(source)
                    source = (step.backend.asend_stream(*step.args) if step.streamed
                              else _one(await step.backend.asend(*step.args)))
                elif isinstance(step, Pull):
                    reply = await anext(source, END) if source is not None else END
                else:
                    await _sleep_async(step.seconds)
            except Exception as exc:
                error = exc
    finally:
        await _aclose(source)
        flow.close()


def last(items: Iterator[Item]) -> Completion:
    """The ``Completion`` a whole (not streamed) flow ends with."""
    result: Item | None = None
    for item in items:
        result = item
    assert isinstance(result, Completion), "a flow ends with its Completion"
    return result


async def alast(items: AsyncIterator[Item]) -> Completion:
    """``last``'s async twin."""
    result: Item | None = None
    async for item in items:
        result = item
    assert isinstance(result, Completion), "a flow ends with its Completion"
    return result


def tapped(flow: Flow, seen: Callable[[Item], None], failed: Callable[[BaseException], None]) -> Flow:
    """``flow``, with ``seen`` told each item it emits and ``failed`` told the error it ends with
    (a stream abandoned by its reader ends with ``GeneratorExit``)."""
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                seen(step.item)
            reply, error = None, None
            try:
                reply = yield step
            except GeneratorExit:
                flow.close()
                raise
            except Exception as exc:  # the backend's failure, for the flow to judge
                error = exc
    except BaseException as exc:
        failed(exc)
        raise


async def _sleep_async(seconds: float) -> None:
    import asyncio  # imported here: `import lmbridge` stays fast, and sync callers never load asyncio

    await asyncio.sleep(seconds)


async def _one(raw: RawResult) -> AsyncIterator[str | RawResult]:
    yield raw


def _close(source: Iterator[Any] | None) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


async def _aclose(source: AsyncIterator[Any] | None) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()
