"""The in-place compile searches the k of the user's retriever: a LlamaIndex query engine's
``similarity_top_k`` and a LangChain chain's retriever ``k`` are settings MIPROv2 searches with the
prompts, applied per call on copies (the user's retriever keeps its own k), saved and checked on load.

The models are scripted: each answers the title of the passage it is shown when shown exactly one,
and "not sure" when shown several, so only a compile that chose ``k=1`` answers right.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.retrievers.bm25")
pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle
from llama_index.retrievers.bm25 import BM25Retriever as LlamaBM25

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llamaindex_fixtures import hashing_index, read_jsonl, squad_dir, squad_nodes

from lmbridge.adapters.langchain import from_chain
from lmbridge.adapters.llamaindex import from_query_engine
from lmbridge.optimizers._support.state import setting_options
from lmbridge.testing import ScriptedLM

try:
    if not (squad_dir() / "corpus.jsonl").is_file():
        raise FileNotFoundError(squad_dir())
except FileNotFoundError as missing:
    pytest.skip(f"the SQuAD dataset is not available ({missing})", allow_module_level=True)


def one_passage_answer(prompt: str) -> str:
    """The title of the one passage in ``prompt``; "not sure" when it shows none or several."""
    titles = [line[len("title: "):].strip() for line in prompt.splitlines() if line.startswith("title: ")]
    return titles[0] if len(titles) == 1 else "not sure"


def squad_rows(n: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """The first ``n`` SQuAD dev questions and the nodes: their passages and 8 others."""
    questions = read_jsonl(squad_dir() / "dev.jsonl", n)
    return questions, squad_nodes(8, questions)


def found_first(retrieve: Any, questions: Sequence[dict[str, Any]]) -> list[lmbridge.Example]:
    """The questions whose passage ``retrieve(question)`` ranks first, as examples answered by the title."""
    rows = [q for q in questions if retrieve(q["question"]) == q["title"]]
    return [lmbridge.Example(query=q["question"], title=q["title"]).with_inputs("query") for q in rows]


def titled(example: lmbridge.Example, output: Any, trace: Any = None) -> bool:
    return str(output).strip() == example.title


# -- LlamaIndex: a BM25Retriever behind a RetrieverQueryEngine ----------------------------------------

class OnePassageLLM(CustomLLM):
    """A scripted LlamaIndex LLM: ``one_passage_answer`` of its prompt."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=100_000)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=one_passage_answer(prompt))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


def bm25_engine(k: int = 3) -> tuple[RetrieverQueryEngine, list[lmbridge.Example]]:
    questions, nodes = squad_rows(12)
    retriever = LlamaBM25.from_defaults(nodes=nodes, similarity_top_k=k)
    top = LlamaBM25.from_defaults(nodes=nodes, similarity_top_k=1)
    rows = found_first(lambda q: top.retrieve(QueryBundle(q))[0].node.metadata["title"], questions)
    assert len(rows) >= 6, "the fixture needs questions BM25 ranks right at k=1"
    return RetrieverQueryEngine.from_args(retriever, llm=OnePassageLLM()), rows


def mipro() -> lmbridge.MIPROv2:
    proposer = ScriptedLM(lambda messages: "Instruction: Answer from the context.")
    return lmbridge.MIPROv2(titled, prompt_model=proposer, auto=None, num_candidates=2, max_bootstrapped_demos=0,
                            max_labeled_demos=0, num_threads=1, formats=[], search_labels=False,
                            display_progress=False, seed=0)


def test_an_engines_retriever_k_is_a_setting_with_its_own_value_first_and_its_size_as_cap() -> None:
    engine, _ = bm25_engine(k=2)
    program = from_query_engine(engine)
    assert program.retriever_k is not None
    assert program.retriever_k.settings() == {"k": 2}
    assert program.retriever_k.setting_options() == {"k": [2, 1, 3, 5]}
    carrier = program.named_predictors()[0][0]
    assert setting_options(program) == {carrier: {"k": [2, 1, 3, 5]}}  # what MIPROv2 searches
    size = len(engine.retriever.corpus)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=f"k={size + 1} is more than the {size} passages"):
        program.retriever_k.apply_settings({"k": size + 1})
    with pytest.raises(ValueError, match="positive integer"):
        program.retriever_k.apply_settings({"k": 0})
    assert program.retriever_k.settings() == {"k": 2}
    assert from_query_engine(engine, search_k=False).retriever_k is None  # the switch: k left alone


def test_mipro_chooses_the_engines_k_applies_it_on_a_copy_and_saves_it(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    engine, rows = bm25_engine(k=3)
    student = from_query_engine(engine, search_k=[1, 3])
    compiled = mipro().compile(student, trainset=rows[:3], valset=rows[3:], num_trials=6, minibatch=False)
    assert isinstance(compiled, type(student)) and compiled.retriever_k is not None
    assert compiled.retriever_k.settings() == {"k": 1}
    report = compiled.report or {}
    assert report["baseline_score"] == 0.0 and report["best_score"] == 100.0
    carrier = student.named_predictors()[0][0]
    assert report["selection"]["winner_state"][carrier]["settings"] == {"k": 1}
    # applied per call on copies: the compiled engine's retriever has k=1, the user's keeps k=3
    built = compiled.to_query_engine()
    assert built.retriever.similarity_top_k == 1 and built.retriever is not engine.retriever
    assert engine.retriever.similarity_top_k == 3 and student.retriever_k is not None
    assert student.retriever_k.settings() == {"k": 3}
    assert all(titled(r, built.query(r.query)) for r in rows)
    assert not any(titled(r, engine.query(r.query)) for r in rows)
    # saved and restored
    compiled.save(tmp_path / "engine.json")
    assert json.loads((tmp_path / "engine.json").read_text())["retriever_k"] == {"retriever_k": {"k": 1}}
    restored = from_query_engine(engine).load(tmp_path / "engine.json")
    assert isinstance(restored, type(student)) and restored.retriever_k is not None
    assert restored.retriever_k.settings() == {"k": 1}
    assert titled(rows[0], restored(query=rows[0].query))


def test_a_saved_k_the_retriever_cannot_return_is_refused_on_load(tmp_path: Path) -> None:
    engine, _ = bm25_engine(k=2)
    program = from_query_engine(engine)
    program.save(tmp_path / "engine.json")
    saved = json.loads((tmp_path / "engine.json").read_text())
    size = len(engine.retriever.corpus)  # type: ignore[attr-defined]
    for bad, message in (({"k": size + 40}, "is more than the"), ({"k": "3"}, "positive integer"),
                         ({"top_k": 1}, "unknown setting 'top_k'"), ([3], "expected an object")):
        saved["retriever_k"] = {"retriever_k": bad}
        (tmp_path / "bad.json").write_text(json.dumps(saved))
        fresh = from_query_engine(engine)
        with pytest.raises(lmbridge.StateError, match=message):
            fresh.load(tmp_path / "bad.json")
        assert fresh.retriever_k is not None and fresh.retriever_k.settings() == {"k": 2}


def test_a_vector_index_engine_and_a_fusion_engine_run_the_chosen_k_on_copies() -> None:
    from llama_index.core.retrievers import QueryFusionRetriever

    questions, nodes = squad_rows(4)
    vector = hashing_index(nodes).as_query_engine(llm=OnePassageLLM())  # VectorIndexRetriever, top-k 2
    program = from_query_engine(vector)
    assert program.retriever_k is not None and program.retriever_k.setting_options() == {"k": [2, 1, 3, 5]}
    program.retriever_k.apply_settings({"k": 3})
    query = QueryBundle(questions[0]["question"])
    assert len(program.to_query_engine().retrieve(query)) == 3 and len(vector.retrieve(query)) == 2
    subs = [LlamaBM25.from_defaults(nodes=nodes, similarity_top_k=1), hashing_index(nodes).as_retriever()]
    fusion = QueryFusionRetriever(subs, llm=OnePassageLLM(), similarity_top_k=2, num_queries=1, use_async=False)
    program = from_query_engine(RetrieverQueryEngine.from_args(fusion, llm=OnePassageLLM()))
    assert program.retriever_k is not None and program.retriever_k.settings() == {"k": 2}
    program.retriever_k.apply_settings({"k": 5})
    built = program.to_query_engine().retriever
    assert built.similarity_top_k == 5 and all(r.similarity_top_k == 5 for r in built._retrievers)
    assert fusion.similarity_top_k == 2 and [r.similarity_top_k for r in subs] == [1, 2]


def test_an_engine_without_a_retriever_k_knob_has_no_setting() -> None:
    from llama_index.core.retrievers import BaseRetriever as LlamaRetriever

    class Fixed(LlamaRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[Any]:
            return []

    program = from_query_engine(RetrieverQueryEngine.from_args(Fixed(), llm=OnePassageLLM()))
    assert program.retriever_k is None
    assert [name for name, _ in program.named_modules()] == [name for name, _ in program.named_predictors()]
    assert setting_options(program) == {}


# -- LangChain: a retriever step inside an LCEL chain ---------------------------------------------------

class KeywordRetriever(BaseRetriever):
    """A LangChain retriever as the community BM25Retriever is shaped: ``docs`` and a ``k`` field."""

    docs: list[Document]
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        index = lmbridge.BM25Retriever([d.page_content for d in self.docs])
        by_text = {d.page_content: d for d in self.docs}
        return [by_text[p.text] for p in index(query, self.k)]


class OnePassageChat(BaseChatModel):
    """A scripted LangChain chat model: ``one_passage_answer`` of the last message."""

    @property
    def _llm_type(self) -> str:
        return "one-passage"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        reply = one_passage_answer(str(messages[-1].content))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


def shown(documents: list[Document]) -> str:
    return "\n\n".join(f"title: {d.metadata['title']}\n{d.page_content}" for d in documents)


def keyword_chain(k: int = 3) -> tuple[Any, KeywordRetriever, list[lmbridge.Example]]:
    questions, nodes = squad_rows(12)
    docs = [Document(page_content=n.text, metadata=dict(n.metadata)) for n in nodes]
    retriever = KeywordRetriever(docs=docs, k=k)
    top = KeywordRetriever(docs=docs, k=1)
    rows = found_first(lambda q: top.invoke(q)[0].metadata["title"], questions)
    assert len(rows) >= 6, "the fixture needs questions BM25 ranks right at k=1"
    prompt = ChatPromptTemplate.from_messages([("system", "Answer from the context."),
                                               ("human", "{context}\n\nQuestion: {query}")])
    answer = prompt | OnePassageChat() | StrOutputParser()
    chain = {"context": retriever | shown, "query": RunnablePassthrough()} | answer
    return chain, retriever, rows


def test_mipro_chooses_a_chains_retriever_k_and_the_users_chain_keeps_its_own(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    chain, retriever, rows = keyword_chain(k=3)
    student = from_chain(chain, output="title", input_key="query", search_k=[1, 3])
    compiled = mipro().compile(student, trainset=rows[:3], valset=rows[3:], num_trials=6, minibatch=False)
    assert isinstance(compiled, type(student)) and compiled.retriever_k is not None
    assert compiled.retriever_k.settings() == {"k": 1}
    built = compiled.to_chain()
    assert all(built.invoke(r.query) == r.title for r in rows)
    assert not any(chain.invoke(r.query) == r.title for r in rows)
    assert retriever.k == 3 and student.retriever_k is not None and student.retriever_k.settings() == {"k": 3}
    assert asyncio.run(compiled.acall(query=rows[0].query)) == rows[0].title  # the async path runs the same copy
    compiled.save(tmp_path / "chain.json")
    restored = from_chain(chain, output="title", input_key="query").load(tmp_path / "chain.json")
    assert isinstance(restored, type(student)) and restored(query=rows[1].query) == rows[1].title
    saved = json.loads((tmp_path / "chain.json").read_text())
    saved["retriever_k"] = {"retriever_k": {"k": 500}}
    (tmp_path / "bad.json").write_text(json.dumps(saved))
    with pytest.raises(lmbridge.StateError, match=f"k=500 is more than the {len(retriever.docs)} passages"):
        from_chain(chain, output="title", input_key="query").load(tmp_path / "bad.json")


def test_a_vector_store_retriever_without_k_searches_from_the_stores_own_default() -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_texts([f"passage {i}" for i in range(7)], metadatas=[{"title": f"t{i}"} for i in range(7)])
    retriever = store.as_retriever()  # no k in search_kwargs: the store's similarity_search default (4)
    chain = {"context": retriever | shown, "query": RunnablePassthrough()} | ChatPromptTemplate.from_messages(
        [("human", "{context}\n\nQuestion: {query}")])
    program = from_chain(chain, input_key="query")
    assert program.retriever_k is not None and program.retriever_k.setting_options() == {"k": [4, 1, 3, 5]}
    program.retriever_k.apply_settings({"k": 1})
    assert program(query="x").to_messages()[0].content.count("title: ") == 1
    assert chain.invoke("x").to_messages()[0].content.count("title: ") == 4
    assert retriever.search_kwargs == {}
    with pytest.raises(ValueError, match="k=8 is more than the 7 passages"):
        program.retriever_k.apply_settings({"k": 8})
    with pytest.raises(ValueError, match="search_k: k=9"):
        from_chain(chain, input_key="query", search_k=[1, 9])
