"""Settings: frozen values in a ContextVar; configure, context, current and the context executor."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM


def test_defaults() -> None:
    s = lmbridge.current()
    assert s.lm is None and s.format is None
    assert s.num_threads >= 1


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        lmbridge.current().lm = ScriptedLM([])  # type: ignore[misc]


def test_configure_replaces_the_default_without_mutating_it() -> None:
    before = lmbridge.current()
    lm = ScriptedLM([])
    lmbridge.configure(lm=lm)
    assert lmbridge.current().lm is lm
    assert before.lm is None  # the old value object is unchanged
    lmbridge.configure(format=lmbridge.JSONFormat())
    assert lmbridge.current().lm is lm  # other settings kept


def test_context_restores_on_exit_and_on_error() -> None:
    lm = ScriptedLM([])
    with lmbridge.context(lm=lm, num_threads=2) as s:
        assert s.lm is lm and lmbridge.current().num_threads == 2
    assert lmbridge.current().lm is None
    with pytest.raises(RuntimeError), lmbridge.context(lm=lm):
        raise RuntimeError("boom")
    assert lmbridge.current().lm is None


def test_context_rejects_unknown_settings() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="unknown"), lmbridge.context(lmm=None):
        pass


def test_configure_inside_a_context_does_not_leak_into_it() -> None:
    inner = ScriptedLM([])
    outer = ScriptedLM([])
    with lmbridge.context(lm=inner):
        lmbridge.configure(lm=outer)
        assert lmbridge.current().lm is inner  # context beats configure
    assert lmbridge.current().lm is outer


def test_context_executor_copies_context_per_task() -> None:
    lm = ScriptedLM([])
    with lmbridge.context(lm=lm), lmbridge.context_executor(2) as pool:
        seen = [f.result() for f in [pool.submit(lambda: lmbridge.current().lm) for _ in range(4)]]
    assert seen == [lm] * 4
    with lmbridge.context_executor(2) as pool:
        assert pool.submit(lambda: lmbridge.current().lm).result() is None


def test_context_executor_default_size_follows_settings() -> None:
    with lmbridge.context(num_threads=3), lmbridge.context_executor() as pool:
        assert pool._max_workers == 3


def test_async_tasks_keep_their_own_context() -> None:
    a, b = ScriptedLM([]), ScriptedLM([])

    async def task(lm: ScriptedLM) -> bool:
        with lmbridge.context(lm=lm):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return lmbridge.current().lm is lm

    async def main() -> list[bool]:
        return await asyncio.gather(task(a), task(b), task(a))

    assert asyncio.run(main()) == [True, True, True]
