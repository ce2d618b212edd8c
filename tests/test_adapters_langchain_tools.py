"""LangChain tools straight into lmbridge.ReAct, with LangChain's semantics (injected arguments,
return_direct, ToolException and handle_tool_error), and LangChain models as bridge LMs (wrapped
models, text models, native tool calls, the cache key)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import InjectedToolArg, InjectedToolCallId, StructuredTool, ToolException, tool

from lmbridge.adapters.langchain import LangChainLM, from_langchain_tool


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def step(tool_name: str, args: dict[str, Any], thought: str = "go") -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool_name, "next_tool_args": args}


def test_react_takes_a_langchain_tool_directly() -> None:
    lm = ScriptedLM([step("multiply", {"a": 6, "b": 7}), step("finish", {}),
                     {"reasoning": "6*7", "answer": "42"}])
    agent = lmbridge.ReAct("question -> answer", tools=[multiply], lm=lm)
    result = agent(question="What is 6 times 7?")
    assert result.answer == "42" and result.trajectory[0]["observation"] == "42"
    assert "multiply: Multiply two integers." in lm.calls[0][-1]["content"] or \
        "Multiply two integers." in "\n".join(m["content"] for m in lm.calls[0])


def test_injected_arguments_are_hidden_and_filled() -> None:
    @tool
    def orders(status: str, user_id: Annotated[int, InjectedToolArg]) -> str:
        """List the user's orders with a status."""
        return f"user {user_id}: 2 {status} orders"

    with pytest.raises(TypeError, match=r"user_id.*injected="):
        lmbridge.ReAct("question -> answer", tools=[orders])
    converted = from_langchain_tool(orders, injected={"user_id": 7})
    assert list(converted.args) == ["status"]
    lm = ScriptedLM([step("orders", {"status": "open"}), step("finish", {}), {"reasoning": "r", "answer": "2"}])
    result = lmbridge.ReAct("question -> answer", tools=[converted], lm=lm)(question="How many open orders?")
    assert result.trajectory[0]["observation"] == "user 7: 2 open orders"


def test_injected_tool_call_id_is_filled_with_the_call_id() -> None:
    @tool
    def ticket(title: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Open a ticket."""
        return f"{title} opened by {tool_call_id}"

    converted = from_langchain_tool(ticket)
    assert list(converted.args) == ["title"]
    assert converted(title="Broken kettle").startswith("Broken kettle opened by call_")


def test_return_direct_ends_the_loop_with_the_tool_result() -> None:
    @tool(return_direct=True)
    def lookup_price(item: str) -> str:
        """The price of an item."""
        return f"{item} costs 3 EUR"

    lm = ScriptedLM([step("lookup_price", {"item": "tea"})])
    result = lmbridge.ReAct("question -> answer", tools=[lookup_price], lm=lm)(question="Price of tea?")
    assert result.answer == "tea costs 3 EUR"
    assert result.finish_reason == "return_direct" and lm.remaining == 0


def test_return_direct_with_several_outputs_goes_through_extract() -> None:
    @tool(return_direct=True)
    def lookup_price(item: str) -> int:
        """The price of an item."""
        return 3

    lm = ScriptedLM([step("lookup_price", {"item": "tea"}), {"reasoning": "r", "answer": "3", "currency": "EUR"}])
    result = lmbridge.ReAct("question -> answer, currency", tools=[lookup_price], lm=lm)(question="Price of tea?")
    assert (result.answer, result.currency, result.finish_reason) == ("3", "EUR", "return_direct")


def failing(handle: Any) -> StructuredTool:
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        if b == 0:
            raise ToolException("cannot divide by zero")
        return a / b

    return StructuredTool.from_function(divide, handle_tool_error=handle)


@pytest.mark.parametrize(("handle", "observation", "error"), [
    (False, "Error: tool 'divide' failed: ToolException: cannot divide by zero", True),
    (True, "cannot divide by zero", False),
    ("Division failed, try another b.", "Division failed, try another b.", False),
    (lambda e: f"handled: {e}", "handled: cannot divide by zero", False),
])
def test_tool_exceptions_behave_as_in_langchain(handle: Any, observation: str, error: bool) -> None:
    lm = ScriptedLM([step("divide", {"a": 1, "b": 0}), step("finish", {}), {"reasoning": "r", "answer": "none"}])
    result = lmbridge.ReAct("question -> answer", tools=[failing(handle)], lm=lm)(question="1/0?")
    assert result.trajectory[0]["observation"] == observation
    assert result.trajectory[0]["error"] is error


def test_handle_validation_error_lets_langchain_answer() -> None:
    strict = from_langchain_tool(multiply)
    with pytest.raises(lmbridge.ToolError, match="b"):
        strict(a=1)
    lenient_tool = StructuredTool.from_function(multiply.func, name="multiply",  # type: ignore[arg-type]
                                                handle_validation_error="give a and b as integers")
    assert from_langchain_tool(lenient_tool)(a=1) == "give a and b as integers"


# -- LangChain models as bridge LMs ---------------------------------------------------------------------

class ToolChat(BaseChatModel):
    """A chat model that implements bind_tools and answers from a script of AIMessages."""

    script: list[AIMessage]
    seen: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "tool-chat"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=tools, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append({"messages": messages, **kwargs})
        return ChatResult(generations=[ChatGeneration(message=self.script.pop(0))])


def test_native_react_on_a_tool_calling_chat_model() -> None:
    chat = ToolChat(script=[
        AIMessage(content="", tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "c1"}]),
        AIMessage(content="", tool_calls=[{"name": "finish", "args": {}, "id": "c2"}]),
        AIMessage(content="Reasoning: 6*7=42\nAnswer: 42"),
    ], seen=[])
    lm = LangChainLM(chat.with_retry(stop_after_attempt=2), cache=False)
    assert lm.supports_function_calling()
    result = lmbridge.ReAct("question -> answer: int", tools=[multiply], lm=lm)(question="6 times 7?")
    assert result.answer == 42 and result.trajectory[0]["observation"] == "42"
    offered = [t["function"]["name"] for t in chat.seen[0]["tools"]]
    assert offered == ["multiply", "finish"]


def test_wrapped_and_text_models() -> None:
    base = GenericFakeChatModel(messages=iter(["Answer: Lima", "Answer: Quito"]))
    assert not LangChainLM(base).supports_function_calling()
    program = lmbridge.Predict("question -> answer", lm=LangChainLM(base.bind(stop=["\n\n"]), cache=False))
    assert program(question="Capital of Peru?").answer == "Lima"
    broken = GenericFakeChatModel(messages=iter([]))
    fallback = LangChainLM(broken.with_fallbacks([base]), cache=False)
    assert lmbridge.Predict("question -> answer", lm=fallback)(question="Capital of Ecuador?").answer == "Quito"
    text = LangChainLM(FakeListLLM(responses=["Lima"]), cache=False)
    assert lmbridge.Predict("question -> answer", lm=text)(question="Capital of Peru?").answer == "Lima"


def test_differently_configured_models_do_not_share_cache_entries() -> None:
    one = LangChainLM(GenericFakeChatModel(messages=iter(["a"]), tags=["x"]))
    assert LangChainLM(FakeListLLM(responses=["a"])).model != LangChainLM(FakeListLLM(responses=["b"])).model
    assert LangChainLM(FakeListLLM(responses=["a"])).model == LangChainLM(FakeListLLM(responses=["a"])).model
    base = FakeListLLM(responses=["a"])
    assert LangChainLM(base.bind(stop=["x"])).model != LangChainLM(base.bind(stop=["y"])).model
    assert one.model.startswith("langchain/GenericFakeChatModel/default@")


def test_a_failing_chat_model_gives_a_clear_error() -> None:
    class Down(GenericFakeChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise ConnectionError("provider unreachable")

    with pytest.raises(lmbridge.LMError, match="ConnectionError: provider unreachable"):
        lmbridge.Predict("q -> a", lm=LangChainLM(Down(messages=iter([])), cache=False))(q="?")


def test_langchain_lm_streams_through_the_model() -> None:
    chat = GenericFakeChatModel(messages=iter(["Reasoning: Lima is the capital of Peru.\nAnswer: Lima"]))
    program = lmbridge.ChainOfThought("question -> answer", lm=LangChainLM(chat, cache=False))
    events = list(program.stream(question="Capital of Peru?"))
    deltas = [e.delta for e in events if getattr(e, "field", None) == "reasoning" and hasattr(e, "delta")]
    assert len(deltas) > 3 and "".join(deltas).strip() == "Lima is the capital of Peru."
    assert events[-1].prediction.answer == "Lima"  # type: ignore[union-attr]
