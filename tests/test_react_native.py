"""ReAct in native function-calling mode: the LM gets the tools' JSON schemas and answers with tool
calls. Over ScriptedLM (scripted tool calls), and once through LiteLLM against the fake server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, calls, ok, raw
from sample_tools import add, lookup

import lmbridge
from lmbridge.agents._react_native import NO_CALL_NOTE, REASK
from lmbridge.lm._cache import Cache
from lmbridge.optimizers._support.budget import Budget
from lmbridge.testing import ScriptedLM, ToolCall, ToolReply


def answer(text: str) -> dict[str, Any]:
    return {"reasoning": "from the trajectory", "answer": text}


def native_lm(*responses: Any, **options: Any) -> ScriptedLM:
    return ScriptedLM(list(responses), function_calling=True, **options)


def tool_names(request: dict[str, Any]) -> list[str]:
    return [spec["function"]["name"] for spec in request.get("tools", [])]


def test_a_tool_call_runs_and_its_observation_is_recorded() -> None:
    lm = native_lm(ToolReply([ToolCall("add", {"a": 2, "b": 3})], text="I add them."), ToolCall("finish"),
                   answer("5"))
    agent = lmbridge.ReAct("question -> answer", tools=[add, lookup], lm=lm)
    pred = agent(question="What is 2 + 3?")

    assert pred.answer == "5"
    assert pred.finish_reason == "finish"
    assert pred.trajectory[0] == {"thought": "I add them.", "tool_name": "add", "tool_args": {"a": 2, "b": 3},
                                  "observation": "5", "error": False}
    assert pred.trajectory[1]["tool_name"] == "finish"
    assert pred.usage.calls == 3
    # each step offers the tools' schemas plus finish; the extraction is a plain request
    first, second, extraction = lm.requests
    assert tool_names(first) == ["add", "lookup", "finish"] and first["tool_choice"] == "auto"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert "tools" not in extraction
    assert "Observation: 5" in lm.calls[1][-1]["content"], "the next step sees the observation"
    assert "Tool: add" in lm.calls[2][-1]["content"], "extraction sees the whole trajectory"
    assert lm.calls[0][0]["role"] == "system" and "function call" in lm.calls[0][0]["content"]
    assert second["tools"] == first["tools"]


@pytest.mark.parametrize("call, expected", [
    (ToolCall.parse("add", '{"a": 2, "b":'), "not valid JSON"),
    (ToolCall("add", {"a": "two", "b": 3}), "invalid arguments: a"),
    (ToolCall("weather", {"city": "Oslo"}), "no tool 'weather'"),
    (ToolCall("lookup", {"key": "capital of spain"}), "LookupError"),
])
def test_failed_calls_become_error_observations_the_model_reads(call: ToolCall, expected: str) -> None:
    lm = native_lm(call, ToolCall("finish"), answer("?"))
    pred = lmbridge.ReAct("question -> answer", tools=[add, lookup], lm=lm)(question="q?")
    first = pred.trajectory[0]
    assert first["error"] is True and first["tool_name"] == call.name
    assert expected in first["observation"]
    assert expected in lm.calls[1][-1]["content"], "the next step must show the error"
    assert pred.finish_reason == "finish"


def test_unparsable_arguments_keep_the_raw_text() -> None:
    lm = native_lm(ToolCall.parse("add", "{a: 2}"), ToolCall("finish"), answer("?"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="q?")
    assert pred.trajectory[0]["tool_args"] == "{a: 2}"


def test_a_reply_without_a_tool_call_is_asked_again_once_then_taken_as_finish() -> None:
    lm = native_lm("The answer is 5.", "It is 5, really.", answer("5"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="2+3?")
    assert pred.finish_reason == "finish"
    assert pred.trajectory == [{"thought": "It is 5, really.", "tool_name": "finish", "tool_args": {},
                                "observation": NO_CALL_NOTE, "error": False}]
    assert pred.usage.parse_retries == 1 and pred.usage.calls == 3
    reask = lm.calls[1]
    assert reask[-2] == {"role": "assistant", "content": "The answer is 5."}
    assert reask[-1]["content"] == REASK.format(finish="finish")
    assert tool_names(lm.requests[1]) == ["add", "finish"], "the re-ask offers the tools again"
    assert pred.answer == "5"


def test_a_tool_call_after_the_reask_is_used() -> None:
    lm = native_lm("", ToolCall("add", {"a": 1, "b": 1}), ToolCall("finish"), answer("2"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="1+1?")
    assert [s["tool_name"] for s in pred.trajectory] == ["add", "finish"]
    assert pred.trajectory[0]["observation"] == "2"
    assert lm.calls[1][-2]["content"] == "(no tool call)"
    assert pred.usage.parse_retries == 1


def test_a_text_step_in_place_of_a_tool_call_is_read_without_a_reask() -> None:
    text = 'Thought: add them\nTool: add\nArgs: {"a": 4, "b": 5}'
    lm = native_lm(text, ToolCall("finish"), answer("9"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="4+5?")
    assert pred.trajectory[0]["thought"] == "add them"
    assert (pred.trajectory[0]["tool_name"], pred.trajectory[0]["observation"]) == ("add", "9")
    assert pred.usage.parse_retries == 0


def test_max_iters_bounds_the_loop_and_parallel_calls_count_as_steps() -> None:
    twice = ToolReply([ToolCall("add", {"a": 1, "b": 2}), ToolCall("add", {"a": 3, "b": 4})])
    lm = native_lm(twice, twice, answer("?"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], max_iters=3, lm=lm)(question="q?")
    assert pred.finish_reason == "max_iters"
    assert [s["observation"] for s in pred.trajectory] == ["3", "7", "3"]
    assert len(lm.calls) == 3, "two steps requests and the extraction"


def test_a_finish_among_parallel_calls_ends_the_run_there() -> None:
    reply = ToolReply([ToolCall("add", {"a": 1, "b": 2}), ToolCall("finish"), ToolCall("add", {"a": 0, "b": 0})])
    lm = native_lm(reply, answer("3"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="1+2?")
    assert [s["tool_name"] for s in pred.trajectory] == ["add", "finish"]
    assert pred.finish_reason == "finish"


def test_async_run_matches_the_sync_run() -> None:
    async def slow_add(a: int, b: int) -> int:
        """Add two integers, slowly."""
        await asyncio.sleep(0)
        return a + b

    script = [ToolCall("slow_add", {"a": 20, "b": 22}), ToolCall("finish"), answer("42")]
    sync_pred = lmbridge.ReAct("question -> answer", tools=[slow_add], lm=native_lm(*script))(question="20+22?")
    lm = native_lm(*script)
    async_pred = asyncio.run(lmbridge.ReAct("question -> answer", tools=[slow_add], lm=lm).acall(question="20+22?"))
    assert async_pred.trajectory == sync_pred.trajectory
    assert async_pred.trajectory[0]["observation"] == "42"
    assert (async_pred.answer, async_pred.finish_reason) == ("42", "finish")
    assert tool_names(lm.requests[0]) == ["slow_add", "finish"]


def test_async_reask_is_counted_too() -> None:
    lm = native_lm("no idea", "still none", answer("?"))
    pred = asyncio.run(lmbridge.ReAct("question -> answer", tools=[add], lm=lm).acall(question="q?"))
    assert pred.usage.parse_retries == 1 and pred.trajectory[0]["observation"] == NO_CALL_NOTE


def step(thought: str, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args or {}}


def test_an_lm_without_native_tools_gets_the_text_protocol() -> None:
    lm = ScriptedLM([step("add", "add", {"a": 2, "b": 3}), step("done", "finish"), answer("5")])
    assert lm.supports_function_calling() is False
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="2+3?")
    assert pred.trajectory[0]["observation"] == "5"
    assert all("tools" not in r for r in lm.requests)
    assert "Tool:" in lm.calls[0][-1]["content"] or "Thought:" in lm.calls[0][-1]["content"]


def test_function_calling_false_forces_the_text_protocol_and_true_forces_native() -> None:
    text_lm = ScriptedLM([step("done", "finish"), answer("x")], function_calling=True)
    lmbridge.ReAct("question -> answer", tools=[add], lm=text_lm, function_calling=False)(question="q?")
    assert all("tools" not in r for r in text_lm.requests)

    forced = ScriptedLM([ToolCall("finish"), answer("x")])  # reports no support
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=forced, function_calling=True)(question="q?")
    assert tool_names(forced.requests[0]) == ["add", "finish"]
    assert pred.finish_reason == "finish"
    with pytest.raises(ValueError, match="function_calling"):
        lmbridge.ReAct("question -> answer", tools=[add], function_calling="yes")  # type: ignore[arg-type]


def test_a_metered_lm_reports_the_support_of_the_lm_it_wraps() -> None:
    assert Budget(max_lm_calls=5).wrap(native_lm()).supports_function_calling() is True  # type: ignore[union-attr]
    assert Budget(max_lm_calls=5).wrap(ScriptedLM([])).supports_function_calling() is False  # type: ignore[union-attr]


def test_demos_and_rewritten_instructions_reach_the_native_prompt() -> None:
    lm = native_lm(ToolCall("finish"), answer("x"))
    agent = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)
    agent.react.instructions = "Use the tools wisely."
    agent.react.demos = [lmbridge.Example(question="What is 12 plus 7?", trajectory="(no steps yet)",
                                        **step("I add 12 and 7.", "add", {"a": 12, "b": 7}))]
    agent(question="q?")
    system = lm.calls[0][0]["content"]
    assert system.startswith("Use the tools wisely.")
    assert "Question: What is 12 plus 7?" in system and 'Args: {"a": 12, "b": 7}' in system
    assert lm.calls[0][-1] == {"role": "user", "content": "Question: q?\nTrajectory: (no steps yet)"}


def test_native_steps_are_traced_for_optimizers() -> None:
    lm = native_lm(ToolCall("add", {"a": 2, "b": 3}), ToolCall("finish"), answer("5"))
    agent = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)
    with lmbridge.trace() as steps:
        agent(question="2+3?")
    react_steps = [(inputs, pred) for predictor, inputs, pred in steps if predictor is agent.react]
    assert [p.next_tool_name for _, p in react_steps] == ["add", "finish"]
    inputs, first = react_steps[0]
    assert set(inputs) == {"question", "trajectory"} and first.next_tool_args == {"a": 2, "b": 3}


def test_context_overflow_trims_the_trajectory_in_native_mode() -> None:
    lm = native_lm(ToolCall("add", {"a": 1, "b": 1}), lmbridge.ContextWindowError("too long"),
                   ToolCall("finish"), answer("2"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="1+1?")
    assert "(1 earlier steps left out)" in lm.calls[2][-1]["content"]
    assert pred.finish_reason == "finish" and len(pred.trajectory) == 2


def test_overflow_on_an_empty_trajectory_ends_the_run() -> None:
    lm = native_lm(lmbridge.ContextWindowError("too long"), answer("?"))
    pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="q?")
    assert pred.finish_reason == "context_overflow" and pred.trajectory == []


def test_the_cache_key_includes_the_tools(tmp_path: Path) -> None:
    lm = native_lm(ToolCall("add", {"a": 1, "b": 2}), ToolCall("lookup", {"key": "k"}), cache=Cache(tmp_path))
    messages: list[lmbridge.Message] = [{"role": "user", "content": "pick a tool"}]
    with_add = {"tools": [lmbridge.Tool(add).to_function_spec()]}
    first = lm.complete(messages, with_add)
    again = lm.complete(messages, with_add)
    other = lm.complete(messages, {"tools": [lmbridge.Tool(lookup).to_function_spec()]})
    assert again.cached and again.tool_calls == first.tool_calls == (ToolCall("add", {"a": 1, "b": 2}),)
    assert not other.cached and other.tool_calls[0].name == "lookup"
    assert len(lm.calls) == 2
    assert lm.history[-2].tool_calls == first.tool_calls, "a cached tool call is in the history too"


def test_a_cached_native_run_replays_the_same_trajectory(tmp_path: Path) -> None:
    script = [ToolCall("add", {"a": 2, "b": 3}), ToolCall("finish"), answer("5")]
    cache = Cache(tmp_path)
    first = lmbridge.ReAct("question -> answer", tools=[add], lm=native_lm(*script, cache=cache))(question="2+3?")
    replay_lm = native_lm(cache=cache)
    second = lmbridge.ReAct("question -> answer", tools=[add], lm=replay_lm)(question="2+3?")
    assert second.trajectory == first.trajectory
    assert second.usage.cache_hits == 3 and second.usage.calls == 0


def test_native_react_through_litellm_http() -> None:
    with FakeOpenAI([calls(("add", {"a": 19, "b": 23}), content="Adding."), calls(("finish", {})),
                     ok("Reasoning: the tool said 42\nAnswer: 42")]) as server:
        lm = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", cache=False, function_calling=True)
        pred = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="19+23?")
        sent = server.requests
    assert pred.trajectory[0] == {"thought": "Adding.", "tool_name": "add", "tool_args": {"a": 19, "b": 23},
                                  "observation": "42", "error": False}
    assert pred.finish_reason == "finish" and pred.answer == "42"
    assert tool_names(sent[0]) == ["add", "finish"] and sent[0]["tool_choice"] == "auto"
    assert sent[0]["tools"][0]["function"]["parameters"]["properties"]["a"] == {"type": "integer"}
    assert "tools" not in sent[2]
    assert "Observation: 42" in sent[1]["messages"][-1]["content"]


def test_bootstrap_collects_step_demos_from_native_runs() -> None:
    import re

    def reply(messages: list[lmbridge.Message]) -> Any:
        found = re.search(r"Question: What is (\d+) \+ (\d+)\?", messages[-1]["content"])
        assert found is not None
        a, b = int(found.group(1)), int(found.group(2))
        if messages[0]["role"] == "system" and "function call" in messages[0]["content"]:
            seen = "Observation:" in messages[-1]["content"]
            return ToolCall("finish") if seen else ToolCall("add", {"a": a, "b": b})
        return answer(str(a + b))

    rows = [lmbridge.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question")
            for a, b in [(1, 2), (3, 4), (5, 6)]]
    student = lmbridge.ReAct("question -> answer", tools=[add], lm=ScriptedLM(reply, function_calling=True))
    compiled = lmbridge.BootstrapFewShot(metric=lmbridge.metrics.exact_match("answer"), max_bootstrapped_demos=2,
                                       max_labeled_demos=0, display_progress=False).compile(student, trainset=rows)
    demos = compiled.react.demos  # type: ignore[attr-defined]
    assert demos and {d["next_tool_name"] for d in demos} <= {"add", "finish"}
    first_step = next(d for d in demos if d["next_tool_name"] == "add")
    assert first_step["trajectory"] == "(no steps yet)"
    assert first_step["next_tool_args"] == dict(zip("ab", map(int, re.findall(r"\d+", first_step["question"]))))


def test_a_native_step_cut_off_at_its_token_limit_is_never_read() -> None:
    cut = {"id": "c", "object": "chat.completion", "created": 0, "model": "fake",
           "choices": [{"index": 0, "finish_reason": "length", "message": {
               "role": "assistant", "content": None,
               "tool_calls": [{"id": "call_0", "type": "function",
                               "function": {"name": "add", "arguments": '{"a": 19, "b": 2'}}]}}],
           "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    with FakeOpenAI([raw(json.dumps(cut), Content_Type="application/json")]) as server:
        lm = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", cache=False,
                         function_calling=True, max_tokens=5)
        with pytest.raises(lmbridge.TruncatedError) as info:
            lmbridge.ReAct("question -> answer", tools=[add], lm=lm)(question="19+23?")
        assert server.count == 1  # billed once, not re-sent, and no tool ran on cut-off arguments
    assert info.value.limit == 5
