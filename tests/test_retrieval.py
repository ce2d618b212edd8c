"""Retrieval: the retriever protocol, Retrieve, BM25Retriever (bm25s), and a RAG program on ScriptedLM."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

import lmbridge
from lmbridge.retrieval import aretrieve, retrieve, to_passage, to_passages
from lmbridge.testing import ScriptedLM

CORPUS = [
    "Paris is the capital and most populous city of France.",
    "The Amazon river flows through South America into the Atlantic Ocean.",
    "Denver Broncos defeated the Carolina Panthers to win Super Bowl 50.",
    "Photosynthesis converts light energy into chemical energy in plants.",
]


def test_items_are_normalised_to_passages() -> None:
    assert to_passage("text") == lmbridge.Passage("text")
    p = lmbridge.Passage("x", 1.5, {"id": 1})
    assert to_passage(p) is p
    from_map = to_passage({"text": "y", "score": 2, "id": "d1"})
    assert (from_map.text, from_map.score, dict(from_map.metadata)) == ("y", 2.0, {"id": "d1"})

    class Doc:
        page_content = "z"
        metadata = {"source": "s"}

    assert to_passage(Doc()).text == "z" and dict(to_passage(Doc()).metadata) == {"source": "s"}
    with pytest.raises(TypeError):
        to_passage(42)
    with pytest.raises(TypeError, match="text"):
        to_passage({"body": "no text key"})
    assert to_passages(None) == []


def test_a_plain_function_returning_strings_is_a_retriever() -> None:
    def search(query: str, k: int) -> list[str]:
        return [t for t in CORPUS if query.lower() in t.lower()][:k]

    retrieve_ = lmbridge.Retrieve(search, k=2)
    pred = retrieve_("paris")
    assert pred.passages == [CORPUS[0]]
    assert pred.passage_objects == [lmbridge.Passage(CORPUS[0])]
    assert isinstance(retrieve_, lmbridge.Module) and retrieve_.named_predictors() == []


def test_k_is_respected_per_call_and_by_default() -> None:
    def everything(query: str, k: int) -> list[str]:
        return CORPUS  # ignores k: Retrieve still keeps k

    assert len(lmbridge.Retrieve(everything, k=2)("q").passages) == 2
    assert len(lmbridge.Retrieve(everything, k=2)("q", k=3).passages) == 3
    with pytest.raises(ValueError):
        lmbridge.Retrieve(everything, k=0)
    with pytest.raises(TypeError):
        lmbridge.Retrieve("not callable")  # type: ignore[arg-type]


def test_async_retrievers_work_from_sync_and_async_code() -> None:
    async def search(query: str, k: int) -> list[lmbridge.Passage]:
        await asyncio.sleep(0)
        return [lmbridge.Passage(f"{query}-{i}", score=float(k - i)) for i in range(k)]

    module = lmbridge.Retrieve(search, k=2)
    assert module("q").passages == ["q-0", "q-1"]
    pred = asyncio.run(module.acall("r", k=3))
    assert pred.passages == ["r-0", "r-1", "r-2"]
    assert [p.score for p in pred.passage_objects] == [3.0, 2.0, 1.0]

    async def inside_a_loop() -> list[lmbridge.Passage]:
        return retrieve(search, "s", 1)  # sync call from code that runs an event loop

    assert [p.text for p in asyncio.run(inside_a_loop())] == ["s-0"]


def test_sync_retrievers_work_from_async_code() -> None:
    def search(query: str, k: int) -> list[str]:
        return [query] * k

    assert [p.text for p in asyncio.run(aretrieve(search, "x", 2))] == ["x", "x"]


def test_bm25_ranks_the_relevant_passage_first() -> None:
    bm25 = lmbridge.BM25Retriever(CORPUS, metadata=[{"id": f"d{i}"} for i in range(len(CORPUS))])
    assert len(bm25) == 4
    found = bm25("Who won Super Bowl 50?", 2)
    assert len(found) == 2
    assert found[0].text == CORPUS[2]
    assert found[0].metadata["id"] == "d2" and found[0].metadata["index"] == 2
    assert found[0].score > found[1].score
    assert bm25("capital of France", 1)[0].text == CORPUS[0]
    assert len(bm25("river", 10)) == len(CORPUS), "k larger than the corpus returns the corpus"
    assert bm25("the of and", 2) == [], "a query of stopwords only finds nothing"


def test_bm25_takes_passages_and_plugs_into_retrieve() -> None:
    passages = [lmbridge.Passage(t, metadata={"n": i}) for i, t in enumerate(CORPUS)]
    module = lmbridge.Retrieve(lmbridge.BM25Retriever(passages), k=1)
    pred = module("light energy in plants")
    assert pred.passages == [CORPUS[3]]
    assert pred.passage_objects[0].metadata["n"] == 3


def test_bm25_checks_its_corpus() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        lmbridge.BM25Retriever([])
    with pytest.raises(ValueError, match="metadata"):
        lmbridge.BM25Retriever(CORPUS, metadata=[{}])


def test_bm25_without_the_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(lmbridge.MissingDependencyError, match=r"lmbridge\[retrieval\]"):
        lmbridge.BM25Retriever(CORPUS)


def test_import_bridge_does_not_import_bm25s() -> None:
    code = "import sys, lmbridge; lmbridge.Retrieve(lambda q, k: []); print('bm25s' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class RAG(lmbridge.Module):
    def __init__(self, retriever: Any) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=2)
        self.answer = lmbridge.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        context = self.retrieve(question).passages
        return self.answer(context=context, question=question)


def test_a_rag_program_shows_the_passages_to_the_model() -> None:
    lm = ScriptedLM([{"reasoning": "The passage says Denver.", "answer": "Denver Broncos"}])
    program = RAG(lmbridge.BM25Retriever(CORPUS))
    with lmbridge.context(lm=lm):
        pred = program(question="Who won Super Bowl 50?")
    assert pred.answer == "Denver Broncos"
    prompt = lm.calls[0][-1]["content"]
    assert f"[1] {CORPUS[2]}" in prompt
    assert [n for n, _ in program.named_predictors()] == ["answer.predict"]


def test_the_docs_page_examples_run() -> None:
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "retrieval-rag.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert namespace["best"].metadata["id"] == "sb50"
    assert isinstance(namespace["rag"], lmbridge.RAG) and namespace["rag"].settings()["k"] == 2
    assert namespace["Extract"].output_fields["answer"].extract_from == "context"


def test_copies_of_a_program_share_the_retriever() -> None:
    bm25 = lmbridge.BM25Retriever(CORPUS)
    program = RAG(bm25)
    copy = program.deepcopy()
    assert isinstance(copy, RAG)
    assert copy.retrieve is not program.retrieve
    assert copy.retrieve.retriever is bm25
    assert copy.answer.predict is not program.answer.predict


def test_retrieve_refuses_k_above_what_the_retriever_holds(tmp_path: Any) -> None:
    bm25 = lmbridge.BM25Retriever(CORPUS)
    with pytest.raises(ValueError, match="k=5 is more than the 4 passages"):
        lmbridge.Retrieve(bm25, k=5)
    module = lmbridge.Retrieve(bm25, k=2)
    with pytest.raises(ValueError, match="k=9"):
        module("river", k=9)
    module.save(tmp_path / "r.json")
    saved = (tmp_path / "r.json").read_text().replace('"k": 2', '"k": 7')
    (tmp_path / "r.json").write_text(saved)
    with pytest.raises(lmbridge.StateError, match="k=7 is more than the 4 passages"):
        lmbridge.Retrieve(bm25, k=2).load(tmp_path / "r.json")
