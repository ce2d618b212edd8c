"""The LlamaIndex adapter, against the real llama-index-core: a retriever over real SQuAD paragraphs
feeding lmbridge.Retrieve, and LlamaIndex LLMs running bridge programs. No network."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
)
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode
from llamaindex_fixtures import ScriptedChatLLM, read_jsonl, squad_dir
from overlap_retriever import OverlapRetriever

from lmbridge.adapters.llamaindex import LlamaIndexLM, from_llamaindex_retriever

SQUAD = squad_dir()
if not (SQUAD / "corpus.jsonl").is_file():
    pytest.skip("the SQuAD dataset is not available", allow_module_level=True)



@pytest.fixture(scope="module")
def question() -> dict[str, Any]:
    return read_jsonl(SQUAD / "dev.jsonl", 1)[0]


@pytest.fixture(scope="module")
def retriever(question: dict[str, Any]) -> OverlapRetriever:
    rows = read_jsonl(SQUAD / "corpus.jsonl", 60)
    if question["context_id"] not in {r["id"] for r in rows}:
        rows.append({"id": question["context_id"], "title": question["title"], "text": question["context"]})
    nodes = [TextNode(text=r["text"], id_=r["id"], metadata={"title": r["title"]}) for r in rows]
    return OverlapRetriever(nodes, similarity_top_k=5)


def test_retriever_returns_passages_in_llamaindex_order(retriever: OverlapRetriever,
                                                        question: dict[str, Any]) -> None:
    adapted = from_llamaindex_retriever(retriever)
    passages = adapted(question["question"], 5)
    nodes = retriever.retrieve(question["question"])
    assert [p.text for p in passages] == [n.node.get_content() for n in nodes]
    assert [p.score for p in passages] == [n.score for n in nodes]
    assert passages[0].metadata["node_id"] == question["context_id"]
    assert passages[0].metadata["title"] == question["title"]
    assert isinstance(adapted, lmbridge.Retriever)


def test_k_sets_the_top_k_both_ways(retriever: OverlapRetriever, question: dict[str, Any]) -> None:
    adapted = from_llamaindex_retriever(retriever)
    assert len(adapted(question["question"], 2)) == 2
    assert len(adapted(question["question"], 50)) == 50  # more than the retriever was built with
    assert retriever.similarity_top_k == 5
    with pytest.raises(ValueError):
        adapted(question["question"], 0)


def test_llamaindex_retriever_feeds_bridge_retrieve(retriever: OverlapRetriever,
                                                    question: dict[str, Any]) -> None:
    retrieve = lmbridge.Retrieve(from_llamaindex_retriever(retriever), k=3)
    found = retrieve(question["question"])
    assert len(found.passages) == 3
    assert found.passages[0] == question["context"]
    assert found.passage_objects[0].metadata["node_id"] == question["context_id"]


def test_async_retriever_in_sync_and_async_retrieve(retriever: OverlapRetriever,
                                                    question: dict[str, Any]) -> None:
    adapted = from_llamaindex_retriever(retriever, use_async=True)
    retrieve = lmbridge.Retrieve(adapted, k=2)
    by_await = asyncio.run(retrieve.acall(question["question"]))
    by_call = retrieve(question["question"])
    assert by_await.passages == by_call.passages
    assert by_await.passages[0] == question["context"]


def test_retrieved_passages_reach_a_predictor(retriever: OverlapRetriever, question: dict[str, Any]) -> None:
    lm = ScriptedLM([{"answer": question["answers"][0]}])
    passages = lmbridge.Retrieve(from_llamaindex_retriever(retriever), k=2)(question["question"]).passages
    pred = lmbridge.Predict("context: list[str], question -> answer", lm=lm)(context=passages,
                                                                            question=question["question"])
    assert pred.answer == question["answers"][0]
    assert question["context"][:80] in lm.calls[0][-1]["content"]


def test_from_llamaindex_retriever_rejects_other_objects() -> None:
    with pytest.raises(TypeError):
        from_llamaindex_retriever(lambda q, k: [])  # type: ignore[arg-type]


# -- LLMs ----------------------------------------------------------------------------------------------


def test_bridge_program_on_a_llamaindex_llm(question: dict[str, Any]) -> None:
    llm = ScriptedChatLLM(replies=[f"Answer: {question['answers'][0]}"], seen=[])
    lm = LlamaIndexLM(llm, cache=False)
    program = lmbridge.Predict("question -> answer", lm=lm, format=lmbridge.ChatFormat(instructions="system"))
    with lmbridge.track_usage() as tracker:
        pred = program(question=question["question"])
    assert pred.answer == question["answers"][0]
    assert (tracker.usage.prompt_tokens, tracker.usage.completion_tokens) == (40, 3)
    assert [m.role.value for m in llm.seen[0]] == ["system", "user"]
    assert question["question"] in (llm.seen[0][-1].content or "")
    assert lm.model.startswith("llamaindex/ScriptedChatLLM/scripted-chat@")


def test_llamaindex_lm_async() -> None:
    llm = ScriptedChatLLM(replies=["Answer: Lima"], seen=[])
    program = lmbridge.Predict("question -> answer", lm=LlamaIndexLM(llm, cache=False))
    assert asyncio.run(program.acall(question="Capital of Peru?")).answer == "Lima"


def test_mock_llm_sees_the_prompt() -> None:
    lm = LlamaIndexLM(MockLLM(), cache=False)
    assert "Where was Super Bowl 50 played?" in lm("Where was Super Bowl 50 played?")


def test_llamaindex_lm_failure_is_an_lm_error() -> None:
    class Broken(ScriptedChatLLM):
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            raise ConnectionError("server gone")

    with pytest.raises(lmbridge.LMError) as info:
        LlamaIndexLM(Broken(), cache=False)("hi")
    assert isinstance(info.value.__cause__, ConnectionError)


def test_missing_llamaindex_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.core", None)
    with pytest.raises(lmbridge.MissingDependencyError, match=r"lmbridge\[llamaindex\]"):
        from_llamaindex_retriever(object())  # type: ignore[arg-type]
