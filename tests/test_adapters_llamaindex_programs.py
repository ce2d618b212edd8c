"""Bridge programs out, into LlamaIndex: a query engine whose Response carries the retrieved nodes and
the typed outputs, a FunctionTool typed from the signature, a Workflow step that does not block the
event loop, and a ChatPromptTemplate that renders exactly the messages lmbridge sends."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import Response
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step
from llamaindex_fixtures import hashing_index, read_jsonl, squad_dir, squad_nodes

from lmbridge.adapters.llamaindex import (
    from_llamaindex_retriever,
    to_llamaindex_prompt,
    to_llamaindex_tool,
    to_query_engine,
)

if not (squad_dir() / "corpus.jsonl").is_file():
    pytest.skip("the SQuAD dataset is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def questions() -> list[dict[str, Any]]:
    return read_jsonl(squad_dir() / "dev.jsonl", 3)


@pytest.fixture(scope="module")
def index(questions: list[dict[str, Any]]) -> VectorStoreIndex:
    return hashing_index(squad_nodes(40, questions))


class Answer(lmbridge.Signature):
    """Answer from the context."""

    context: list[str] = lmbridge.InputField(desc="passages")
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField()
    confidence: float = lmbridge.OutputField()


class RAG(lmbridge.Module):
    def __init__(self, retriever: Any, k: int = 3) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate = lmbridge.ChainOfThought(Answer)

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        return self.generate(context=self.retrieve(question).passages, question=question)


def reply(answer: str) -> dict[str, Any]:
    return {"reasoning": "the context says so", "answer": answer, "confidence": 0.75}


# -- query engine ---------------------------------------------------------------------------------------

def test_query_engine_response_has_source_nodes_and_typed_outputs(index: VectorStoreIndex,
                                                                  questions: list[dict[str, Any]]) -> None:
    li = index.as_retriever()
    engine = to_query_engine(RAG(from_llamaindex_retriever(li), k=3))
    assert isinstance(engine, BaseQueryEngine)
    q = questions[0]["question"]
    with lmbridge.context(lm=ScriptedLM([reply("Denver Broncos")])):
        response = engine.query(q)
    assert isinstance(response, Response)
    assert response.response == "Denver Broncos"
    expected = li.retrieve(q)[:2]
    got = response.source_nodes
    assert len(got) == 3
    assert [(n.node.node_id, n.score) for n in got[:2]] == [(n.node.node_id, n.score) for n in expected]
    assert got[0].node.metadata["title"] == expected[0].node.metadata["title"]
    outputs = (response.metadata or {})["outputs"]
    assert outputs["confidence"] == 0.75 and isinstance(outputs["confidence"], float)
    assert outputs["reasoning"] == "the context says so"


def test_query_engine_async(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    engine = to_query_engine(RAG(from_llamaindex_retriever(index.as_retriever(), use_async=True), k=2))
    with lmbridge.context(lm=ScriptedLM([reply("Santa Clara")])):
        response = asyncio.run(engine.aquery(questions[0]["question"]))
    assert str(response) == "Santa Clara"
    assert len(response.source_nodes) == 2


def test_query_engine_needs_one_input_or_an_input_key() -> None:
    program = lmbridge.Predict("topic, question -> answer")
    with pytest.raises(TypeError, match="input_key"):
        to_query_engine(program)
    engine = to_query_engine(program, input_key="question", inputs={"topic": "football"})
    with lmbridge.context(lm=ScriptedLM([{"answer": "Broncos"}])) as settings:
        assert str(engine.query("Who won?")) == "Broncos"
    assert settings.lm is not None and "football" in settings.lm.calls[0][-1]["content"]  # type: ignore[attr-defined]


# -- tool ---------------------------------------------------------------------------------------------------

class Classify(lmbridge.Signature):
    """Classify the question by what kind of answer it expects."""

    question: str = lmbridge.InputField(desc="a question in English")
    max_words: int = lmbridge.InputField(desc="a limit")
    label: Literal["person", "place", "number"] = lmbridge.OutputField()


def test_tool_schema_is_typed_from_the_signature() -> None:
    tool = to_llamaindex_tool(lmbridge.Predict(Classify), name="classify")
    assert isinstance(tool, FunctionTool)
    schema = tool.metadata.get_parameters_dict()
    assert schema["properties"]["question"]["type"] == "string"
    assert schema["properties"]["question"]["description"] == "a question in English"
    assert schema["properties"]["max_words"]["type"] == "integer"
    assert sorted(schema["required"]) == ["max_words", "question"]
    assert tool.metadata.description.startswith("Classify the question")
    with lmbridge.context(lm=ScriptedLM([{"label": "place"}, {"label": "person"}])):
        assert tool(question="Where is Paris?", max_words=3).raw_output == "place"
        assert asyncio.run(tool.acall(question="Who won?", max_words=3)).content == "person"


def test_tool_with_several_outputs_returns_them_all() -> None:
    program = lmbridge.Predict("question -> answer, confidence: float")
    tool = to_llamaindex_tool(program)
    assert tool.metadata.name == "predict"
    with lmbridge.context(lm=ScriptedLM([{"answer": "Paris", "confidence": 0.5}])):
        assert tool(question="Capital of France?").raw_output == {"answer": "Paris", "confidence": 0.5}


# -- a workflow step --------------------------------------------------------------------------------------

class SlowLM(lmbridge.BaseLM):
    """Answers after a blocking sleep, as a local model or a slow HTTP client would."""

    def __init__(self, delay: float) -> None:
        super().__init__("slow", cache=False, num_retries=0)
        self.delay = delay

    def send(self, messages: Any, params: Any, signature: Any, fmt: Any) -> lmbridge.RawResult:
        time.sleep(self.delay)
        return lmbridge.RawResult("Paris")


class AskWorkflow(Workflow):
    program: lmbridge.Module = lmbridge.Predict("question -> answer")

    @step
    async def ask(self, ev: StartEvent) -> StopEvent:
        prediction = await self.program.acall(question=ev.question)
        return StopEvent(result=prediction.answer)


class AskSyncWorkflow(Workflow):
    program: lmbridge.Module = lmbridge.Predict("question -> answer")

    @step
    def ask(self, ev: StartEvent) -> StopEvent:  # LlamaIndex runs a sync step on a worker thread
        return StopEvent(result=self.program(question=ev.question).answer)


@pytest.mark.parametrize("workflow", [AskWorkflow, AskSyncWorkflow])
def test_a_program_step_does_not_block_the_event_loop(workflow: type[Workflow]) -> None:
    async def main() -> tuple[Any, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        with lmbridge.context(lm=SlowLM(0.4)):
            result = await workflow(timeout=10).run(question="Capital of France?")
        done.set()
        await task
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == "Paris"
    assert ticks >= 10  # the loop kept turning while the model worked


# -- prompt export --------------------------------------------------------------------------------------

def test_prompt_export_renders_exactly_the_messages_lmbridge_sends() -> None:
    predictor = lmbridge.Predict(Answer, format=lmbridge.ChatFormat(instructions="system"))
    predictor.demos = [lmbridge.Example(context=["Paris is in France."], question="Where is Paris?",
                                      answer="France", confidence=0.9)]
    inputs = {"context": ["Levi's Stadium {is} in Santa Clara.", "It hosted Super Bowl 50."],
              "question": "Where was {the} game played?"}
    template = to_llamaindex_prompt(predictor)
    assert isinstance(template, ChatPromptTemplate)
    rendered = template.format_messages(**inputs)
    expected = predictor.messages(**inputs)
    assert [(m.role.value, m.content) for m in rendered] == [(m["role"], m["content"]) for m in expected]
    assert set(template.template_vars) == {"context", "question"}
    assert template.output_parser is not None
    assert template.output_parser.parse("Santa Clara\nConfidence: 0.8") == {"answer": "Santa Clara",
                                                                             "confidence": 0.8}


def test_prompt_export_default_format_and_parser_types() -> None:
    predictor = lmbridge.Predict("question -> answer: int")
    template = to_llamaindex_prompt(predictor)
    rendered = template.format_messages(question="How many legs has a dog?")
    assert [ChatMessage(role=m["role"], content=m["content"]) for m in predictor.messages(
        question="How many legs has a dog?")] == rendered
    assert template.output_parser is not None
    assert template.output_parser.parse("4") == {"answer": 4}
    with pytest.raises(lmbridge.ParseError):
        template.output_parser.parse("four-ish")


def test_source_nodes_from_a_bridge_retriever(questions: list[dict[str, Any]]) -> None:
    pytest.importorskip("bm25s")
    rows = read_jsonl(squad_dir() / "corpus.jsonl", 30)
    bm25 = lmbridge.BM25Retriever([r["text"] for r in rows], [{"node_id": r["id"], "title": r["title"]} for r in rows])
    engine = to_query_engine(RAG(bm25, k=2))
    with lmbridge.context(lm=ScriptedLM([reply("Denver Broncos")])):
        response = engine.query(questions[0]["question"])
    expected = bm25(questions[0]["question"], 2)
    assert [n.node.get_content() for n in response.source_nodes] == [p.text for p in expected]
    assert [n.score for n in response.source_nodes] == [p.score for p in expected]
    assert response.source_nodes[0].node.node_id == expected[0].metadata["node_id"]
