"""LlamaIndex LLMs and tools in: provider errors mapped and retried, tool calls through a
FunctionCallingLLM so that native ReAct runs tools, the cache keyed on the LLM's configuration,
and LlamaIndex FunctionTools and QueryEngineTools as bridge Tools."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool, QueryEngineTool, ToolOutput
from llamaindex_fixtures import ScriptedChatLLM, ScriptedToolLLM, hashing_index, squad_dir, squad_nodes

from lmbridge.adapters.llamaindex import LlamaIndexLM, from_llamaindex_tool


class ProviderError(Exception):
    """Shaped like an OpenAI SDK error: a status code and a response with headers."""

    def __init__(self, message: str, status_code: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = type("R", (), {"status_code": status_code, "headers": headers or {}})()


class RateLimitError(ProviderError):
    pass


class APITimeoutError(Exception):
    pass


class FailingLLM(ScriptedChatLLM):
    failures: list[Exception] = []
    attempts: int = 0

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().chat(messages, **kwargs)


@pytest.mark.parametrize(("error", "kind", "transient"), [
    (RateLimitError("slow down", 429), lmbridge.RateLimitError, True),
    (ProviderError("bad key", 401), lmbridge.AuthenticationError, False),
    (APITimeoutError("read timed out"), lmbridge.LMTimeoutError, True),
    (ProviderError("This model's maximum context length is 4096 tokens", 400), lmbridge.ContextWindowError, False),
    (ProviderError("upstream overloaded", 503), lmbridge.LMError, True),
    (ValueError("a bug"), lmbridge.LMError, False),
])
def test_provider_errors_are_mapped_and_transient_ones_retried(error: Exception, kind: type[lmbridge.LMError],
                                                              transient: bool) -> None:
    llm = FailingLLM(replies=[], seen=[], failures=[error] * 3)
    lm = LlamaIndexLM(llm, cache=False, num_retries=2, backoff=0.001)
    with pytest.raises(kind) as info:
        lm("hi")
    assert type(info.value) is kind
    assert info.value.__cause__ is error
    assert llm.attempts == (3 if transient else 1)


def test_a_transient_error_then_success_is_retried_and_counted() -> None:
    llm = FailingLLM(replies=["Answer: Lima"], seen=[], failures=[RateLimitError("slow", 429, {"retry-after": "0"})])
    lm = LlamaIndexLM(llm, cache=False, backoff=0.001)
    with lmbridge.track_usage() as tracker:
        assert lmbridge.Predict("question -> answer", lm=lm)(question="Capital of Peru?").answer == "Lima"
    assert tracker.usage.retries == 1 and tracker.usage.calls == 1


def test_the_cache_key_holds_the_llm_configuration() -> None:
    cold = ScriptedChatLLM(replies=["Answer: A"], seen=[], temperature=0.0)
    warm = ScriptedChatLLM(replies=["Answer: B"], seen=[], temperature=0.9)
    first = LlamaIndexLM(cold, cache=False)
    second = LlamaIndexLM(warm, cache=False)
    assert first.model != second.model  # the model name is the first part of every cache key
    twin = LlamaIndexLM(ScriptedChatLLM(replies=["Answer: A"], seen=[], temperature=0.0), cache=False)
    assert twin.model == first.model  # same configuration, same entries


def test_secrets_are_not_in_the_cache_key() -> None:
    class KeyedLLM(ScriptedChatLLM):
        api_key: str = ""

    a = LlamaIndexLM(KeyedLLM(replies=[], seen=[], api_key="sk-one"), cache=False)
    b = LlamaIndexLM(KeyedLLM(replies=[], seen=[], api_key="sk-two"), cache=False)
    assert a.model == b.model and "sk-" not in a.model


# -- tool calls through a FunctionCallingLLM --------------------------------------------------------------

def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_native_react_runs_the_tools_a_function_calling_llm_calls() -> None:
    llm = ScriptedToolLLM(script=[("I will add.", [("add", {"a": 2, "b": 40})]), ("", [("finish", {})])],
                          offered=[], seen=[])
    lm = LlamaIndexLM(llm, cache=False)
    assert lm.supports_function_calling()
    extract = lmbridge.testing.ScriptedLM([{"reasoning": "2+40", "answer": "42"}])
    agent = lmbridge.ReAct("question -> answer", tools=[add], lm=lm)
    agent.extract.predict.lm = extract
    pred = agent(question="What is 2 + 40?")
    assert pred.answer == "42"
    steps = pred.trajectory
    assert steps[0]["tool_name"] == "add" and steps[0]["observation"] == "42"
    offered = llm.offered[0]
    assert [t["function"]["name"] for t in offered] == ["add", "finish"]
    assert offered[0]["function"]["parameters"]["properties"]["a"]["type"] == "integer"


def test_tool_calls_come_back_in_the_completion_and_async() -> None:
    llm = ScriptedToolLLM(script=[("", [("add", {"a": 1, "b": 2})])], offered=[], seen=[])
    lm = LlamaIndexLM(llm, cache=False)
    spec = lmbridge.Tool(add).to_function_spec()
    completion = asyncio.run(lm.acomplete([{"role": "user", "content": "1+2?"}], {"tools": [spec]}))
    assert [(c.name, c.args, c.id) for c in completion.tool_calls] == [("add", {"a": 1, "b": 2}, "call_0")]


def test_an_llm_without_function_calling_says_so() -> None:
    lm = LlamaIndexLM(MockLLM(), cache=False)
    assert not lm.supports_function_calling()
    with pytest.raises(lmbridge.LMError, match="function_calling=False"):
        lm.complete([{"role": "user", "content": "hi"}], {"tools": [lmbridge.Tool(add).to_function_spec()]})


# -- LlamaIndex tools as bridge tools ------------------------------------------------------------------------

def test_a_function_tool_keeps_its_schema_and_description() -> None:
    tool = from_llamaindex_tool(FunctionTool.from_defaults(fn=add))
    assert tool.name == "add"
    assert "Add two integers." in tool.desc
    schema = tool.json_schema()
    assert schema["properties"]["a"]["type"] == "integer" and sorted(schema["required"]) == ["a", "b"]
    assert tool(a=2, b=3) == "5"
    assert asyncio.run(tool.acall(a=2, b=3)) == "5"
    with pytest.raises(lmbridge.ToolError, match="b"):
        tool(a=2)


def test_an_async_function_tool() -> None:
    async def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    tool = from_llamaindex_tool(FunctionTool.from_defaults(async_fn=multiply))
    assert tool.is_async and tool(a=6, b=7) == "42"


def test_a_tool_error_output_is_a_tool_error() -> None:
    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError("disk full")

    def as_error(output: ToolOutput) -> ToolOutput:
        return ToolOutput(content="disk full", tool_name="broken", raw_input={}, raw_output=None, is_error=True)

    with pytest.raises(lmbridge.ToolError, match="disk full"):
        from_llamaindex_tool(FunctionTool.from_defaults(fn=broken))(x=1)
    flagged = FunctionTool.from_defaults(fn=lambda x: x, name="flagged", description="d", callback=as_error)
    with pytest.raises(lmbridge.ToolError, match="disk full"):
        from_llamaindex_tool(flagged)(x=1)


@pytest.mark.skipif(not (squad_dir() / "corpus.jsonl").is_file(), reason="the SQuAD dataset is not available")
def test_a_query_engine_tool() -> None:
    index = hashing_index(squad_nodes(20))
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=1)
    tool = from_llamaindex_tool(QueryEngineTool.from_defaults(engine, name="squad", description="Search SQuAD."))
    assert tool.name == "squad" and tool.desc == "Search SQuAD."
    assert list(tool.args) == ["input"]
    assert "Super Bowl" in tool(input="Who won Super Bowl 50?")


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="BaseTool"):
        from_llamaindex_tool(add)  # type: ignore[arg-type]
