"""Compiled predictors exported to LangChain: the prompt renders byte-identical messages, the chain
gives the same outputs as the predictor on the same model, and programs become LangChain tools."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from lmbridge.adapters.langchain import LangChainLM, to_langchain_chain, to_langchain_prompt, to_langchain_tool
from lmbridge.signatures import render_input

ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def pairs(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    return [(ROLES[m.type], str(m.content)) for m in messages]


def bridge_pairs(messages: list[lmbridge.Message]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


class ScriptedChat(BaseChatModel):
    """A LangChain chat model answering through a bridge ScriptedLM, recording what it was sent."""

    lm: Any
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        sent: list[lmbridge.Message] = [{"role": roles[m.type], "content": str(m.content)}  # type: ignore[typeddict-item]
                                      for m in messages]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.lm(sent)))])


class Place(BaseModel):
    city: str
    population: int


class Brief(lmbridge.Signature):
    """Write a one-line brief about the {place}, in {style} style."""

    place: Place = lmbridge.InputField(desc="where")
    facts: list[str] = lmbridge.InputField()
    formal: bool = lmbridge.InputField()
    year: int = lmbridge.InputField()
    note: str = lmbridge.InputField()
    tone: Literal["warm", "dry"] = lmbridge.OutputField()
    brief: str = lmbridge.OutputField()


def compiled_brief(format: lmbridge.PromptFormat | None = None) -> lmbridge.Predict:
    demos = [{"place": Place(city="Oslo", population=700000), "facts": ["fjord", "{braces}"], "formal": True,
              "year": 2020, "note": "use {curly} and {{double}}", "tone": "dry", "brief": "Oslo: a fjord city."}]
    predictor = lmbridge.Predict(Brief, format=format, demos=demos)
    predictor.instructions = "Write a one-line brief. Keep {braces} and {% raw %} text as written."
    return predictor


INPUTS: dict[str, Any] = {"place": Place(city="Lima", population=10000000), "facts": ["coast", "desert"],
                          "formal": False, "year": 1535, "note": "mention {the sea} and 100% of it"}


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(), lmbridge.ChatFormat(demos="inline", instructions="system"),
                                 lmbridge.JSONFormat()], ids=["chat", "chat-inline-system", "json"])
def test_exported_chain_sends_byte_identical_messages(fmt: lmbridge.PromptFormat) -> None:
    predictor = compiled_brief(fmt)
    chat = ScriptedChat(lm=ScriptedLM(lambda m: fmt.render_outputs(Brief, {"tone": "warm", "brief": "Lima."})),
                        seen=[])
    out = to_langchain_chain(predictor, chat).invoke(INPUTS)
    assert out == {"tone": "warm", "brief": "Lima."}
    assert pairs(chat.seen[0]) == bridge_pairs(predictor.messages(**INPUTS))
    via_bridge = ScriptedChat(lm=ScriptedLM(lambda m: fmt.render_outputs(Brief, {"tone": "warm", "brief": "Lima."})),
                              seen=[])
    pred = predictor.deepcopy()
    pred.lm = LangChainLM(via_bridge, cache=False)  # type: ignore[attr-defined]
    assert dict(pred(**INPUTS)) == out  # type: ignore[operator]
    assert pairs(via_bridge.seen[0]) == pairs(chat.seen[0])


def test_prompt_alone_renders_the_same_messages_for_text_and_written_list_inputs() -> None:
    predictor = lmbridge.Predict("context: list[str], question, strict: bool -> answer",
                               demos=[{"context": ["a {x}"], "question": "q?", "strict": True, "answer": "a"}])
    prompt = to_langchain_prompt(predictor, written=True)
    assert sorted(prompt.input_variables) == ["context", "question", "strict"]
    for inputs in ({"context": ["one", "two {y}"], "question": "Why {not}?", "strict": False},
                   {"context": [], "question": "Empty?", "strict": True}):
        written = {n: render_input(v) for n, v in inputs.items()}
        assert pairs(prompt.invoke(written).to_messages()) == bridge_pairs(predictor.messages(**inputs))


def test_chain_of_thought_exports_its_predictor() -> None:
    cot = lmbridge.ChainOfThought("question -> answer: int")
    chat = ScriptedChat(lm=ScriptedLM(lambda m: "Two and two.\nAnswer: 4"), seen=[])
    assert to_langchain_chain(cot, chat).invoke({"question": "2+2?"}) == {"reasoning": "Two and two.", "answer": 4}
    assert pairs(chat.seen[0]) == bridge_pairs(cot.predict.messages(question="2+2?"))


def test_unreadable_reply_raises_output_parser_exception() -> None:
    chat = ScriptedChat(lm=ScriptedLM(lambda m: "no number here"), seen=[])
    with pytest.raises(OutputParserException, match="number"):
        to_langchain_chain(lmbridge.Predict("question -> answer: int"), chat).invoke({"question": "?"})


def test_a_module_with_several_predictors_is_refused() -> None:
    agent = lmbridge.ReAct("question -> answer", tools=[lmbridge.Tool(lambda x: x, name="echo")])
    with pytest.raises(TypeError, match="predictors"):
        to_langchain_prompt(agent)


def test_program_as_a_langchain_tool() -> None:
    lm = ScriptedLM([{"answer": "Lima"}, {"answer": "Quito"}])
    sig = lmbridge.make_signature("country: str, detail: Literal['short', 'long'] -> answer",
                                "Name the capital of the country.", name="CapitalOf")
    tool = to_langchain_tool(lmbridge.Predict(sig, lm=lm))
    assert isinstance(tool, BaseTool)
    assert tool.name == "CapitalOf" and tool.description == "Name the capital of the country."
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert schema["properties"]["detail"]["enum"] == ["short", "long"] and schema["required"] == ["country", "detail"]
    assert tool.invoke({"country": "Peru", "detail": "short"}) == "Lima"
    message = tool.invoke({"type": "tool_call", "name": "CapitalOf", "id": "c1",
                           "args": {"country": "Ecuador", "detail": "short"}})
    assert message.content == "Quito" and message.artifact == {"answer": "Quito"}
    with pytest.raises(Exception, match="detail"):
        tool.invoke({"country": "Peru", "detail": "medium"})
    assert lm.remaining == 0


def test_async_tool() -> None:
    tool = to_langchain_tool(lmbridge.Predict("text -> summary", lm=ScriptedLM([{"summary": "short"}])))
    assert asyncio.run(tool.ainvoke({"text": "a long text"})) == "short"


def test_a_bridge_lm_as_a_langchain_chat_model_runs_the_exported_chain() -> None:
    from lmbridge.adapters.langchain._chat import BridgeChatModel

    lm = ScriptedLM(["Lima", "Answer: Quito"], chunk_size=3)
    chat = BridgeChatModel(lm=lm)
    program = lmbridge.Predict("question -> answer")
    assert to_langchain_chain(program, chat).invoke({"question": "Capital of Peru?"}) == {"answer": "Lima"}
    assert bridge_pairs(lm.calls[0]) == bridge_pairs(program.messages(question="Capital of Peru?"))
    chunks = list(chat.stream("Capital of Ecuador?"))
    assert "".join(str(c.content) for c in chunks) == "Answer: Quito" and len(chunks) > 2
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1 and usage[0]["output_tokens"] > 0
