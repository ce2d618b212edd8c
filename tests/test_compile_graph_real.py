"""A LangGraph graph with two prompt-bearing nodes (one a chain node, one a function node with a
learnable prompt) compiled on the embedded model, with real SST-2 rows (small sizes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import find_shared_datasets
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph.state import CompiledStateGraph

from benchmarks.compile_graph import build
from examples.data import load_classification
from lmbridge.adapters.langchain import BridgeChatModel, from_chain, learnable

pytestmark = pytest.mark.real_model


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    find_shared_datasets(monkeypatch)


CHECK = learnable(ChatPromptTemplate.from_messages([
    ("system", "Is the movie review positive or negative? Answer with one word."),
    ("human", "Review: {text}")]), name="check")
CLASSIFY = ChatPromptTemplate.from_messages([
    ("system", "Decide whether the movie review is positive or negative. Answer with one word."),
    ("human", "Review: {text}")])


def graph(model: BridgeChatModel) -> Any:
    """The benchmark's two-node graph (a chain node, then a function node whose prompt is reached
    through ``learnable``), here with sentiment prompts on the embedded model."""
    return build(model, CLASSIFY, CHECK, reads="text")


def test_a_two_prompt_graph_compiles_on_the_embedded_model_and_its_export_answers_as_the_program() -> None:
    model = BridgeChatModel(lm=lmbridge.LM("local/smollm2", max_tokens=4))
    app = graph(model)
    program = from_chain(app, output="label")
    assert [n for n, _ in program.named_predictors()] == ["classify.step0", "check"]
    compiled = lmbridge.LabeledFewShot(k=2).compile(program, trainset=load_classification("sst2", "train", 10))
    assert all(len(p.demos) == 2 for _, p in compiled.named_predictors())
    exported = compiled.to_chain()  # type: ignore[attr-defined]
    assert isinstance(exported, CompiledStateGraph)
    for row in load_classification("sst2", "test", 3):
        assert exported.invoke({"text": row.text}) == compiled(text=row.text)
