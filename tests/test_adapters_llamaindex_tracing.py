"""Streaming and tracing with LlamaIndex: a query engine streams the answer field, a LlamaIndex LLM
streams through stream_chat, and a program run shows up in LlamaIndex instrumentation as one span tree
(program, predictor, retrieval, LLM calls, cache hits included)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llamaindex_fixtures import ScriptedChatLLM, hashing_index, read_jsonl, squad_dir, squad_nodes

from lmbridge.adapters.llamaindex import (
    LlamaIndexInstrumentation,
    LlamaIndexLM,
    from_llamaindex_retriever,
    to_query_engine,
)

if not (squad_dir() / "corpus.jsonl").is_file():
    pytest.skip("the SQuAD dataset is not available", allow_module_level=True)


class RAG(lmbridge.Module):
    def __init__(self, retriever: Any, k: int = 2) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate = lmbridge.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        return self.generate(context=self.retrieve(question).passages, question=question)


@pytest.fixture(scope="module")
def retriever() -> Any:
    questions = read_jsonl(squad_dir() / "dev.jsonl", 2)
    return from_llamaindex_retriever(hashing_index(squad_nodes(30, questions)).as_retriever())


REPLY = "Reasoning: the passage names the winner\nAnswer: Denver Broncos"


def test_a_streaming_query_engine_yields_the_answer_as_written(retriever: Any) -> None:
    engine = to_query_engine(RAG(retriever), streaming=True)
    with lmbridge.context(lm=ScriptedLM([REPLY], chunk_size=3)):
        response = engine.query("Which team won Super Bowl 50?")
        assert isinstance(response, StreamingResponse)
        deltas = list(response.response_gen)
    assert len(deltas) > 1 and "".join(deltas).strip() == "Denver Broncos"
    assert len(response.source_nodes) == 2
    assert (response.metadata or {})["outputs"]["answer"] == "Denver Broncos"


def test_an_async_streaming_query_engine(retriever: Any) -> None:
    engine = to_query_engine(RAG(retriever), streaming=True)

    async def run() -> tuple[list[str], Any]:
        response = await engine.aquery("Which team won Super Bowl 50?")
        assert isinstance(response, AsyncStreamingResponse)
        return [d async for d in response.response_gen], response

    with lmbridge.context(lm=ScriptedLM([REPLY], chunk_size=3)):
        deltas, response = asyncio.run(run())
    assert "".join(deltas).strip() == "Denver Broncos" and len(response.source_nodes) == 2


class StreamingLLM(ScriptedChatLLM):
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        text = self.replies.pop(0)

        def gen() -> Iterator[ChatResponse]:
            for i in range(0, len(text), 5):
                yield ChatResponse(message=ChatMessage(role="assistant", content=text[:i + 5]), delta=text[i:i + 5])

        return gen()


def test_a_llamaindex_llm_streams_through_stream_chat() -> None:
    lm = LlamaIndexLM(StreamingLLM(replies=["Denver Broncos won it"], seen=[]), cache=False)
    events = list(lmbridge.Predict("question -> answer", lm=lm).stream(question="Who won?"))
    deltas = [e.delta for e in events if isinstance(e, lmbridge.FieldDelta)]
    assert len(deltas) > 1 and "".join(deltas).strip() == "Denver Broncos won it"
    end = events[-1]
    assert isinstance(end, lmbridge.StreamEnd) and end.prediction.answer == "Denver Broncos won it"


# -- the span tree ---------------------------------------------------------------------------------------------

class Events(BaseEventHandler):
    seen: list[Any] = []

    @classmethod
    def class_name(cls) -> str:
        return "Events"

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.seen.append(event)


@pytest.fixture
def spans() -> Iterator[tuple[SimpleSpanHandler, Events]]:
    root = get_dispatcher()
    handler, events = SimpleSpanHandler(), Events(seen=[])
    root.add_span_handler(handler)
    root.add_event_handler(events)
    try:
        yield handler, events
    finally:
        root.span_handlers.remove(handler)
        root.event_handlers.remove(events)


def test_a_program_run_is_one_span_tree(retriever: Any, spans: tuple[SimpleSpanHandler, Events]) -> None:
    handler, events = spans
    engine = to_query_engine(RAG(retriever))
    lm = ScriptedLM([REPLY], cache=True, model="scripted-span-tree")
    with lmbridge.context(lm=lm, callbacks=[LlamaIndexInstrumentation()]):
        engine.query("Which team won Super Bowl 50?")
        engine.query("Which team won Super Bowl 50?")  # the second LM call is a cache hit
    by_id = {s.id_: s for s in handler.completed_spans}
    roots = [s for s in handler.completed_spans if s.id_.startswith("ProgramQueryEngine.query")]
    assert len(roots) == 2

    def children(span_id: str) -> list[Any]:
        return [s for s in handler.completed_spans if s.parent_id == span_id]

    for root in roots:
        [program] = [s for s in by_id.values()
                     if s.id_.startswith("lmbridge.module.RAG") and _under(s, root.id_, by_id)]
        kinds = [s.id_.split(".")[1] for s in sorted(children(program.id_), key=lambda s: s.start_time)]
        assert kinds[0] == "retriever" and kinds[1] in ("module", "predictor")
        [retrieval] = [s for s in children(program.id_) if s.id_.startswith("lmbridge.retriever")]
        assert any(s.id_.startswith("VectorIndexRetriever") for s in children(retrieval.id_))
        lm_spans = [s for s in by_id.values()
                    if s.id_.startswith("lmbridge.lm.") and _under(s, program.id_, by_id)]
        assert len(lm_spans) == 1
    chat_ends = [e for e in events.seen if type(e).__name__ == "LLMChatEndEvent"]
    assert [e.response.additional_kwargs["cached"] for e in chat_ends] == [False, True]
    assert all(e.span_id and e.span_id.startswith("lmbridge.lm.") for e in chat_ends)
    retrieval_ends = [e for e in events.seen if type(e).__name__ == "RetrievalEndEvent"
                      and (e.span_id or "").startswith("lmbridge.retriever")]
    assert len(retrieval_ends) == 2 and len(retrieval_ends[0].nodes) == 2


def _under(span: Any, ancestor: str, by_id: dict[str, Any]) -> bool:
    while span is not None and span.parent_id is not None:
        if span.parent_id == ancestor:
            return True
        span = by_id.get(span.parent_id)
    return False


def test_a_failing_run_drops_its_spans(spans: tuple[SimpleSpanHandler, Events]) -> None:
    handler, _ = spans
    program = lmbridge.Predict("question -> answer")
    with lmbridge.context(lm=ScriptedLM(["no label at all"] * 2 + ["still none"] * 2),
                        callbacks=[LlamaIndexInstrumentation()]):
        try:
            program(question="q")
        except lmbridge.ParseError:
            pass
    assert get_dispatcher().span_handlers  # the handler is still installed
    assert not [s for s in handler.open_spans.values() if s.id_.startswith("lmbridge.")]
