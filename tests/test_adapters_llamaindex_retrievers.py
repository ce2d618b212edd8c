"""LlamaIndex retrievers in, on a real VectorStoreIndex over SQuAD paragraphs: k sets the
retriever's top-k per call (up and down, thread-safely), k is saved with the program, filters,
QueryBundles, postprocessors, query engines, metadata fidelity, empty results and failures."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever, QueryFusionRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores import ExactMatchFilter, MetadataFilters
from llamaindex_fixtures import hashing_index, read_jsonl, squad_dir, squad_nodes

from lmbridge.adapters.llamaindex import AsyncLlamaIndexRetriever, LlamaIndexRetriever, from_llamaindex_retriever

if not (squad_dir() / "corpus.jsonl").is_file():
    pytest.skip("the SQuAD dataset is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def questions() -> list[dict[str, Any]]:
    return read_jsonl(squad_dir() / "dev.jsonl", 5)


@pytest.fixture(scope="module")
def index(questions: list[dict[str, Any]]) -> VectorStoreIndex:
    return hashing_index(squad_nodes(60, questions))


# -- k sets similarity_top_k, per call ------------------------------------------------------------

def test_k_raises_the_default_top_k_of_two(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    li = index.as_retriever()  # similarity_top_k=2, LlamaIndex's default
    retrieve = lmbridge.Retrieve(from_llamaindex_retriever(li), k=5)
    found = retrieve(questions[0]["question"])
    assert len(found.passages) == 5
    assert li.similarity_top_k == 2  # the shared retriever is untouched
    assert [p.metadata["node_id"] for p in found.passage_objects[:2]] == \
        [n.node.node_id for n in li.retrieve(questions[0]["question"])]


def test_k_lowers_the_top_k(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    li = index.as_retriever(similarity_top_k=10)
    adapted = from_llamaindex_retriever(li)
    assert len(adapted(questions[0]["question"], 3)) == 3
    assert len(adapted(questions[0]["question"], 7)) == 7
    assert li.similarity_top_k == 10


def test_default_k_and_the_retrievers_own(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    li = index.as_retriever(similarity_top_k=4)
    assert len(from_llamaindex_retriever(li)(questions[0]["question"])) == 4
    assert len(from_llamaindex_retriever(li, k=6)(questions[0]["question"])) == 6
    with pytest.raises(ValueError):
        from_llamaindex_retriever(li, k=0)
    with pytest.raises(ValueError):
        from_llamaindex_retriever(li)(questions[0]["question"], 0)


def test_concurrent_calls_with_different_k_do_not_interfere(index: VectorStoreIndex,
                                                             questions: list[dict[str, Any]]) -> None:
    adapted = from_llamaindex_retriever(index.as_retriever())
    jobs = [(q["question"], k) for q in questions for k in (1, 3, 6, 9)] * 3
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda job: len(adapted(*job)), jobs))
    assert sizes == [k for _, k in jobs]


def test_a_fusion_retriever_gets_k_from_its_retrievers_too(index: VectorStoreIndex,
                                                          questions: list[dict[str, Any]]) -> None:
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=2)], similarity_top_k=2, num_queries=1,
                                  use_async=False, llm=MockLLM())
    assert len(from_llamaindex_retriever(fusion)(questions[0]["question"], 6)) == 6
    assert fusion.similarity_top_k == 2


def test_a_retriever_without_a_known_knob_is_sliced(questions: list[dict[str, Any]]) -> None:
    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=TextNode(text=f"t{i}"), score=1.0 / (i + 1)) for i in range(4)]

    adapted = from_llamaindex_retriever(Fixed())
    assert [p.text for p in adapted("q", 2)] == ["t0", "t1"]
    assert len(adapted("q", 10)) == 4


# -- k is saved with the program --------------------------------------------------------------------

class RAG(lmbridge.Module):
    def __init__(self, retriever: Any, k: int) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate = lmbridge.Predict("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        found = self.retrieve(question)
        return self.generate(context=found.passages, question=question)


def test_k_is_saved_and_restored(index: VectorStoreIndex, tmp_path: Path) -> None:
    adapted = from_llamaindex_retriever(index.as_retriever())
    RAG(adapted, k=7).save(tmp_path / "rag.json")
    fresh = RAG(adapted, k=3)
    fresh.load(tmp_path / "rag.json")
    assert fresh.retrieve.k == 7
    assert fresh.dump_state()["retrieve"] == {"retrieve": {"k": 7}}
    state = fresh.dump_state()
    state["retrieve"]["retrieve"]["k"] = 0
    with pytest.raises(lmbridge.StateError, match="positive integer"):
        RAG(adapted, k=3).load_state(state)
    del state["retrieve"]  # a file from before k was saved: k stays as built
    assert RAG(adapted, k=3).load_state(state).retrieve.k == 3  # type: ignore[attr-defined]


# -- filters, QueryBundles, postprocessors, query engines ------------------------------------------

def test_metadata_filters_pass_through_retrieve(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    question = questions[0]["question"]  # about Super_Bowl_50, the title of most nodes
    retrieve = lmbridge.Retrieve(from_llamaindex_retriever(index.as_retriever()), k=4)
    assert retrieve(question).passage_objects[0].metadata["title"] == "Super_Bowl_50"
    filters = MetadataFilters(filters=[ExactMatchFilter(key="title", value="Warsaw")])
    found = retrieve(question, filters=filters)
    assert len(found.passage_objects) == 4 and all(p.metadata["title"] == "Warsaw" for p in found.passage_objects)
    assert retrieve(question).passage_objects[0].metadata["title"] == "Super_Bowl_50"  # for that call only


def test_a_query_bundle_passes_through(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    adapted = from_llamaindex_retriever(index.as_retriever(), k=3)
    target = questions[1]
    embedding = index._embed_model.get_query_embedding(target["question"])
    bundle = QueryBundle(query_str="unrelated words entirely", embedding=embedding)
    by_bundle = lmbridge.Retrieve(adapted, k=3)(bundle)
    by_text = lmbridge.Retrieve(adapted, k=3)(target["question"])
    assert by_bundle.passages == by_text.passages  # the bundle's own embedding was used


def test_postprocessors_run_after_retrieval(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    class KeepTitle(BaseNodePostprocessor):
        title: str

        def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None,
                               ) -> list[NodeWithScore]:
            assert query_bundle is not None and query_bundle.query_str == questions[0]["question"]
            return [n for n in nodes if n.node.metadata["title"] == self.title]

    title = questions[0]["title"]
    adapted = from_llamaindex_retriever(index.as_retriever(similarity_top_k=20),
                                        postprocessors=[KeepTitle(title=title)])
    found = adapted(questions[0]["question"], 3)
    assert 0 < len(found) <= 3 and all(p.metadata["title"] == title for p in found)
    too_high = SimilarityPostprocessor(similarity_cutoff=2.0)
    cutoff = from_llamaindex_retriever(index.as_retriever(), postprocessors=[too_high])
    assert cutoff(questions[0]["question"], 3) == []  # nothing scores that high: an empty retrieval


def test_a_query_engine_gives_its_retriever_and_postprocessors(index: VectorStoreIndex,
                                                              questions: list[dict[str, Any]]) -> None:
    engine = index.as_query_engine(llm=MockLLM(), node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=2.0)])
    adapted = from_llamaindex_retriever(engine)
    assert adapted.postprocessors and adapted(questions[0]["question"], 3) == []
    plain = from_llamaindex_retriever(index.as_query_engine(llm=MockLLM()))
    assert len(plain(questions[0]["question"], 3)) == 3


def test_an_empty_retrieval_feeds_an_empty_context(index: VectorStoreIndex) -> None:
    empty = VectorStoreIndex([], embed_model=index._embed_model)
    lm = ScriptedLM([{"answer": "unknown"}])
    with lmbridge.context(lm=lm):
        pred = RAG(from_llamaindex_retriever(empty.as_retriever()), k=3)(question="Who won?")
    assert pred.answer == "unknown"


# -- what a passage holds ---------------------------------------------------------------------------

def test_the_real_node_id_wins_and_user_metadata_keeps_its_keys() -> None:
    node = TextNode(text="Levi's Stadium hosted Super Bowl 50.", id_="real-id",
                    metadata={"node_id": "user-value", "title": "Super_Bowl_50", "page": 3})

    class One(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=node, score=None)]

    [passage] = from_llamaindex_retriever(One())("stadium", 1)
    assert passage.metadata == {"node_id": "real-id", "metadata_node_id": "user-value", "title": "Super_Bowl_50",
                                "page": 3}
    assert passage.text == node.get_content()  # without metadata by default
    assert passage.score == 0.0
    [with_meta] = from_llamaindex_retriever(One(), metadata_mode="llm")("stadium", 1)
    assert with_meta.text == node.get_content(metadata_mode=MetadataMode.LLM)
    assert "Super_Bowl_50" in with_meta.text
    with pytest.raises(ValueError, match="metadata_mode"):
        from_llamaindex_retriever(One(), metadata_mode="html")


# -- failures, sync and async forms -------------------------------------------------------------------

class Broken(BaseRetriever):
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise ConnectionError("vector store unreachable")


def test_a_retriever_that_raises_names_itself() -> None:
    with pytest.raises(lmbridge.RetrievalError, match="Broken") as info:
        lmbridge.Retrieve(from_llamaindex_retriever(Broken()))("q")
    assert isinstance(info.value.__cause__, ConnectionError)
    with pytest.raises(lmbridge.RetrievalError, match="Broken"):
        asyncio.run(lmbridge.Retrieve(from_llamaindex_retriever(Broken(), use_async=True)).acall("q"))


def test_a_failing_retriever_is_counted_in_evaluate() -> None:
    devset = [lmbridge.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(3)]
    with lmbridge.context(lm=ScriptedLM([{"answer": "a"}] * 3)):
        result = lmbridge.Evaluate(devset=devset, metric=lmbridge.metrics.exact_match("answer"), num_threads=1,
                                 display_progress=False)(RAG(from_llamaindex_retriever(Broken()), k=2))
    assert result.errors == 3 and result.score == 0.0
    assert all("RetrievalError" in (r.error or "") and "Broken" in (r.error or "") for r in result.results)


def test_a_failing_retriever_is_counted_in_compile() -> None:
    class FailsOnOdd(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            if int(query_bundle.query_str[1:]) % 2:
                raise ConnectionError("vector store unreachable")
            return [NodeWithScore(node=TextNode(text="the answer is a"), score=1.0)]

    trainset = [lmbridge.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(4)]
    optimizer = lmbridge.BootstrapFewShot(metric=lmbridge.metrics.exact_match("answer"), max_bootstrapped_demos=4,
                                        max_labeled_demos=0)
    with lmbridge.context(lm=ScriptedLM([{"answer": "a"}] * 8)):
        compiled = optimizer.compile(RAG(from_llamaindex_retriever(FailsOnOdd()), k=2), trainset=trainset)
    report = compiled.report or {}
    assert report["failures"] == 2
    assert any("RetrievalError" in e and "FailsOnOdd" in e for e in report["errors"])
    assert [d["question"] for d in compiled.predictors()[0].demos] == ["q0", "q2"]
    with pytest.raises(lmbridge.EvaluationError, match="Broken"), \
            lmbridge.context(lm=ScriptedLM([{"answer": "a"}] * 8)):
        optimizer.compile(RAG(from_llamaindex_retriever(Broken()), k=2), trainset=trainset)


def test_sync_and_async_forms_agree(index: VectorStoreIndex, questions: list[dict[str, Any]]) -> None:
    sync = from_llamaindex_retriever(index.as_retriever())
    asynchronous = from_llamaindex_retriever(index.as_retriever(), use_async=True)
    assert isinstance(sync, LlamaIndexRetriever) and isinstance(asynchronous, AsyncLlamaIndexRetriever)
    assert isinstance(sync, lmbridge.Retriever)
    q = questions[2]["question"]
    by_await = asyncio.run(lmbridge.Retrieve(asynchronous, k=4).acall(q))
    by_call = lmbridge.Retrieve(asynchronous, k=4)(q)
    assert by_await.passages == by_call.passages == lmbridge.Retrieve(sync, k=4)(q).passages
    assert len(by_await.passages) == 4


def test_a_copied_program_shares_the_retriever(index: VectorStoreIndex) -> None:
    adapted = from_llamaindex_retriever(index.as_retriever())
    program = RAG(adapted, k=2)
    assert copy.deepcopy(program).retrieve.retriever is adapted


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="BaseRetriever"):
        from_llamaindex_retriever(lambda q, k: [])
