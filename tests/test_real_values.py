"""Numbers and labels read from the embedded model's own answers (issue 24), unconstrained so that
the model writes what it likes: every value read is stated in what the model wrote, an int exactly
(as a decimal, not through a float) and a label as a whole word; everything else is a ParseError."""

from __future__ import annotations

import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

import lmbridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_classification, load_jsonl

pytestmark = pytest.mark.real_model

_NUMBER = re.compile(r"[-+\u2212]?(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _ints_in(text: str) -> set[Decimal]:
    found = set()
    for m in _NUMBER.finditer(text):
        try:
            found.add(Decimal(m.group().replace(",", "").replace("\u2212", "-").rstrip(".")))
        except InvalidOperation:
            pass
    return found


def _run(predictor: lmbridge.Predict, lm: lmbridge.LM, **inputs: Any) -> tuple[Any, str]:
    """The prediction (None when nothing was read) and every completion text the call produced."""
    before = len(lm.history)
    try:
        prediction = predictor(**inputs)
    except (lmbridge.ParseError, lmbridge.TruncatedError):  # unreadable or cut off: nothing was read
        prediction = None
    return prediction, "\n".join(h.completion for h in list(lm.history)[before:])


def test_ints_from_the_real_model_are_stated_exactly(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.lm._cache.Cache(tmp_path), max_tokens=32)
    predictor = lmbridge.Predict("question -> answer: int", lm=lm, format=lmbridge.ChatFormat(constrained=False))
    read = 0
    for row in load_jsonl("gsm8k", "test")[:6]:
        prediction, written = _run(predictor, lm, question=row["question"])
        if prediction is None:
            continue
        read += 1
        assert type(prediction.answer) is int
        assert Decimal(prediction.answer) in _ints_in(written), (prediction.answer, written)
    assert len(lm.history) >= 6 and read >= 1  # the model answered, and some answers were read


def test_labels_from_the_real_model_are_read_only_as_whole_words(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.lm._cache.Cache(tmp_path), max_tokens=16)
    predictor = lmbridge.Predict("text -> label: Literal['negative', 'positive']", lm=lm,
                                 format=lmbridge.ChatFormat(constrained=False))
    read = 0
    for example in load_classification("sst2", "test", 6):
        prediction, written = _run(predictor, lm, text=example.text)
        if prediction is None:
            continue
        read += 1
        whole = re.search(rf"(?<![0-9A-Za-z_]){prediction.label}(?![0-9A-Za-z_])", written, re.I)
        assert whole, (prediction.label, written)
    assert read >= 1
