"""Settings: frozen values in a ContextVar; configure, context, current and the context executor."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import bridge
from bridge.testing import ScriptedLM


def test_defaults() -> None:
    s = bridge.current()
    assert s.lm is None and s.format is None
    assert s.num_threads >= 1


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        bridge.current().lm = ScriptedLM([])  # type: ignore[misc]


def test_configure_replaces_the_default_without_mutating_it() -> None:
    before = bridge.current()
    lm = ScriptedLM([])
    bridge.configure(lm=lm)
    assert bridge.current().lm is lm
    assert before.lm is None  # the old value object is unchanged
    bridge.configure(format=bridge.JSONFormat())
    assert bridge.current().lm is lm  # other settings kept


def test_context_restores_on_exit_and_on_error() -> None:
    lm = ScriptedLM([])
    with bridge.context(lm=lm, num_threads=2) as s:
        assert s.lm is lm and bridge.current().num_threads == 2
    assert bridge.current().lm is None
    with pytest.raises(RuntimeError), bridge.context(lm=lm):
        raise RuntimeError("boom")
    assert bridge.current().lm is None


def test_context_rejects_unknown_settings() -> None:
    with pytest.raises(bridge.ConfigurationError, match="unknown"), bridge.context(lmm=None):
        pass


def test_configure_inside_a_context_does_not_leak_into_it() -> None:
    inner = ScriptedLM([])
    outer = ScriptedLM([])
    with bridge.context(lm=inner):
        bridge.configure(lm=outer)
        assert bridge.current().lm is inner  # context beats configure
    assert bridge.current().lm is outer


def test_context_executor_copies_context_per_task() -> None:
    lm = ScriptedLM([])
    with bridge.context(lm=lm), bridge.context_executor(2) as pool:
        seen = [f.result() for f in [pool.submit(lambda: bridge.current().lm) for _ in range(4)]]
    assert seen == [lm] * 4
    with bridge.context_executor(2) as pool:
        assert pool.submit(lambda: bridge.current().lm).result() is None


def test_context_executor_default_size_follows_settings() -> None:
    with bridge.context(num_threads=3), bridge.context_executor() as pool:
        assert pool._max_workers == 3


def test_async_tasks_keep_their_own_context() -> None:
    a, b = ScriptedLM([]), ScriptedLM([])

    async def task(lm: ScriptedLM) -> bool:
        with bridge.context(lm=lm):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return bridge.current().lm is lm

    async def main() -> list[bool]:
        return await asyncio.gather(task(a), task(b), task(a))

    assert asyncio.run(main()) == [True, True, True]
