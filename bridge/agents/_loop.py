"""ReAct's loop, written once for sync and async (httpx's ``Auth.auth_flow`` is the model).

``ReAct._loop`` is a generator: it yields the I/O it needs (``Call`` a module, ``Ask`` an LM,
``Use`` a tool) and receives each answer by ``send``, or its exception thrown in at the ``yield``,
so the loop's own ``try``/``except`` decides what a tool error or a context overflow means. ``drive``
runs it with the sync calls and ``adrive`` with the async ones, both through the core's one flow loop
(``lmbridge._drive``). Sync callers never touch asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from lmbridge._drive import adrive as arun_flow
from lmbridge._drive import drive as run_flow
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


def _perform(step: Call | Ask | Use) -> Any:
    if isinstance(step, Call):
        return step.module(**step.inputs)
    if isinstance(step, Ask):
        return step.lm.complete(step.messages, step.params)
    return step.tool.call_with(step.args)


def _aperform(step: Call | Ask | Use) -> Awaitable[Any]:
    if isinstance(step, Call):
        return step.module.acall(**step.inputs)
    if isinstance(step, Ask):
        return step.lm.acomplete(step.messages, step.params)
    return step.tool.acall_with(step.args)


def drive(flow: Flow[T]) -> T:
    """Run the loop with the sync calls."""
    return run_flow(flow, _perform)


async def adrive(flow: Flow[T]) -> T:
    """Run the loop with the async calls: the mirror of ``drive``, differing only in ``await``."""
    return await arun_flow(flow, _aperform)


__all__ = ["Ask", "Call", "Flow", "Use", "adrive", "drive"]
