"""The one flow loop (``lmbridge._drive``) that the adapters, ReAct and Predict run their flows with:
a step's error is thrown in where the flow asked, the flow's return is the answer, and an interrupt
or a cancellation is never thrown in. Sync and async must behave alike, on the real model too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

import lmbridge
from lmbridge._drive import adrive, drive

Flow = Generator[str, Any, list[str]]


def flow(seen: list[str]) -> Flow:
    """Asks for "a", then "b" (which fails), then "c"; returns what it received, in order."""
    got = [(yield "a")]
    try:
        got.append((yield "b"))
    except ValueError as exc:  # the flow decides: a failed "b" counts as "b?"
        got.append(f"b? {exc}")
    except GeneratorExit:  # closed when collected: not a step's error
        raise
    except BaseException as exc:
        seen.append(f"thrown in: {type(exc).__name__}")
        raise
    got.append((yield "c"))
    return got


def perform(step: str) -> str:
    if step == "b":
        raise ValueError("no b")
    return step.upper()


async def aperform(step: str) -> str:
    await asyncio.sleep(0)
    return perform(step)


def run_sync(f: Flow, do: Callable[[str], Any]) -> list[str]:
    return drive(f, do)


def run_async(f: Flow, do: Callable[[str], Any]) -> list[str]:
    async def ado(step: str) -> Any:
        return do(step)
    return asyncio.run(adrive(f, ado))


@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_a_step_error_is_thrown_in_where_the_flow_asked_and_its_return_is_the_answer(run: Any) -> None:
    assert run(flow([]), perform) == ["A", "b? no b", "C"]


@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_an_error_the_flow_does_not_catch_leaves_the_driver_unchanged(run: Any) -> None:
    error = RuntimeError("the backend broke")

    def broken(step: str) -> str:
        if step == "c":
            raise error
        return perform(step)

    with pytest.raises(RuntimeError) as caught:
        run(flow([]), broken)
    assert caught.value is error


def test_an_interrupt_is_not_thrown_into_the_flow() -> None:
    seen: list[str] = []

    def interrupted(step: str) -> str:
        if step == "b":
            raise KeyboardInterrupt
        return perform(step)

    with pytest.raises(KeyboardInterrupt):
        drive(flow(seen), interrupted)
    assert seen == []


def test_a_cancelled_step_is_not_thrown_into_the_flow() -> None:
    seen: list[str] = []

    async def cancelled(step: str) -> str:
        if step == "b":
            raise asyncio.CancelledError
        return step.upper()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(adrive(flow(seen), cancelled))
    assert seen == []


def test_async_performs_are_awaited_in_order() -> None:
    order: list[str] = []

    def tracked(step: str) -> Awaitable[str]:
        order.append(step)
        return aperform(step)

    assert asyncio.run(adrive(flow([]), tracked)) == ["A", "b? no b", "C"]
    assert order == ["a", "b", "c"]


@pytest.mark.real_model
def test_predict_and_react_answer_alike_sync_and_async_on_the_embedded_model() -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=64, temperature=0.0, cache=False)
    predict = lmbridge.Predict("question -> answer", lm=lm)
    question = "What is the capital of France?"
    sync = predict(question=question)
    assert sync == asyncio.run(predict.acall(question=question))

    def capital(country: str) -> str:
        """The capital city of a country."""
        return {"France": "Paris"}.get(country.strip(), "unknown")

    agent = lmbridge.ReAct("question -> answer", tools=[capital], max_iters=2, lm=lm)
    assert agent(question=question) == asyncio.run(agent.acall(question=question))
