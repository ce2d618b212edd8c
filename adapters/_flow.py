"""Sync and async written once in the adapters, as in the core (httpx's ``Auth.auth_flow`` is the model).

A call into a user's chain or engine is a generator, a *flow*: it sets up, yields the one ``Call`` it
needs (the same foreign call, sync and async) and receives its result, or has its exception thrown in
where it asked, so the flow alone decides what a failure means; its return value is the answer.
``run`` drives a flow with the plain call and ``arun`` awaits the async one, both through the core's
one flow loop (``lmbridge._drive``). Neither shell decides anything, and a sync caller never touches
asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from lmbridge._drive import adrive, drive

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """The one foreign call of a flow, as ``sync()`` and as ``await async_()``."""

    sync: Callable[[], Any]
    async_: Callable[[], Awaitable[Any]]


Flow = Generator[Call, Any, T]


def _sync(step: Call) -> Any:
    return step.sync()


def _async(step: Call) -> Awaitable[Any]:
    return step.async_()


def run(flow: Flow[T]) -> T:
    """Run ``flow`` with plain calls; its answer."""
    return drive(flow, _sync)


async def arun(flow: Flow[T]) -> T:
    """Run ``flow`` with awaits: ``run``'s mirror, differing only in ``await``."""
    return await adrive(flow, _async)


__all__ = ["Call", "Flow", "arun", "run"]
