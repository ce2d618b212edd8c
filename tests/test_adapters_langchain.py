"""The LangChain adapter, against the real langchain-core: tools, runnables, prompt migration and
chat models. No network: models are bridge ScriptedLMs or LangChain's own fake chat models."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import BaseTool, ToolException, tool
from pydantic import BaseModel, Field

from lmbridge.adapters.langchain import LangChainLM, from_langchain_tool, from_prompt_template, to_runnable

# -- tools ------------------------------------------------------------------------------------------


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and parentheses."""
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        raise ToolException(f"not an arithmetic expression: {expression!r}")
    return str(eval(expression, {"__builtins__": {}}))


class LookupArgs(BaseModel):
    title: str = Field(description="the article title, e.g. Super_Bowl_50")
    max_chars: int = Field(default=200, ge=10, le=1000, description="how much text to return")


@tool("lookup", args_schema=LookupArgs)
def lookup(title: str, max_chars: int = 200) -> str:
    """Return the start of a Wikipedia article."""
    return f"{title}:{max_chars}"


@tool
async def shout(text: str) -> str:
    """Upper-case the text."""
    await asyncio.sleep(0)
    return text.upper()


def without_titles(args: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in prop.items() if k != "title"} for name, prop in args.items()}


def test_langchain_tool_keeps_name_description_and_schema() -> None:
    converted = from_langchain_tool(lookup)
    assert converted.name == "lookup"
    assert converted.desc == "Return the start of a Wikipedia article."
    assert converted.args == without_titles(lookup.args)
    assert converted.json_schema()["required"] == ["title"]
    assert "lookup" in converted.describe() and "title" in converted.describe()


def test_converted_calculator_runs_the_langchain_tool() -> None:
    converted = from_langchain_tool(calculator)
    assert converted(expression="(6 + 1) * 6") == "42"


def test_arguments_are_validated_against_the_langchain_schema() -> None:
    converted = from_langchain_tool(lookup)
    assert converted(title="Super_Bowl_50") == "Super_Bowl_50:200"
    with pytest.raises(lmbridge.ToolError, match="max_chars"):
        converted(title="Super_Bowl_50", max_chars=5)
    with pytest.raises(lmbridge.ToolError, match="title"):
        converted(max_chars=50)


def test_a_failing_langchain_tool_becomes_a_tool_error() -> None:
    converted = from_langchain_tool(calculator)
    with pytest.raises(lmbridge.ToolError) as info:
        converted(expression="__import__('os')")
    assert isinstance(info.value.__cause__, ToolException)


def test_async_langchain_tool_runs_sync_and_async() -> None:
    converted = from_langchain_tool(shout)
    assert converted.is_async
    assert converted(text="hi") == "HI"
    assert asyncio.run(converted.acall(text="ho")) == "HO"


def test_tool_with_a_json_schema_dict() -> None:
    class Weather(BaseTool):
        name: str = "weather"
        description: str = "Current weather for a city."
        args_schema: dict[str, Any] = {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city"},
                           "unit": {"type": "string", "default": "C"}},
            "required": ["city"],
        }

        def _run(self, city: str, unit: str = "C") -> str:
            return f"12 {unit} in {city}"

    converted = from_langchain_tool(Weather())
    assert converted.args["city"] == {"type": "string", "description": "the city"}
    assert converted(city="Oslo") == "12 C in Oslo"
    with pytest.raises(lmbridge.ToolError):
        converted(unit="F")


def test_converted_tool_drives_react() -> None:
    lm = ScriptedLM([
        {"next_thought": "compute it", "next_tool_name": "calculator",
         "next_tool_args": {"expression": "6*7"}},
        {"next_thought": "I know it", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "the calculator said 42", "answer": "42"},
    ])
    agent = lmbridge.ReAct("question -> answer", tools=[from_langchain_tool(calculator)], lm=lm)
    result = agent(question="What is six times seven?")
    assert result.answer == "42"
    assert result.trajectory[0]["observation"] == "42"
    assert any("Evaluate an arithmetic expression" in m["content"] for m in lm.calls[0])


def test_from_langchain_tool_rejects_other_objects() -> None:
    with pytest.raises(TypeError):
        from_langchain_tool(lambda x: x)  # type: ignore[arg-type]


# -- programs as runnables ---------------------------------------------------------------------------


def capital_lm() -> ScriptedLM:
    capitals = {"France": "Paris", "Japan": "Tokyo", "Peru": "Lima"}

    def answer(messages: list[lmbridge.Message]) -> dict[str, str]:
        text = messages[-1]["content"]
        return {"answer": next(c for k, c in capitals.items() if k in text)}

    return ScriptedLM(answer)


def test_program_in_an_lcel_chain() -> None:
    program = lmbridge.Predict("question -> answer", lm=capital_lm())
    chain: Runnable[Any, Any] = (
        RunnableLambda(lambda country: {"question": f"What is the capital of {country}?"})
        | to_runnable(program)
        | RunnableLambda(lambda out: out["answer"].upper()))
    assert chain.invoke("France") == "PARIS"
    assert asyncio.run(chain.ainvoke("Japan")) == "TOKYO"


def test_runnable_batch_keeps_order_and_sees_bridge_context() -> None:
    program = lmbridge.Predict("question -> answer")  # no LM of its own: it comes from the context
    runnable = to_runnable(program)
    questions = [{"question": f"Capital of {c}?"} for c in ("Peru", "France", "Japan")]
    with lmbridge.context(lm=capital_lm()):
        outputs = runnable.batch(questions)
    assert [o["answer"] for o in outputs] == ["Lima", "Paris", "Tokyo"]


def test_input_and_output_keys() -> None:
    program = lmbridge.ChainOfThought("question -> answer", lm=ScriptedLM(
        lambda messages: {"reasoning": "known", "answer": "Lima"}))
    runnable = to_runnable(program, input_key="question", output_key="answer")
    chain: Runnable[Any, Any] = (
        {"question": RunnablePassthrough()} | to_runnable(program) | RunnableLambda(lambda o: o["reasoning"]))
    assert runnable.invoke("Capital of Peru?") == "Lima"
    assert chain.invoke("Capital of Peru?") == "known"


def test_runnable_passes_input_errors_through() -> None:
    runnable = to_runnable(lmbridge.Predict("question -> answer", lm=capital_lm()))
    with pytest.raises(lmbridge.InputError, match="topic"):
        runnable.invoke({"question": "Capital of Peru?", "topic": "geo"})
    two_inputs = to_runnable(lmbridge.Predict("context, question -> answer", lm=capital_lm()))
    with pytest.raises(lmbridge.InputError, match="input_key"):
        two_inputs.invoke("Capital of Peru?")


def test_compiled_state_reaches_the_runnable(tmp_path: Any) -> None:
    program = lmbridge.Predict("question -> answer")
    program.demos = [lmbridge.Example(question="Capital of Italy?", answer="Rome")]
    program.instructions = "Name the capital city."
    program.save(tmp_path / "capitals.json")
    lm = capital_lm()
    loaded = lmbridge.Predict("question -> answer", lm=lm).load(tmp_path / "capitals.json")
    assert to_runnable(loaded).invoke({"question": "Capital of Peru?"}) == {"answer": "Lima"}
    sent = "\n".join(m["content"] for m in lm.calls[0])
    assert "Name the capital city." in sent and "Rome" in sent


def test_runnable_has_a_name() -> None:
    assert to_runnable(lmbridge.Predict("q -> a")).get_name() == "lmbridge.Predict"
    assert to_runnable(lmbridge.Predict("q -> a"), name="qa").get_name() == "qa"


# -- prompt templates as signatures --------------------------------------------------------------------

RAG_PROMPT = """You are an assistant for question-answering tasks. Use the following pieces of retrieved \
context to answer the question. If you don't know the answer, just say that you don't know. Keep the \
answer concise.

Context:
{context}

Question: {question}
Helpful answer:"""


def test_rag_prompt_becomes_a_signature() -> None:
    sig = from_prompt_template(PromptTemplate.from_template(RAG_PROMPT))
    assert list(sig.input_fields) == ["context", "question"]
    assert list(sig.output_fields) == ["answer"]
    assert sig.instructions.startswith("You are an assistant for question-answering tasks.")
    assert sig.instructions.endswith("Keep the answer concise.")
    assert "{" not in sig.instructions and "Helpful answer" not in sig.instructions
    assert "Question:" not in sig.instructions and "Context:" not in sig.instructions


def test_migrated_signature_runs_and_prompts_with_the_inputs() -> None:
    sig = from_prompt_template(PromptTemplate.from_template(RAG_PROMPT))
    lm = ScriptedLM([{"answer": "Denver Broncos"}])
    pred = lmbridge.Predict(sig, lm=lm)(context="The Denver Broncos defeated the Carolina Panthers 24-10.",
                                      question="Who won Super Bowl 50?")
    assert pred.answer == "Denver Broncos"
    sent = "\n".join(m["content"] for m in lm.calls[0])
    assert "Who won Super Bowl 50?" in sent and "Carolina Panthers" in sent
    assert "If you don't know the answer" in sent


def test_inline_variables_become_slots_and_labels_become_prefixes() -> None:
    template = PromptTemplate.from_template(
        "Classify the sentiment of this {product} review as positive or negative.\n\n"
        "Customer review: {review}\n\nSentiment:")
    sig = from_prompt_template(template, output_fields="sentiment: Literal['positive', 'negative']")
    assert sig.instructions == "Classify the sentiment of this {product} review as positive or negative."
    assert sig.input_fields["review"].label == "Customer review"
    assert sig.input_fields["product"].label == "Product"
    lm = ScriptedLM([{"sentiment": "negative"}])
    assert lmbridge.Predict(sig, lm=lm)(product="kettle", review="Broke in a week.").sentiment == "negative"
    assert lm.calls[0][-1]["content"].startswith("Classify the sentiment of this kettle review as positive")


def test_a_sentence_before_a_variable_stays_an_instruction() -> None:
    summarize = PromptTemplate.from_template(
        'Write a concise summary of the following:\n\n"{text}"\n\nCONCISE SUMMARY:')
    sig = from_prompt_template(summarize, output_fields="summary")
    assert sig.instructions == "Write a concise summary of the following:"
    assert sig.input_fields["text"].label == "Text"
    inline = from_prompt_template(PromptTemplate.from_template("Summarize the following text: {text}"))
    assert inline.instructions == "Summarize the following text: {text}"


def test_chat_prompt_template_with_partials_and_history() -> None:
    template = ChatPromptTemplate.from_messages([
        ("system", "You are a helpful {role}. Answer in {language}, in one sentence."),
        MessagesPlaceholder("history"),
        ("ai", "Bonjour !"),
        ("human", "{question}"),
    ]).partial(language="French")
    sig = from_prompt_template(template, instructions=None)
    assert list(sig.input_fields) == ["role", "history", "question"]
    assert sig.input_fields["history"].annotation == list[str]
    assert sig.instructions == "You are a helpful {role}. Answer in French, in one sentence."
    assert "Bonjour" not in sig.instructions


def test_optional_history_is_dropped_and_instructions_can_be_given() -> None:
    template = ChatPromptTemplate.from_messages([
        ("system", "Be brief."), MessagesPlaceholder("history", optional=True), ("human", "{question}")])
    sig = from_prompt_template(template, output_fields="answer: str, confidence: float",
                               instructions="Answer briefly and rate your confidence.")
    assert list(sig.input_fields) == ["question"]
    assert list(sig.output_fields) == ["answer", "confidence"]
    assert sig.output_fields["confidence"].annotation is float
    assert sig.instructions == "Answer briefly and rate your confidence."


def test_mustache_template_and_template_logic() -> None:
    sig = from_prompt_template(PromptTemplate.from_template(
        "Translate into {{language}}.\nText: {{text}}", template_format="mustache"))
    assert list(sig.input_fields) == ["language", "text"]
    assert sig.instructions == "Translate into {language}."
    looping = PromptTemplate.from_template("{{#items}}- {{.}}\n{{/items}}Pick one.",
                                           template_format="mustache")
    assert from_prompt_template(looping).input_fields["items"].annotation == list[str]
    logic = PromptTemplate.from_template("{{#urgent}}Reply now.{{/urgent}}\n{{text}}", template_format="mustache")
    with pytest.raises(lmbridge.SignatureError, match=r"mustache section '\{\{#urgent\}\}.*instructions="):
        from_prompt_template(logic)


def test_escaped_braces_stay_literal() -> None:
    sig = from_prompt_template(PromptTemplate.from_template(
        'Reply with JSON like {{"label": "..."}} for the text.\nText: {text}'), output_fields="label: str")
    assert sig.instructions == 'Reply with JSON like {"label": "..."} for the text.'


# -- chat models as LMs -------------------------------------------------------------------------------


class RecordingChat(GenericFakeChatModel):
    """LangChain's generic fake chat model, recording the messages it was sent."""

    seen: list[list[BaseMessage]] = []

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def test_bridge_program_on_a_langchain_chat_model() -> None:
    reply = AIMessage(content="Answer: Santa Clara", usage_metadata={
        "input_tokens": 31, "output_tokens": 4, "total_tokens": 35})
    chat = RecordingChat(messages=iter([reply]), seen=[])
    lm = LangChainLM(chat, cache=False)
    program = lmbridge.Predict("question -> answer", lm=lm)
    with lmbridge.track_usage() as tracker:
        pred = program(question="Where was Super Bowl 50 played?")
    assert pred.answer == "Santa Clara"
    assert (tracker.usage.prompt_tokens, tracker.usage.completion_tokens, tracker.usage.calls) == (31, 4, 1)
    sent = chat.seen[0]
    assert sent[-1].type == "human" and "Where was Super Bowl 50 played?" in str(sent[-1].content)
    assert lm.model.startswith("langchain/RecordingChat/default@")


def test_langchain_lm_async_and_message_roles() -> None:
    chat = RecordingChat(messages=iter(["Answer: Lima"]), seen=[])
    lm = LangChainLM(chat, cache=False)
    fmt = lmbridge.ChatFormat(instructions="system")
    program = lmbridge.Predict("question -> answer", lm=lm, format=fmt,
                             demos=[{"question": "Capital of Italy?", "answer": "Rome"}])
    pred = asyncio.run(program.acall(question="Capital of Peru?"))
    assert pred.answer == "Lima"
    assert [m.type for m in chat.seen[0]] == ["system", "human", "ai", "human"]


def test_langchain_lm_maps_provider_errors() -> None:
    class RateLimitError(Exception):
        status_code = 429

    class Failing(GenericFakeChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise RateLimitError("slow down")

    lm = LangChainLM(Failing(messages=iter([])), cache=False)
    with pytest.raises(lmbridge.RateLimitError) as info:
        lm("hello")
    assert isinstance(info.value.__cause__, RateLimitError)


def test_langchain_lm_rejects_other_objects() -> None:
    with pytest.raises(TypeError):
        LangChainLM(object())  # type: ignore[arg-type]


# -- optional dependency -------------------------------------------------------------------------------


def test_missing_langchain_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(lmbridge.MissingDependencyError, match=r"lmbridge\[langchain\]"):
        to_runnable(lmbridge.Predict("q -> a"))


def test_importing_the_adapters_does_not_import_the_frameworks() -> None:
    code = ("import sys, lmbridge, adapters, lmbridge.adapters.langchain, lmbridge.adapters.llamaindex; "
            "print([m for m in ('langchain_core', 'llama_index') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_langchain_docs_page_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "langchain.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 8
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, "docs/langchain.md", "exec", dont_inherit=True), namespace)
    out = capsys.readouterr().out
    for shown in ("{'team': 'billing'}", "5 days", "{'answer': 'other'}", "{'answer': 'Lima'}",
                  "capital_of Lima", "Order 7 shipped yesterday. return_direct", "SQL Query",
                  "chain: lmbridge.ChainOfThought\n  chain: Predict\n    chat_model: scripted"):
        assert shown in out
