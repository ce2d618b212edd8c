"""to_runnable as a LangChain user meets it: typed schemas, validation before any model call,
composition with prompts, retrievers and parsers, and LangChain's wrappers (config, retry,
fallbacks, configurable fields, as_tool). No network: bridge ScriptedLMs."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import ConfigurableField, RunnableLambda, RunnablePassthrough
from pydantic import BaseModel

from lmbridge.adapters.langchain import to_runnable


class Address(BaseModel):
    city: str
    country: str


class Profile(lmbridge.Signature):
    """Describe the person."""

    name: str = lmbridge.InputField(desc="the full name")
    age: int = lmbridge.InputField()
    tags: list[str] = lmbridge.InputField()
    home: Address = lmbridge.InputField()
    tone: Literal["formal", "casual"] = lmbridge.InputField()
    summary: str = lmbridge.OutputField()
    score: int = lmbridge.OutputField()


def profile_inputs() -> dict[str, Any]:
    return {"name": "Ada Lovelace", "age": 36, "tags": ["maths", "engines"],
            "home": {"city": "London", "country": "UK"}, "tone": "formal"}


# -- schemas and validation -----------------------------------------------------------------------

def test_input_and_output_schemas_are_typed_from_the_signature() -> None:
    runnable = to_runnable(lmbridge.Predict(Profile))
    schema = runnable.get_input_jsonschema()
    props = schema["properties"]
    assert props["age"]["type"] == "integer"
    assert props["tags"] == {"items": {"type": "string"}, "title": "Tags", "type": "array"}
    assert props["tone"]["enum"] == ["formal", "casual"]
    assert props["name"]["description"] == "the full name"
    assert "Address" in str(props["home"]) and "city" in str(schema["$defs"]["Address"])
    assert sorted(schema["required"]) == ["age", "home", "name", "tags", "tone"]
    out = runnable.get_output_jsonschema()["properties"]
    assert out["summary"]["type"] == "string" and out["score"]["type"] == "integer"


@pytest.mark.parametrize(("change", "problem"), [
    ({"age": "old"}, "age"), ({"tone": "angry"}, "tone"), ({"tags": "maths"}, "tags"),
    ({"home": {"city": "London"}}, "home.country"), ({"extra": 1}, "extra: unknown field"),
])
def test_bad_input_fails_before_any_model_call(change: dict[str, Any], problem: str) -> None:
    lm = ScriptedLM([{"summary": "x", "score": 1}])
    runnable = to_runnable(lmbridge.Predict(Profile, lm=lm))
    with pytest.raises(lmbridge.InputError, match=problem):
        runnable.invoke({**profile_inputs(), **change})
    assert lm.calls == []


def test_missing_field_is_named() -> None:
    lm = ScriptedLM([])
    inputs = profile_inputs()
    del inputs["age"]
    with pytest.raises(lmbridge.InputError, match="age: missing field"):
        to_runnable(lmbridge.Predict(Profile, lm=lm)).invoke(inputs)
    assert lm.calls == []


def test_valid_input_is_converted_to_the_field_types() -> None:
    lm = ScriptedLM([{"summary": "A mathematician.", "score": 9}])
    result = to_runnable(lmbridge.Predict(Profile, lm=lm)).invoke({**profile_inputs(), "age": "36"})
    assert result == {"summary": "A mathematician.", "score": 9}
    sent = lm.calls[0][-1]["content"]
    assert "Age: 36" in sent and '"city": "London"' in sent and "[1] maths\n[2] engines" in sent


# -- composition -------------------------------------------------------------------------------------

def echo_lm() -> ScriptedLM:
    return ScriptedLM(lambda messages: {"answer": "seen: " + messages[-1]["content"].splitlines()[-2]})


def test_after_a_chat_prompt_template_and_a_string() -> None:
    program = lmbridge.Predict("question -> answer", lm=echo_lm())
    prompt = ChatPromptTemplate.from_messages([("human", "What is the capital of {country}?")])
    chain = prompt | to_runnable(program)
    assert chain.invoke({"country": "Peru"}) == {"answer": "seen: Question: What is the capital of Peru?"}
    assert to_runnable(program).invoke("Hello?") == {"answer": "seen: Question: Hello?"}


class Library(BaseRetriever):
    """A retriever over three fixed documents with metadata."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document("The Broncos won Super Bowl 50.", metadata={"source": "wiki/Super_Bowl_50"}),
                Document("It was played at Levi's Stadium.", metadata={"source": "wiki/Levis", "page": 2})]


def test_after_a_retriever_documents_become_passages() -> None:
    lm = ScriptedLM([{"answer": "the Broncos"}])
    program = lmbridge.Predict("context: list[str], question -> answer", lm=lm)
    chain = {"context": Library(), "question": RunnablePassthrough()} | to_runnable(program)
    assert chain.invoke("Who won Super Bowl 50?") == {"answer": "the Broncos"}
    sent = lm.calls[0][-1]["content"]
    assert "[1] The Broncos won Super Bowl 50. (source: wiki/Super_Bowl_50)" in sent
    assert "[2] It was played at Levi's Stadium. (source: wiki/Levis; page: 2)" in sent
    assert "page_content" not in sent and "{" not in sent


def test_retriever_into_a_plain_text_field_and_a_custom_document_writer() -> None:
    lm = ScriptedLM([{"answer": "x"}, {"answer": "y"}])
    program = lmbridge.Predict("context, question -> answer", lm=lm)
    ({"context": Library(), "question": RunnablePassthrough()} | to_runnable(program)).invoke("Who won?")
    assert "Context: [1] The Broncos won Super Bowl 50." in lm.calls[0][-1]["content"]
    custom = to_runnable(program, document_text=lambda d: f"{d.metadata['source']} | {d.page_content}")
    ({"context": Library(), "question": RunnablePassthrough()} | custom).invoke("Who won?")
    assert "[1] wiki/Super_Bowl_50 | The Broncos won Super Bowl 50." in lm.calls[1][-1]["content"]


def test_before_string_and_json_parsers() -> None:
    cot = lmbridge.ChainOfThought("question -> answer", lm=ScriptedLM(
        lambda m: {"reasoning": "Lima is the capital.", "answer": "Lima"}))
    assert (to_runnable(cot) | StrOutputParser()).invoke({"question": "Capital of Peru?"}) == "Lima"
    assert (to_runnable(cot) | JsonOutputParser()).invoke({"question": "Capital of Peru?"}) == {
        "reasoning": "Lima is the capital.", "answer": "Lima"}
    two = lmbridge.Predict("q -> a, b", lm=ScriptedLM(lambda m: {"a": "1", "b": "2"}))
    with pytest.raises(lmbridge.InputError, match="output_key"):
        (to_runnable(two) | StrOutputParser()).invoke({"q": "?"})
    assert (to_runnable(two, output_key="b") | StrOutputParser()).invoke({"q": "?"}) == "2"
    rag = {"question": RunnablePassthrough()} | to_runnable(cot) | StrOutputParser()
    assert rag.invoke("Capital of Peru?") == "Lima"
    assert (RunnableLambda(lambda q: {"question": q}) | (to_runnable(cot) | JsonOutputParser())).invoke("?")[
        "answer"] == "Lima"


# -- LangChain's wrappers ------------------------------------------------------------------------------

def test_with_config_names_the_run() -> None:
    from langchain_core.tracers.context import collect_runs

    program = lmbridge.Predict("question -> answer", lm=echo_lm())
    with collect_runs() as collector:
        to_runnable(program).with_config(run_name="qa", tags=["t1"]).invoke({"question": "Hi"})
    assert collector.traced_runs[0].name == "qa" and "t1" in collector.traced_runs[0].tags


def test_with_retry_and_with_fallbacks() -> None:
    flaky = ScriptedLM([lmbridge.LMError("boom"), {"answer": "second try"}], num_retries=0)
    retried = to_runnable(lmbridge.Predict("question -> answer", lm=flaky)).with_retry(stop_after_attempt=2)
    assert retried.invoke({"question": "?"}) == {"answer": "second try"}
    broken = to_runnable(lmbridge.Predict("question -> answer", lm=ScriptedLM([lmbridge.LMError("down")],
                                                                             num_retries=0)))
    backup = to_runnable(lmbridge.Predict("question -> answer", lm=ScriptedLM([{"answer": "backup"}])))
    assert broken.with_fallbacks([backup]).invoke({"question": "?"}) == {"answer": "backup"}


def test_configurable_lm_and_temperature() -> None:
    own, other = ScriptedLM([{"answer": "own"}]), ScriptedLM([{"answer": "other"}, {"answer": "warm"}])
    program = lmbridge.ChainOfThought("question -> answer", lm=own)
    runnable = to_runnable(program, output_key="answer").configurable_fields(
        lm=ConfigurableField(id="lm"), temperature=ConfigurableField(id="temperature"))
    other = ScriptedLM([{"reasoning": "r", "answer": "other"}, {"reasoning": "r", "answer": "warm"}])
    own._script = [{"reasoning": "r", "answer": "own"}]
    assert runnable.invoke({"question": "?"}) == "own"
    assert runnable.invoke({"question": "?"}, {"configurable": {"lm": other}}) == "other"
    assert runnable.invoke({"question": "?"}, {"configurable": {"lm": other, "temperature": 0.7}}) == "warm"
    assert other.requests[1]["temperature"] == 0.7 and "temperature" not in other.requests[0]
    assert program.predict.lm is own  # the program itself is left alone


def test_as_tool_uses_the_signature() -> None:
    lm = ScriptedLM([{"answer": "Lima"}])
    program = lmbridge.Predict(lmbridge.make_signature("question -> answer", "Answer geography questions."), lm=lm)
    tool = to_runnable(program).as_tool()
    assert tool.name == "lmbridge_Predict"
    assert tool.description == "Answer geography questions."
    assert list(tool.tool_call_schema.model_json_schema()["properties"]) == ["question"]
    assert tool.invoke({"question": "Capital of Peru?"}) == {"answer": "Lima"}


def test_include_usage() -> None:
    lm = ScriptedLM([{"answer": "Lima"}])
    out = to_runnable(lmbridge.Predict("question -> answer", lm=lm), include_usage=True).invoke({"question": "?"})
    assert out["answer"] == "Lima"
    assert out["usage"]["calls"] == 1 and out["usage"]["prompt_tokens"] > 0


def test_batch_honours_max_concurrency_and_keeps_order() -> None:
    lock, active, peak = threading.Lock(), [0], [0]

    def answer(messages: list[lmbridge.Message]) -> dict[str, str]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return {"answer": messages[-1]["content"].splitlines()[-2].split()[1]}

    runnable = to_runnable(lmbridge.Predict("question -> answer", lm=ScriptedLM(answer)))
    inputs = [{"question": f"q{i}"} for i in range(8)]
    outputs = runnable.batch(inputs, config={"max_concurrency": 3})
    assert [o["answer"] for o in outputs] == [f"q{i}" for i in range(8)]
    assert 1 < peak[0] <= 3
    peak[0] = 0
    outputs = asyncio.run(runnable.abatch(inputs, config={"max_concurrency": 2}))
    assert [o["answer"] for o in outputs] == [f"q{i}" for i in range(8)] and peak[0] <= 2


def test_a_custom_module_with_named_inputs_gets_a_schema() -> None:
    class Shout(lmbridge.Module):
        def __init__(self) -> None:
            self.say = lmbridge.Predict("text -> loud", lm=ScriptedLM(lambda m: {"loud": "HI"}))

        def forward(self, text: str) -> lmbridge.Prediction:  # type: ignore[override]
            return self.say(text=text)

    runnable = to_runnable(Shout())
    assert runnable.get_input_jsonschema()["properties"]["text"]["type"] == "string"
    assert runnable.invoke("hi") == {"loud": "HI"}
    with pytest.raises(lmbridge.InputError, match="volume: unknown field"):
        runnable.invoke({"text": "hi", "volume": 3})
    assert (RunnableLambda(lambda x: {"text": x}) | runnable).invoke("hi") == {"loud": "HI"}
