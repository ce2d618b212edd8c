"""from_query_engine / QueryEngineProgram / compile_query_engine: a LlamaIndex object's prompts, learned in place."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.prompts.mixin import PromptMixin
from llama_index.core.query_engine import RetrieverQueryEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llamaindex_fixtures import hashing_index, squad_nodes

from lmbridge.adapters.llamaindex import QueryEngineProgram, compile_query_engine, from_query_engine


class ShotLLM(CustomLLM):
    """Answers "Paris" only when the prompt carries an example block."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="Paris" if prompt.count("Query:") > 1 else "dunno")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


class Leaf(PromptMixin):
    def __init__(self) -> None:
        self._prompt = PromptTemplate("Answer briefly.\n\nQ: {q}\nA:")

    def _get_prompts(self) -> dict[str, Any]:
        return {"answer": self._prompt}

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: dict[str, Any]) -> None:
        if "answer" in prompts:
            self._prompt = prompts["answer"]


class Middle(Leaf):
    def __init__(self) -> None:
        super().__init__()
        self._leaf = Leaf()

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {"leaf": self._leaf}


class Top(Leaf):
    def __init__(self) -> None:
        super().__init__()
        self._middle = Middle()

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {"middle": self._middle}


def engine() -> RetrieverQueryEngine:
    index = hashing_index(squad_nodes(12))
    return RetrieverQueryEngine.from_args(index.as_retriever(similarity_top_k=1), llm=ShotLLM())


def texts(obj: Any) -> dict[str, str]:
    return {k: v.get_template() for k, v in obj.get_prompts().items()}


def test_keys_with_several_colons_are_installed_on_a_copy() -> None:
    top = Top()
    before = texts(top)
    program = from_query_engine(top)
    assert [n for n, _ in program.named_predictors()] == ["answer", "middle:answer", "middle:leaf:answer"]
    with pytest.raises(ValueError):  # LlamaIndex's own update_prompts cannot take this key
        Top().update_prompts({"middle:leaf:answer": PromptTemplate("x")})
    dict(program.named_predictors())["middle:leaf:answer"].instructions = "Answer in one word."
    new = program.to_query_engine()
    assert type(new) is Top and texts(top) == before
    assert texts(new)["middle:leaf:answer"] == "Answer in one word.\n\nQ: {q}\nA:"
    assert texts(new)["middle:answer"] == before["middle:answer"]
    assert new._middle._leaf is not top._middle._leaf


def test_no_prompt_says_what_was_found() -> None:
    class Empty(Leaf):
        def _get_prompts(self) -> dict[str, Any]:
            return {}

    with pytest.raises(lmbridge.ConfigurationError, match="get_prompts"):
        from_query_engine(Empty())


def test_compile_query_engine_returns_the_same_class_with_learned_demos_and_leaves_the_original() -> None:
    original = engine()
    before = texts(original)
    rows = [lmbridge.Example(query=f"Where is the capital, case {i}?", answer="Paris").with_inputs("query")
            for i in range(9)]
    program = from_query_engine(original)
    assert str(program(query=rows[0].query)) == "dunno"

    def teacher_metric(example: Any, response: Any, trace: Any = None) -> bool:
        return True

    compiled = lmbridge.BootstrapFewShot(teacher_metric, max_bootstrapped_demos=1, max_labeled_demos=0).compile(
        program, trainset=rows[:2])
    qa = dict(compiled.named_predictors())["response_synthesizer:text_qa_template"]
    assert set(qa.demos[0].keys()) == {"context_str", "query_str", "output"}
    assert qa.demos[0]["query_str"] == rows[0].query
    assert isinstance(compiled, QueryEngineProgram)
    new = compiled.to_query_engine()
    assert type(new) is RetrieverQueryEngine and texts(original) == before
    assert str(new.query("Where is it?")) == "Paris"

    def exact(example: Any, response: Any, trace: Any = None) -> bool:
        return str(response) == example.answer

    assert str(compile_query_engine(original, trainset=rows, metric=exact).query("x")) in ("Paris", "dunno")
    assert texts(original) == before


def test_examples_must_have_one_input() -> None:
    bad = [lmbridge.Example(query="q", extra="e", answer="a").with_inputs("query", "extra")]
    with pytest.raises(lmbridge.InputError, match="one input"):
        compile_query_engine(engine(), trainset=bad, metric=lambda e, r, t=None: 1.0)


def test_the_exported_engine_runs_without_lmbridge(tmp_path: Any) -> None:
    import pickle
    import subprocess

    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode

    index = VectorStoreIndex([TextNode(text="Paris is in France.")], embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=MockLLM())  # MockLLM answers with the prompt it was sent
    program = from_query_engine(engine)
    qa = dict(program.named_predictors())["response_synthesizer:text_qa_template"]
    qa.demos = [lmbridge.Example(context_str="Rome is in Italy.", query_str="Where is Rome?", output="Italy")]
    (tmp_path / "engine.pkl").write_bytes(pickle.dumps(program.to_query_engine()))
    script = ("import os, sys, pickle; sys.modules['lmbridge'] = None\n"
              "import llama_index.core  # the pickled tokenizer reloads from LlamaIndex's own offline cache\n"
              "os.environ['TIKTOKEN_CACHE_DIR'] = os.path.join(os.path.dirname(llama_index.core.__file__), "
              "'_static', 'tiktoken_cache')\n"
              f"engine = pickle.loads(open({str(tmp_path / 'engine.pkl')!r}, 'rb').read())\n"
              "print(type(engine).__name__); print(engine.query('Where is Paris?').response)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("RetrieverQueryEngine\n")
    assert "Where is Rome?\nAnswer: Italy" in out and "Where is Paris?" in out
    assert "Rome" not in engine.query("Where is Paris?").response


def test_acall_runs_through_aquery_with_the_current_prompts() -> None:
    import asyncio

    program = from_query_engine(engine())
    qa = dict(program.named_predictors())["response_synthesizer:text_qa_template"]
    assert str(asyncio.run(program.acall(query="Where?"))) == "dunno"
    qa.demos = [lmbridge.Example(context_str="c", query_str="Where?", output="Paris")]
    assert str(asyncio.run(program.acall(query="Where?"))) == "Paris"


def test_an_llm_that_raises_is_an_lm_error() -> None:
    class Down(ShotLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            raise ConnectionError("the provider is down")

    index = hashing_index(squad_nodes(3))
    program = from_query_engine(RetrieverQueryEngine.from_args(index.as_retriever(similarity_top_k=1), llm=Down()))
    with pytest.raises(lmbridge.LMError, match="provider is down"):
        program(query="Where?")


def test_a_chat_prompt_learns_its_system_message_and_example_turns() -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.core.prompts import ChatPromptTemplate

    chat = ChatPromptTemplate(message_templates=[
        ChatMessage(role=MessageRole.SYSTEM, content="You answer questions."),
        ChatMessage(role=MessageRole.USER, content="Context: {context_str}\nQuestion: {query_str}")])

    class Chatty(Leaf):
        def __init__(self) -> None:
            self._prompt = chat

    program = from_query_engine(Chatty())
    predictor = program.named_predictors()[0][1]
    assert predictor.instructions == "You answer questions."
    predictor.instructions = "Answer in one word."
    predictor.demos = [lmbridge.Example(context_str="c1", query_str="q1", output="a1")]
    sent = program.to_query_engine()._prompt.format_messages(context_str="c2", query_str="q2")
    assert [(m.role.value, m.content) for m in sent] == [
        ("system", "Answer in one word."), ("user", "Context: c1\nQuestion: q1"), ("assistant", "a1"),
        ("user", "Context: c2\nQuestion: q2")]
