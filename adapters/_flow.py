"""Sync and async written once in the adapters, as in the core (httpx's ``Auth.auth_flow`` is the model).

A call into a user's chain or engine is a generator, a *flow*: it sets up, yields the one ``Call`` it
needs (the same foreign call, sync and async) and receives its result, or has its exception thrown in
where it asked, so the flow alone decides what a failure means; its return value is the answer.
``run`` drives a flow with the plain call and ``arun`` awaits the async one. Neither shell decides
anything, and a sync caller never touches asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """The one foreign call of a flow, as ``sync()`` and as ``await async_()``."""

    sync: Callable[[], Any]
    async_: Callable[[], Awaitable[Any]]


Flow = Generator[Call, Any, T]


def run(flow: Flow[T]) -> T:
    """Run ``flow`` with plain calls; its answer."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return cast(T, done.value)
        reply, error = None, None
        try:
            reply = step.sync()
        except Exception as exc:  # the flow decides: thrown in where it asked
            error = exc


async def arun(flow: Flow[T]) -> T:
    """Run ``flow`` with awaits: ``run``'s mirror, differing only in ``await``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return cast(T, done.value)
        reply, error = None, None
        try:
            reply = await step.async_()
        except Exception as exc:
            error = exc


__all__ = ["Call", "Flow", "arun", "run"]
