"""On the embedded model and 20 SST-2 dev rows: a compiled predictor exported in each prompt format
scores what the program scored, or the export raises the documented ConfigurationError."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.exceptions import OutputParserException

from examples.data import datasets_dir, load_classification
from lmbridge.adapters.langchain import BridgeChatModel, to_langchain_chain

pytestmark = pytest.mark.real_model

SIG = lmbridge.make_signature("text -> label: Literal['negative', 'positive']",
                              "Decide whether the movie review is positive or negative.")
FORMATS = {
    "chat": lmbridge.ChatFormat(),
    "chat-unconstrained-system": lmbridge.ChatFormat(instructions="system", constrained=False),
    "json": lmbridge.JSONFormat(),
    "text": lmbridge.TextFormat(),
    "labels": lmbridge.ChatFormat(scoring="labels"),
    "calibrated": lmbridge.TextFormat(scoring="calibrated"),
}


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        datasets_dir()
    except FileNotFoundError:
        monkeypatch.setenv("LMBRIDGE_DATASETS", os.environ.get("LMBRIDGE_DATASETS", "/work/shared/datasets"))


def _label(run: Any) -> Any:
    try:
        return run()
    except (lmbridge.ParseError, OutputParserException):
        return None


@pytest.mark.parametrize("name", list(FORMATS))
def test_exported_chain_scores_what_the_program_scored(name: str) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    chain_lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    with lmbridge.context(lm=lm):
        compiled = lmbridge.LabeledFewShot(k=4, balanced=True, format=FORMATS[name], display_progress=False).compile(
            lmbridge.Predict(SIG), trainset=load_classification("sst2", "train", 40))
    predictor = compiled.named_predictors()[0][1]
    predictor.lm = lm
    try:
        chain = to_langchain_chain(predictor, BridgeChatModel(lm=chain_lm), bare=True)
    except lmbridge.ConfigurationError as error:
        assert name in ("labels", "calibrated") and "scoring=" in str(error)
        return
    assert name not in ("labels", "calibrated")
    rows = load_classification("sst2", "dev", 20)
    ours = [_label(lambda text=r.text: predictor(text=text).label) for r in rows]
    theirs = [_label(lambda text=r.text: chain.invoke({"text": text})) for r in rows]
    program_accuracy = sum(o == r.label for o, r in zip(ours, rows))
    chain_accuracy = sum(t == r.label for t, r in zip(theirs, rows))
    assert chain_accuracy == program_accuracy, (ours, theirs)
