"""Each optimizer improves a real program on a real dataset slice, on the embedded SmolLM2-135M.

Small on purpose (a few dozen LM calls each). Temperature 0 makes the runs deterministic, so the
comparisons below are stable; what they check is that compiling moves the test score up, the way a
user would measure it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest

import bridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_classification

pytestmark = pytest.mark.real_model

Kind = Literal["abbreviation", "description", "entity", "human", "location", "numeric"]


class QuestionType(bridge.Signature):
    """Classify what kind of answer the question asks for."""

    text: str = bridge.InputField(prefix="Question")
    label: Kind = bridge.OutputField(prefix="Answer type")


metric = bridge.metrics.exact_match("label")


@pytest.fixture(scope="module")
def lm() -> bridge.LM:
    return bridge.LM("local/smollm2", max_tokens=24)


def score(program: bridge.Module, rows: list[bridge.Example]) -> float:
    return bridge.Evaluate(devset=rows, metric=metric, num_threads=1, display_progress=False)(program).score


def test_labeled_fewshot_improves_trec(lm: bridge.LM) -> None:
    train = load_classification("trec", "train", 40)
    test = load_classification("trec", "test", 12)
    with bridge.context(lm=lm):
        student = bridge.Predict(QuestionType)
        compiled = bridge.LabeledFewShot(k=6).compile(student, trainset=train)
        assert score(compiled, test) > score(student, test)


def test_bootstrap_fewshot_improves_trec(lm: bridge.LM) -> None:
    train = load_classification("trec", "train", 10)
    test = load_classification("trec", "test", 12)
    with bridge.context(lm=lm):
        student = bridge.Predict(QuestionType)
        compiled = bridge.BootstrapFewShot(metric=metric, max_bootstrapped_demos=3, max_labeled_demos=6,
                                           num_threads=1).compile(student, trainset=train)
        assert compiled.report is not None and compiled.report["lm_calls"] <= 10
        assert score(compiled, test) > score(student, test)


def test_mipro_search_beats_its_baseline_on_the_valset(lm: bridge.LM) -> None:
    pytest.importorskip("optuna")
    train = load_classification("trec", "train", 8)
    val = load_classification("trec", "train", 16)[8:]
    with bridge.context(lm=lm):
        student = bridge.Predict(QuestionType)
        opt = bridge.MIPROv2(metric, auto=None, num_candidates=3, max_bootstrapped_demos=2, max_labeled_demos=4,
                             num_threads=1, max_lm_calls=60)
        compiled = opt.compile(student, trainset=train, valset=val, num_trials=4)
    report = compiled.report
    assert report is not None and report["lm_calls"] <= 60
    assert report["best_score"] > report["baseline_score"]
