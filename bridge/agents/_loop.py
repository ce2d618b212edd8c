"""ReAct's loop, written once for sync and async (httpx's ``Auth.auth_flow`` is the model).

``ReAct._loop`` is a generator: it yields the I/O it needs (``Call`` a module, ``Ask`` an LM,
``Use`` a tool) and receives each answer by ``send``, or its exception thrown in at the ``yield``,
so the loop's own ``try``/``except`` decides what a tool error or a context overflow means. ``drive``
runs it with the sync calls and ``adrive`` with the async ones. Sync callers never touch asyncio.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from lmbridge.agents._tools import Tool
from lmbridge.lm import BaseLM
from lmbridge.programs import Module
from lmbridge.types import Message


@dataclass(frozen=True)
class Call:
    """Call a module (``react`` or ``extract``) with these inputs; the loop receives its Prediction."""

    module: Module
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Ask:
    """Ask the LM for a native tool-calling step; the loop receives the Completion."""

    lm: BaseLM
    messages: list[Message]
    params: dict[str, Any]


@dataclass(frozen=True)
class Use:
    """Run a tool with these arguments; the loop receives its result (or its ToolError, thrown in)."""

    tool: Tool
    args: Any


T = TypeVar("T")
Flow = Generator[Call | Ask | Use, Any, T]


def drive(flow: Flow[T]) -> T:
    """Run the loop with the sync calls."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return cast(T, done.value)
        reply, error = None, None
        try:
            if isinstance(step, Call):
                reply = step.module(**step.inputs)
            elif isinstance(step, Ask):
                reply = step.lm.complete(step.messages, step.params)
            else:
                reply = step.tool.call_with(step.args)
        except Exception as exc:  # the loop decides: thrown in where it asked
            error = exc


async def adrive(flow: Flow[T]) -> T:
    """Run the loop with the async calls: the mirror of ``drive``, differing only in ``await``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return cast(T, done.value)
        reply, error = None, None
        try:
            if isinstance(step, Call):
                reply = await step.module.acall(**step.inputs)
            elif isinstance(step, Ask):
                reply = await step.lm.acomplete(step.messages, step.params)
            else:
                reply = await step.tool.acall_with(step.args)
        except Exception as exc:
            error = exc


__all__ = ["Ask", "Call", "Flow", "Use", "adrive", "drive"]
