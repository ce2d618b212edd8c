"""On the embedded model and 20 SST-2 dev rows: a compiled predictor exported in each prompt format
scores what the program scored, or the export raises the documented ConfigurationError."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import lmbridge

pytest.importorskip("langchain_core")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import compiled_sst2, export_formats, find_shared_datasets, read_or_none
from langchain_core.exceptions import OutputParserException

from examples.data import load_classification
from lmbridge.adapters.langchain import BridgeChatModel, to_langchain_chain

pytestmark = pytest.mark.real_model

FORMATS = ("chat", "chat-unconstrained-system", "json", "text", "labels", "calibrated")
"""One of each kind (the unconstrained variants add no other request to carry over BridgeChatModel)."""


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    find_shared_datasets(monkeypatch)


@pytest.mark.parametrize("name", FORMATS)
def test_exported_chain_scores_what_the_program_scored(name: str) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    chain_lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    predictor = compiled_sst2(export_formats()[name], lm)
    try:
        chain = to_langchain_chain(predictor, BridgeChatModel(lm=chain_lm), bare=True)
    except lmbridge.ConfigurationError as error:
        assert name in ("labels", "calibrated") and "scoring=" in str(error)
        return
    assert name not in ("labels", "calibrated")
    rows = load_classification("sst2", "dev", 20)
    ours = [read_or_none(lambda text=r.text: predictor(text=text).label) for r in rows]
    theirs = [read_or_none(lambda text=r.text: chain.invoke({"text": text}), OutputParserException) for r in rows]
    program_accuracy = sum(o == r.label for o, r in zip(ours, rows))
    chain_accuracy = sum(t == r.label for t, r in zip(theirs, rows))
    assert chain_accuracy == program_accuracy, (ours, theirs)
