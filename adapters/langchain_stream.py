"""Placeholder: replaced once the core streaming lands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any


def stream_program(runnable: Any, program: Any, inputs: dict[str, Any], run_manager: Any,
                   config: Any) -> Iterator[Any]:
    yield runnable._outputs(program(**inputs))


async def astream_program(runnable: Any, program: Any, inputs: dict[str, Any], run_manager: Any,
                          config: Any) -> AsyncIterator[Any]:
    yield runnable._outputs(await program.acall(**inputs))
