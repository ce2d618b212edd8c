"""The adapters on the embedded model (SmolLM2-135M through llama.cpp): a bridge program inside a
LangChain LCEL chain, and a LlamaIndex retriever over real SQuAD paragraphs feeding a bridge RAG
program. Answer quality of a 135M model is not asserted; what a user relies on is."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.runnables import Runnable, RunnableLambda
from llama_index.core.schema import TextNode
from overlap_retriever import OverlapRetriever

from lmbridge.adapters.langchain import to_runnable
from lmbridge.adapters.llamaindex import from_llamaindex_retriever

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_jsonl

pytestmark = pytest.mark.real_model



class RAG(lmbridge.Module):
    def __init__(self, retriever: Any, k: int = 2) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.answer = lmbridge.Predict("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        passages = self.retrieve(question).passages
        return self.answer(context=passages, question=question)


@pytest.fixture
def lm(tmp_path: Path) -> lmbridge.LM:
    return lmbridge.LM("local/smollm2", cache=lmbridge.lm._cache.Cache(tmp_path), max_tokens=32)


@pytest.fixture(scope="module")
def questions() -> list[dict[str, Any]]:
    return load_jsonl("squad", "dev")[:2]


def test_program_runs_inside_an_lcel_chain(lm: lmbridge.LM, questions: list[dict[str, Any]]) -> None:
    program = lmbridge.Predict("context, question -> answer", lm=lm)
    chain: Runnable[Any, Any] = (
        RunnableLambda(lambda row: {"context": row["context"], "question": row["question"]})
        | to_runnable(program)
        | RunnableLambda(lambda out: out["answer"]))
    answers = chain.batch(questions)
    assert len(answers) == len(questions)
    assert all(isinstance(a, str) and a.strip() for a in answers)
    assert lm.usage.calls >= len(questions)
    # the chain is the program: calling it directly gives the same answers, now from the cache
    hits = lm.usage.cache_hits
    direct = [program(context=q["context"], question=q["question"]).answer for q in questions]
    assert direct == answers
    assert lm.usage.cache_hits - hits >= len(questions)
    assert asyncio.run(chain.ainvoke(questions[0])) == answers[0]


def test_llamaindex_retriever_feeds_a_rag_program_in_a_chain(lm: lmbridge.LM,
                                                             questions: list[dict[str, Any]]) -> None:
    rows = load_jsonl("squad", "corpus")[:60]
    known = {r["id"] for r in rows}
    rows += [{"id": q["context_id"], "title": q["title"], "text": q["context"]}
             for q in questions if q["context_id"] not in known]
    nodes = [TextNode(text=r["text"], id_=r["id"], metadata={"title": r["title"]}) for r in rows]
    rag = RAG(from_llamaindex_retriever(OverlapRetriever(nodes, similarity_top_k=4)), k=1)
    runnable = to_runnable(rag, input_key="question", output_key="answer")
    with lmbridge.context(lm=lm), lmbridge.trace() as steps:
        answers = [runnable.invoke(q["question"]) for q in questions]
    assert all(isinstance(a, str) and a.strip() for a in answers)
    # the gold paragraph, found by the LlamaIndex retriever, was in the prompt of each answer
    prompts = [step[1]["context"] for step in steps]
    assert len(prompts) == len(questions)
    for q, context in zip(questions, prompts):
        assert q["context"] in context
