"""The seams on the real embedded model (SmolLM2-135M via llama.cpp) and real SQuAD data: a RAG
program over a LangChain retriever, sync and async; a migrated LlamaIndex prompt answering; a
LabeledFewShot compile whose estimate bounds what it spent. Asserts structure and typed values,
never a particular completion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lmbridge
from examples.data import datasets_dir, load_jsonl

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT

from lmbridge.adapters.llamaindex import from_llamaindex_prompt

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def squad() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        return load_jsonl("squad", "corpus")[:30], load_jsonl("squad", "dev")[:2]
    except FileNotFoundError:
        pytest.skip("the SQuAD dataset is not available (set LMBRIDGE_DATASETS)")


class SquadBM25(BaseRetriever):
    """A LangChain retriever over SQuAD paragraphs, ranked by lmbridge's BM25, with a ``k`` field."""

    index: Any
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(p.text, metadata={"title": p.metadata.get("title", "")}) for p in self.index(query, self.k)]


class RAG(lmbridge.Module):
    def __init__(self, retriever: BaseRetriever) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=2)  # a LangChain retriever, directly
        self.answer = lmbridge.Predict("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:
        context = self.retrieve(question).passages
        return self.answer(context=context, question=question).copy(context=context)

    async def aforward(self, question: str) -> lmbridge.Prediction:
        context = (await self.retrieve.acall(question)).passages
        return (await self.answer.acall(context=context, question=question)).copy(context=context)


def test_rag_over_a_langchain_retriever_answers_sync_and_async(squad: Any) -> None:
    corpus, dev = squad
    index = lmbridge.BM25Retriever([r["text"] for r in corpus], [{"title": r["title"]} for r in corpus])
    rag = RAG(SquadBM25(index=index))
    with lmbridge.context(lm=lmbridge.LM("local/smollm2", max_tokens=128)):
        first = rag(question=dev[0]["question"])
        second = asyncio.run(rag.acall(question=dev[1]["question"]))
    for pred in (first, second):
        assert len(pred.context) == 2 and isinstance(pred.answer, str) and pred.answer.strip()
    found = lmbridge.evaluate.answer_passage_match(lmbridge.Example(answers=dev[0]["answers"]), first)
    assert found in (0.0, 1.0)


def test_a_migrated_llamaindex_prompt_answers_on_the_embedded_model(squad: Any) -> None:
    corpus, _dev = squad
    qa = lmbridge.Predict(from_llamaindex_prompt(DEFAULT_TEXT_QA_PROMPT), lm=lmbridge.LM("local/smollm2",
                                                                                       max_tokens=128))
    pred = qa(context_str=[corpus[0]["text"]], query_str="Which team won Super Bowl 50?")
    assert isinstance(pred.answer, str) and pred.answer.strip()
    assert "Given the context information and not prior knowledge" in qa.messages(
        context_str=["x"], query_str="q")[-1]["content"]


def test_a_labeled_fewshot_compile_spends_within_its_estimate() -> None:
    rows = lmbridge.datasets.load_classification(datasets_dir() / "sst2", "train", 12)
    train, val = rows[:6], rows[6:]
    student = lmbridge.Predict("text -> label: Literal['negative', 'positive']",
                               lm=lmbridge.LM("local/smollm2", cache=False))
    optimizer = lmbridge.LabeledFewShot(k=2, metric=lmbridge.metrics.exact_match("label"))
    estimate = optimizer.estimate(student, trainset=train, valset=val)
    with pytest.warns(RuntimeWarning, match="valset"):
        compiled = optimizer.compile(student, trainset=train, valset=val)
    assert compiled.report is not None
    assert 0 < compiled.report["lm_calls"] <= estimate.lm_calls
