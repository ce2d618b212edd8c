"""ReAct on ScriptedLM: the loop, tool failures as observations, max_iters, async tools, truncation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sample_tools import add, lookup

import lmbridge
from lmbridge.agents._react import render_trajectory
from lmbridge.testing import ScriptedLM
from lmbridge.types import Message


def step(thought: str, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args or {}}


def answer(text: str) -> dict[str, Any]:
    return {"reasoning": "from the trajectory", "answer": text}


def test_a_run_calls_tools_records_observations_and_finishes() -> None:
    lm = ScriptedLM([step("add them", "add", {"a": 2, "b": 3}), step("done", "finish"), answer("5")])
    agent = lmbridge.ReAct("question -> answer", tools=[add, lookup], lm=lm)
    pred = agent(question="What is 2 + 3?")

    assert isinstance(pred, lmbridge.Prediction)
    assert pred.answer == "5"
    assert pred.finish_reason == "finish"
    assert [s["tool_name"] for s in pred.trajectory] == ["add", "finish"]
    assert pred.trajectory[0]["tool_args"] == {"a": 2, "b": 3}
    assert pred.trajectory[0]["observation"] == "5"
    assert pred.trajectory[0]["error"] is False
    assert pred.usage.calls == 3
    # the second step saw the first observation; extraction saw the whole trajectory
    assert "Observation: 5" in lm.calls[1][-1]["content"]
    assert "Tool: add" in lm.calls[2][-1]["content"]


def test_its_predictors_are_ordinary_predicts() -> None:
    agent = lmbridge.ReAct("question -> answer: int", tools=[add])
    names = dict(agent.named_predictors())
    assert set(names) == {"react", "extract.predict"}
    step_sig = names["react"].signature
    assert list(step_sig.input_fields) == ["question", "trajectory"]
    assert list(step_sig.output_fields) == ["next_thought", "next_tool_name", "next_tool_args"]
    assert step_sig.output_fields["next_tool_args"].annotation == dict[str, Any]
    assert "add: Add two integers." in step_sig.instructions
    extract_sig = names["extract.predict"].signature
    assert list(extract_sig.output_fields) == ["reasoning", "answer"]
    assert extract_sig.output_fields["answer"].annotation is int


def test_state_saves_and_loads(tmp_path: Any) -> None:
    agent = lmbridge.ReAct("question -> answer", tools=[add])
    agent.react.demos = [lmbridge.Example(question="1+1?", trajectory="(no steps yet)", **step("x", "add"))]
    agent.extract.predict.instructions = "Answer briefly."
    agent.save(tmp_path / "agent.json")
    fresh = lmbridge.ReAct("question -> answer", tools=[add]).load(tmp_path / "agent.json")
    assert isinstance(fresh, lmbridge.ReAct)
    assert fresh.extract.predict.instructions == "Answer briefly."
    assert fresh.react.demos[0]["next_tool_name"] == "add"


def test_a_failing_tool_becomes_an_error_observation_and_the_run_goes_on() -> None:
    lm = ScriptedLM([step("look", "lookup", {"key": "capital of spain"}),
                     step("retry", "lookup", {"key": "capital of france"}),
                     step("done", "finish"), answer("Paris")])
    pred = lmbridge.ReAct("question -> answer", tools=[lookup], lm=lm)(question="Capital of France?")
    first, second = pred.trajectory[0], pred.trajectory[1]
    assert first["error"] is True
    assert "LookupError" in first["observation"] and "capital of spain" in first["observation"]
    assert second == {"thought": "retry", "tool_name": "lookup", "tool_args": {"key": "capital of france"},
                      "observation": "Paris", "error": False}
    assert "LookupError" in lm.calls[1][-1]["content"], "the model must see the error"
    assert pred.answer == "Paris"


def test_bad_arguments_are_reported_to_the_model() -> None:
    lm = ScriptedLM([step("add", "add", {"a": "two", "b": 3}), step("add", "add", {"a": 2}),
                     step("done", "finish"), answer("?")])
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="2+3?")
    assert pred.trajectory[0]["error"] and "invalid arguments: a" in pred.trajectory[0]["observation"]
    assert pred.trajectory[1]["error"] and "b: Field required" in pred.trajectory[1]["observation"]
    assert "invalid arguments" in lm.calls[2][-1]["content"]


def test_an_unknown_tool_is_reported_to_the_model() -> None:
    bad = "I will check the weather.\nTool: weather\nArgs: {\"city\": \"Oslo\"}"
    lm = ScriptedLM([bad, bad, step("done", "finish"), answer("unknown")])
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="Weather in Oslo?")
    first = pred.trajectory[0]
    assert first["tool_name"] == "weather"
    assert first["error"] is True
    assert "no tool 'weather'" in first["observation"] and "add, finish" in first["observation"]
    assert pred.finish_reason == "finish"


def test_an_unreadable_step_is_recorded_and_the_loop_continues() -> None:
    lm = ScriptedLM(["hmm", "hmm again", step("done", "finish"), answer("x")])
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="?")
    assert pred.trajectory[0]["error"] is True
    assert "could not be read" in pred.trajectory[0]["observation"]
    assert pred.finish_reason == "finish"


def test_a_garbled_step_that_names_a_tool_is_still_used() -> None:
    garbled = 'I should add the numbers with add, not lookup {"a": 4, "b": 5}'
    lm = ScriptedLM([garbled, garbled, step("done", "finish"), answer("9")])
    pred = lmbridge.ReAct("question -> answer", tools=[add, lookup], lm=lm)(question="4+5?")
    assert pred.trajectory[0]["tool_name"] == "add"
    assert pred.trajectory[0]["observation"] == "9"


def test_max_iters_bounds_a_runaway_loop() -> None:
    def always_add(messages: list[Message]) -> Any:
        if "Reasoning:" in messages[-1]["content"].splitlines()[-1]:
            return answer("gave up")
        return step("again", "add", {"a": 1, "b": 1})

    lm = ScriptedLM(always_add)
    pred = lmbridge.ReAct("question -> answer", tools=[add], max_iters=4, lm=lm)(question="loop?")
    assert pred.finish_reason == "max_iters"
    assert len(pred.trajectory) == 4
    assert len(lm.calls) == 5  # four steps and one extraction
    assert pred.answer == "gave up"


def test_async_run_awaits_async_tools() -> None:
    ran_on_loop: list[bool] = []

    async def fetch(key: str) -> str:
        """Fetch a value."""
        ran_on_loop.append(asyncio.current_task() is not None)
        await asyncio.sleep(0)
        return key.upper()

    lm = ScriptedLM([step("fetch", "fetch", {"key": "abc"}), step("done", "finish"), answer("ABC")])
    agent = lmbridge.ReAct("question -> answer", tools=[fetch], lm=lm)
    pred = asyncio.run(agent.acall(question="?"))
    assert pred.trajectory[0]["observation"] == "ABC"
    assert ran_on_loop == [True]
    assert pred.answer == "ABC" and pred.finish_reason == "finish"
    assert pred.usage.calls == 3


def test_sync_run_also_takes_async_tools() -> None:
    async def fetch(key: str) -> str:
        return key * 2

    lm = ScriptedLM([step("fetch", "fetch", {"key": "ab"}), step("done", "finish"), answer("abab")])
    pred = lmbridge.ReAct("question -> answer", tools=[fetch], lm=lm)(question="?")
    assert pred.trajectory[0]["observation"] == "abab"


def _overflowing(limit: int) -> Any:
    """An LM whose context holds at most ``limit`` observations."""
    def respond(messages: list[Message]) -> Any:
        text = messages[-1]["content"]
        if text.count("Observation:") > limit:
            return lmbridge.ContextWindowError("prompt too long")
        if text.rstrip().endswith("Reasoning:"):
            return answer("ok")
        return step("more", "add", {"a": 1, "b": 2})
    return respond


def test_context_overflow_drops_the_oldest_steps() -> None:
    lm = ScriptedLM(_overflowing(2))
    pred = lmbridge.ReAct("question -> answer", tools=[add], max_iters=5, lm=lm)(question="?")
    assert pred.finish_reason == "max_iters"
    assert len(pred.trajectory) == 5, "the prediction keeps every step"
    last_prompt = lm.calls[-1][-1]["content"]
    assert "earlier steps left out" in last_prompt
    assert last_prompt.count("Observation:") <= 2
    assert pred.answer == "ok"


def test_context_overflow_with_no_step_left_ends_the_loop() -> None:
    steps_asked: list[int] = []

    def respond(messages: list[Message]) -> Any:
        if messages[-1]["content"].rstrip().endswith("Reasoning:"):
            return answer("ok")
        steps_asked.append(1)
        if len(steps_asked) > 1:  # the context filled up after the first step, whatever is left out
            return lmbridge.ContextWindowError("prompt too long")
        return step("more", "add", {"a": 1, "b": 2})

    lm = ScriptedLM(respond)
    pred = lmbridge.ReAct("question -> answer", tools=[add], max_iters=5, lm=lm)(question="?")
    assert pred.finish_reason == "context_overflow"
    assert len(pred.trajectory) == 1
    assert pred.answer == "ok"


def test_inputs_that_overflow_alone_raise() -> None:
    lm = ScriptedLM(lambda messages: lmbridge.ContextWindowError("too long"))
    with pytest.raises(lmbridge.ContextWindowError):
        lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="?")


def test_character_budget_trims_the_trajectory_shown() -> None:
    def respond(messages: list[Message]) -> Any:
        if messages[-1]["content"].rstrip().endswith("Reasoning:"):
            return answer("ok")
        return step("x" * 200, "add", {"a": 1, "b": 2})

    lm = ScriptedLM(respond)
    agent = lmbridge.ReAct("question -> answer", tools=[add], max_iters=4, max_trajectory_chars=600, lm=lm)
    pred = agent(question="?")
    assert len(pred.trajectory) == 4
    shown = lm.calls[-1][-1]["content"]
    assert shown.count("Observation:") < 4
    assert "earlier steps left out" in shown


def test_wrong_inputs_and_bad_tool_sets_are_rejected() -> None:
    agent = lmbridge.ReAct("question -> answer", tools=[add], lm=ScriptedLM([]))
    with pytest.raises(lmbridge.InputError):
        agent(query="?")
    with pytest.raises(ValueError, match="unique"):
        lmbridge.ReAct("question -> answer", tools=[add, lmbridge.Tool(lookup, name="add")])
    with pytest.raises(ValueError, match="finish"):
        lmbridge.ReAct("question -> answer", tools=[lmbridge.Tool(add, name="finish")])
    with pytest.raises(lmbridge.SignatureError):
        lmbridge.ReAct("question, trajectory -> answer", tools=[add])


def test_render_trajectory_uses_the_step_labels() -> None:
    text = render_trajectory([{"thought": "t", "tool_name": "add", "tool_args": {"a": 1},
                               "observation": "2", "error": False}], skipped=3)
    assert "(3 earlier steps left out)" in text
    assert 'Thought: t\nTool: add\nArgs: {"a": 1}\nObservation: 2' in text
    assert render_trajectory([]) == "(no steps yet)"


def test_the_docs_page_examples_run() -> None:
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "tools-react.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert isinstance(namespace["agent"], lmbridge.ReAct)
    assert namespace["agent"].react.demos[0]["next_tool_name"] == "calculator"
    assert namespace["native_pred"].trajectory[0]["observation"] == "5"
    assert [c.name for c in namespace["completion"].tool_calls] == ["add"]
