"""LangChain things in, as a LangChain user hands them over: a tool with both a sync and an async
implementation runs the one that fits the call, and a ``BaseRetriever`` (a vector store's, or a
community-style one with a ``k`` field) serves ``lmbridge.Retrieve`` directly, sync and async, with
``k`` and search kwargs, never mutated, failing as a ``RetrievalError``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lmbridge
from examples.data import load_jsonl

pytest.importorskip("langchain_core")

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool
from langchain_core.vectorstores import InMemoryVectorStore

from lmbridge.adapters.langchain import from_langchain_retriever, from_langchain_tool
from lmbridge.lm import HashingEmbedder

# -- tools ---------------------------------------------------------------------------------------------

def _dual_tool(calls: list[str]) -> StructuredTool:
    def lookup(city: str) -> str:
        calls.append("sync")
        return f"{city}: sunny (sync)"

    async def alookup(city: str) -> str:
        calls.append("async")
        return f"{city}: sunny (async)"

    return StructuredTool.from_function(func=lookup, coroutine=alookup, name="weather", description="Weather.")


def test_a_tool_with_func_and_coroutine_runs_func_when_called_synchronously() -> None:
    calls: list[str] = []
    tool = from_langchain_tool(_dual_tool(calls))
    assert tool(city="Paris") == "Paris: sunny (sync)"
    assert calls == ["sync"]


def test_the_same_tool_awaits_its_coroutine_in_async_code() -> None:
    calls: list[str] = []
    tool = from_langchain_tool(_dual_tool(calls))
    assert asyncio.run(tool.acall(city="Oslo")) == "Oslo: sunny (async)"
    assert calls == ["async"]


def test_a_coroutine_only_tool_still_runs_when_called_synchronously() -> None:
    async def alookup(city: str) -> str:
        return f"{city}: rain"

    tool = from_langchain_tool(StructuredTool.from_function(coroutine=alookup, name="w", description="Weather."))
    assert tool(city="Bergen") == "Bergen: rain"


# -- retrievers ----------------------------------------------------------------------------------------

class _Hashing(Embeddings):
    """lmbridge's deterministic feature-hashing embedder as LangChain ``Embeddings``."""

    def __init__(self) -> None:
        self.embed = HashingEmbedder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


@pytest.fixture(scope="module")
def paragraphs() -> list[dict[str, Any]]:
    try:
        rows = load_jsonl("squad", "corpus")
    except FileNotFoundError:
        pytest.skip("the SQuAD dataset is not available (set LMBRIDGE_DATASETS)")
    first = [r for r in rows if r["title"] == rows[0]["title"]][:30]  # Super Bowl 50, then other articles
    others = [r for i, r in enumerate(rows) if r["title"] != rows[0]["title"] and r["title"] != rows[i - 1]["title"]]
    return first + others[:10]


@pytest.fixture(scope="module")
def store(paragraphs: list[dict[str, Any]]) -> InMemoryVectorStore:
    vs = InMemoryVectorStore(_Hashing())
    vs.add_texts([p["text"] for p in paragraphs], metadatas=[{"title": p["title"]} for p in paragraphs])
    return vs


class KeywordRetriever(BaseRetriever):
    """A community-style retriever: an integer ``k`` field, sync and async paths that say which ran."""

    docs: list[Document]
    k: int = 2
    ran: list[str] = []

    def _rank(self, query: str) -> list[Document]:
        words = set(query.lower().split())
        return sorted(self.docs, key=lambda d: -len(words & set(d.page_content.lower().split())))[: self.k]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.ran.append("sync")
        return self._rank(query)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        self.ran.append("async")
        return self._rank(query)


def test_retrieve_takes_a_langchain_retriever_directly_and_honours_k(store: InMemoryVectorStore) -> None:
    lc = store.as_retriever()  # LangChain's default top-k is 4
    out = lmbridge.Retrieve(lc, k=6)("Which team won Super Bowl 50?")
    assert len(out.passages) == 6
    assert any("Super Bowl" in p for p in out.passages)
    assert "title" in out.passage_objects[0].metadata
    assert len(lmbridge.Retrieve(lc, k=2)("Super Bowl").passages) == 2
    assert lc.search_kwargs == {}  # the user's retriever is never changed


def test_search_kwargs_reach_the_vector_store(store: InMemoryVectorStore, paragraphs: list[dict[str, Any]]) -> None:
    title = paragraphs[-1]["title"]
    keep = from_langchain_retriever(store.as_retriever(), k=3,
                                    search_kwargs={"filter": lambda d: d.metadata["title"] == title})
    found = lmbridge.Retrieve(keep)("Super Bowl")
    assert found.passage_objects and all(p.metadata["title"] == title for p in found.passage_objects)


def test_a_k_field_is_set_per_call_on_a_copy(paragraphs: list[dict[str, Any]]) -> None:
    lc = KeywordRetriever(docs=[Document(p["text"]) for p in paragraphs], k=2, ran=[])
    assert len(lmbridge.Retrieve(lc, k=5)("Super Bowl").passages) == 5
    assert lc.k == 2


def test_async_code_goes_through_ainvoke(paragraphs: list[dict[str, Any]]) -> None:
    lc = KeywordRetriever(docs=[Document(p["text"]) for p in paragraphs], ran=[])
    out = asyncio.run(lmbridge.Retrieve(lc, k=3).acall("Denver Broncos"))
    assert len(out.passages) == 3
    assert lc.ran == ["async"]
    lmbridge.Retrieve(lc, k=3)("Denver Broncos")
    assert lc.ran == ["async", "sync"]


def test_a_failing_retriever_is_a_retrieval_error_naming_it() -> None:
    class Broken(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            raise ConnectionError("index offline")

    with pytest.raises(lmbridge.RetrievalError, match=r"Broken.*index offline"):
        lmbridge.Retrieve(Broken())("q")
    with pytest.raises(lmbridge.RetrievalError, match="index offline"):
        asyncio.run(lmbridge.Retrieve(Broken()).acall("q"))


def test_search_kwargs_a_retriever_cannot_take_are_refused(paragraphs: list[dict[str, Any]]) -> None:
    lc = KeywordRetriever(docs=[Document(p["text"]) for p in paragraphs], ran=[])
    with pytest.raises(TypeError, match="takes no search kwargs"):
        from_langchain_retriever(lc, search_kwargs={"filter": {"title": "x"}})


def test_a_failing_retriever_counts_as_a_failed_example_in_evaluate(paragraphs: list[dict[str, Any]]) -> None:
    class Broken(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            raise ConnectionError("index offline")

    retrieve = lmbridge.Retrieve(Broken())
    rows = [lmbridge.Example(query="Super Bowl").with_inputs("query")]
    result = lmbridge.Evaluate(devset=rows, metric=lambda ex, pred, trace=None: 1.0)(retrieve)
    assert result.score == 0.0


def test_search_kwargs_of_one_call_apply_to_that_call_only(store: InMemoryVectorStore,
                                                          paragraphs: list[dict[str, Any]]) -> None:
    title = paragraphs[-1]["title"]
    retrieve = lmbridge.Retrieve(store.as_retriever(), k=3)
    kept = retrieve("Super Bowl", filter=lambda d: d.metadata["title"] == title)
    assert kept.passage_objects and all(p.metadata["title"] == title for p in kept.passage_objects)
    assert any(p.metadata["title"] != title for p in retrieve("Super Bowl").passage_objects)
