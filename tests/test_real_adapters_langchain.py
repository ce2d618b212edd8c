"""The LangChain integration on the real embedded model (SmolLM2-135M via llama.cpp) and real data:
the examples run, the exported chain answers as the predictor does, streaming and callbacks carry
real tokens. Asserts structure and typed values, never a particular completion."""

from __future__ import annotations

import sys
from functools import reduce
from operator import add
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples import langchain_callbacks, langchain_chain, langchain_rag, langchain_react
from examples.data import load_classification
from lmbridge.adapters.langchain import BridgeChatModel, to_langchain_chain, to_runnable

pytestmark = pytest.mark.real_model


def test_rag_chain_example_scores_before_and_after_compiling() -> None:
    before, after = langchain_rag.main(["--test", "2", "--demos", "1", "--k", "1"])
    assert 0.0 <= before <= 100.0 and 0.0 <= after <= 100.0


def test_migrated_prompt_example_compiles_and_exports_back() -> None:
    accuracy = langchain_chain.main(["--test", "3", "--demos", "2"])
    assert 0.0 <= accuracy <= 100.0


def test_react_example_over_langchain_tools() -> None:
    results = langchain_react.main(["--n", "1", "--max-iters", "2"])
    assert len(results) == 1
    result = results[0]
    assert result["finish_reason"] in ("finish", "max_iters", "context_overflow", "parse_error")
    for step in result["steps"]:
        assert step["tool_name"] in ("calculator", "finish") or step["error"]
    if result["answer"] is not None:
        assert isinstance(result["answer"], float)


def test_callback_example_prints_the_run_tree() -> None:
    lines = langchain_callbacks.main([])
    assert lines[0] == "chain: squad-rag"
    assert any(line.strip().startswith("retriever:") and "(2 documents)" in line for line in lines)
    chat = [line for line in lines if line.strip().startswith("chat_model: local/smollm2")]
    assert chat and all(" in / " in line and not line.endswith("(0 in / 0 out tokens)") for line in chat)


def test_exported_chain_sends_the_same_messages_and_reads_the_same_answers() -> None:
    from langchain_core.exceptions import OutputParserException

    sig = lmbridge.make_signature("text -> label: Literal['negative', 'positive']",
                                "Decide whether the movie review is positive or negative.")
    demos = [{"text": ex.text, "label": ex.label} for ex in load_classification("sst2", "train", 2)]
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    chat_lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    predictor = lmbridge.Predict(sig, demos=demos, lm=lm)
    chain = to_langchain_chain(predictor, BridgeChatModel(lm=chat_lm))
    for ex in load_classification("sst2", "test", 3):
        first = len(lm.history)
        try:
            ours: Any = predictor(text=ex.text).label
        except lmbridge.ParseError:
            ours = None
        try:
            theirs: Any = chain.invoke({"text": ex.text})["label"]
        except OutputParserException:
            theirs = None
        sent, answered = list(lm.history)[first], chat_lm.history[-1]
        assert answered.messages == sent.messages  # byte-identical prompt
        assert answered.completion == sent.completion  # the same model, greedy: the same text
        if len(lm.history) - first == 1:  # the predictor read the first answer, as the chain must
            assert theirs == ours


def test_stream_on_the_embedded_model_adds_up_to_invoke(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=24, cache=lmbridge.lm._cache.Cache(tmp_path))
    runnable = to_runnable(lmbridge.Predict("question -> answer", lm=lm))
    chunks = list(runnable.stream({"question": "What is the capital of France?"}))
    assert len(chunks) > 1 and all(set(c) == {"answer"} for c in chunks)
    assert dict(reduce(add, chunks)) == runnable.invoke({"question": "What is the capital of France?"})
    assert lm.usage.cache_hits == 1  # invoke read the streamed answer back from the cache
