"""The one loop that runs a *flow*: sync and async written once (httpx's ``Auth.auth_flow`` is the model).

A flow is a generator that yields the steps it needs done (an LM call, a tool call, a foreign chain's
``invoke``) and receives each step's result by ``send``, or the step's exception thrown in at the
``yield`` that asked, so the flow alone decides what a failure means; its return value is the answer.
``drive`` runs a flow with a plain ``perform(step) -> reply`` and ``adrive`` with an awaited
``aperform(step)``; what a step *is* belongs to the caller's ``perform``, never to this loop.

Only ``Exception`` is thrown back into the flow: ``KeyboardInterrupt``, ``SystemExit`` and an async
caller's ``CancelledError`` leave through the driver at once. This module imports nothing of ours
(it is on the ground floor), and a sync caller never touches asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")


def drive(flow: Generator[S, Any, T], perform: Callable[[S], Any]) -> T:
    """Run ``flow`` to its answer, doing each step it yields with ``perform``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = error = None
        try:
            reply = perform(step)
        except Exception as exc:  # the flow decides: thrown in where it asked
            error = exc


async def adrive(flow: Generator[S, Any, T], aperform: Callable[[S], Awaitable[Any]]) -> T:
    """Run ``flow`` to its answer, awaiting each step with ``aperform``: ``drive``, differing only in ``await``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = error = None
        try:
            reply = await aperform(step)
        except Exception as exc:
            error = exc


__all__ = ["adrive", "drive"]
