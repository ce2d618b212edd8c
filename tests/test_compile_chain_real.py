"""compile_chain on the embedded model through BridgeChatModel, with real SST-2 rows (small sizes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import lmbridge

pytest.importorskip("langchain_core")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import find_shared_datasets

from examples import compile_chain_sst2
from examples.data import load_classification
from lmbridge.adapters.langchain import from_chain

pytestmark = pytest.mark.real_model


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    find_shared_datasets(monkeypatch)


def test_sst2_chain_example_compiles_and_reports_before_and_after() -> None:
    before, after = compile_chain_sst2.main(["--train", "9", "--test", "4"])
    assert 0.0 <= before <= 100.0 and 0.0 <= after <= 100.0


def test_the_exported_chain_answers_as_the_program_did_on_the_real_model() -> None:
    from langchain_core.output_parsers import StrOutputParser

    from lmbridge.adapters.langchain import BridgeChatModel

    chain = compile_chain_sst2.PROMPT | BridgeChatModel(lm=lmbridge.LM("local/smollm2", max_tokens=4)) \
        | StrOutputParser()
    program = from_chain(chain, output="label")
    compiled = lmbridge.LabeledFewShot(k=2).compile(program, trainset=load_classification("sst2", "train", 10))
    exported = compiled.to_chain()  # type: ignore[attr-defined]
    for row in load_classification("sst2", "test", 3):
        assert exported.invoke({"text": row.text}) == compiled(text=row.text)


def test_squad_query_engine_example_compiles_and_returns_the_same_class() -> None:
    pytest.importorskip("llama_index.retrievers.bm25")
    from llama_index.core.query_engine import RetrieverQueryEngine

    from examples import compile_query_engine_squad

    result = compile_query_engine_squad.main(["--train", "3", "--n", "2", "--corpus", "20"])
    assert type(result["engine"]) is RetrieverQueryEngine
    assert all(0.0 <= x <= 100.0 for x in (*result["before"], *result["after"]))


def test_two_prompt_rag_chain_example_compiles_both_prompts_end_to_end() -> None:
    from examples import compile_chain_rag

    result = compile_chain_rag.main(["--train", "3", "--n", "2", "--corpus", "10"])
    assert list(result["demos"]) == ["step0.context.step0", "step1"]
    assert all(0.0 <= x <= 100.0 for x in (*result["before"], *result["after"]))
