"""The in-place compile of a LlamaIndex query engine searches its retriever's k on the embedded model
(SmolLM2, small sizes): MIPROv2 tries both k values with the prompts, the chosen k is saved and
restored, and the user's engine keeps its own k. This checks the mechanism, not a score."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.retrievers.bm25")
pytest.importorskip("optuna")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import find_shared_datasets
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever

from lmbridge.adapters.llamaindex import from_query_engine
from lmbridge.testing import ScriptedLM

pytestmark = pytest.mark.real_model


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    find_shared_datasets(monkeypatch)  # and one thread for the embedded model


def test_a_query_engines_retriever_k_is_searched_saved_and_restored_on_smollm2(tmp_path: Path) -> None:
    from examples.compile_query_engine_squad import EmbeddedLLM, f1
    from examples.data import load_jsonl

    questions = [q for q in load_jsonl("squad", "train") if len(q["answers"][0].split()) <= 3][:4]
    texts = {q["context"] for q in questions}
    others = [r["text"] for r in load_jsonl("squad", "corpus") if r["text"] not in texts][:6]
    nodes = [TextNode(text=t) for t in [*sorted(texts), *others]]
    llm = EmbeddedLLM(lm=lmbridge.LM("local/smollm2", cache=False, max_tokens=16, temperature=0.0))
    engine = RetrieverQueryEngine.from_args(BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1), llm=llm)
    rows = [lmbridge.Example(query=q["question"], answer=q["answers"][0], answers=q["answers"]).with_inputs("query")
            for q in questions]
    student = from_query_engine(engine, search_k=[1, 2])
    proposer = ScriptedLM(lambda messages: "Instruction: Answer with a few words copied from the context.")
    opt = lmbridge.MIPROv2(f1, prompt_model=proposer, auto=None, num_candidates=2, max_bootstrapped_demos=0,
                           max_labeled_demos=0, num_threads=1, formats=[], search_labels=False,
                           display_progress=False, seed=0)
    compiled = opt.compile(student, trainset=rows[:2], valset=rows[2:], num_trials=4, minibatch=False)

    report = compiled.report or {}
    tried = [json.dumps(t.get("config", t)) for t in report["trials"]]
    assert any('"k": 1' in t for t in tried) and any('"k": 2' in t for t in tried), report["trials"]
    assert isinstance(compiled, type(student)) and compiled.retriever_k is not None
    chosen: Any = compiled.retriever_k.settings()
    assert chosen["k"] in (1, 2)
    assert compiled.to_query_engine().retriever.similarity_top_k == chosen["k"]
    assert engine.retriever.similarity_top_k == 1  # the user's engine keeps its own k
    compiled.save(tmp_path / "engine.json")
    assert json.loads((tmp_path / "engine.json").read_text())["retriever_k"] == {"retriever_k": chosen}
    restored = from_query_engine(engine, search_k=[1, 2]).load(tmp_path / "engine.json")
    assert isinstance(restored, type(student)) and restored.retriever_k is not None
    assert restored.retriever_k.settings() == chosen
