"""Optimizers say what they cannot use and what they will spend: a trainset whose fields match no
predictor is an error naming the fields (never 0 demos in silence), a partial match is a warning in
the report, and the estimate bounds every call the compile makes, the never-worse check included."""

from __future__ import annotations

from typing import Any

import pytest
from test_optimizers_support import SIG, metric, sentiment_rows, truth

import lmbridge
from lmbridge import BootstrapFewShot, LabeledFewShot
from lmbridge.testing import ScriptedLM


def _model(messages: list[Any]) -> str:
    text = str(messages[-1]["content"]).rsplit("Text:", 1)[-1].split("\n")[0]
    return f"Label: {truth(text)}"


def test_a_trainset_whose_fields_match_no_predictor_is_an_error_naming_them() -> None:
    rows = [lmbridge.Example(review=r.text, label=r.label).with_inputs("review") for r in sentiment_rows(6)]
    with pytest.raises(ValueError, match=r"match no predictor.*\['text'\].*'review'"):
        LabeledFewShot(k=3).compile(lmbridge.Predict(SIG), trainset=rows)


class TwoSteps(lmbridge.Module):
    def __init__(self) -> None:
        self.classify = lmbridge.Predict(SIG)
        self.explain = lmbridge.Predict("label -> reason")

    def forward(self, text: str) -> lmbridge.Prediction:
        label = self.classify(text=text).label
        return lmbridge.Prediction(label=label, reason=self.explain(label=label).reason)


def test_a_predictor_no_row_fits_is_a_warning_in_the_report() -> None:
    with pytest.warns(UserWarning, match=r"no demos to \['explain'\]"):
        compiled = LabeledFewShot(k=2).compile(TwoSteps(), trainset=sentiment_rows(6))
    assert compiled.report is not None and "explain" in compiled.report["unfit"]
    assert len(compiled.classify.demos) == 2


@pytest.mark.parametrize("make", [
    lambda: LabeledFewShot(k=2, metric=metric),
    lambda: BootstrapFewShot(metric, max_bootstrapped_demos=2, max_labeled_demos=2),
])
def test_the_estimate_bounds_the_calls_selection_included(make: Any) -> None:
    train, val = sentiment_rows(6), sentiment_rows(10, offset=6)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(_model))
    optimizer = make()
    estimate = optimizer.estimate(student, trainset=train, valset=val)
    compiled = optimizer.compile(student, trainset=train, valset=val)
    assert compiled.report is not None
    assert compiled.report["lm_calls"] >= 2 * len(val)  # the never-worse check scored student and winner
    assert compiled.report["lm_calls"] <= estimate.lm_calls
    assert estimate.breakdown["selection"] == 2 * len(val)
    assert "selection=20" in str(estimate)


def test_without_a_valset_there_is_no_selection_to_count() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(_model))
    estimate = BootstrapFewShot(metric).estimate(student, trainset=sentiment_rows(6))
    assert estimate.lm_calls == 6 and "selection" not in estimate.breakdown
