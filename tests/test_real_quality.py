"""Compile quality on the embedded models: constrained decoding, label scoring, calibration and
selection, against the real SmolLM2-135M and Gemma 3 270M (llama.cpp, in-process)."""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path
from typing import Literal

import pytest

import lmbridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_classification

pytestmark = pytest.mark.real_model


class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the movie review as negative or positive."""

    text: str = lmbridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")


def _shuffled(split: str, n: int) -> list[lmbridge.Example]:
    rows = load_classification("sst2", split)
    random.Random(0).shuffle(rows)
    return rows[:n]


def _balanced(split: str, n: int) -> list[lmbridge.Example]:
    rows = _shuffled(split, 400)
    pos = [r for r in rows if r.label == "positive"][: n // 2]
    neg = [r for r in rows if r.label == "negative"][: n // 2]
    return [r for pair in zip(pos, neg) for r in pair]


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_constrained_decoding_leaves_no_answer_unparsable(model: str, tmp_path: Path) -> None:
    lm = lmbridge.LM(f"local/{model}", max_tokens=8, cache=lmbridge.cache.Cache(tmp_path))
    program = lmbridge.Predict(Sentiment, lm=lm)  # the default ChatFormat: constrained
    before = lmbridge.constraint_fallbacks()
    with lmbridge.track_usage() as usage:
        answers = [program(text=e.text).label for e in _shuffled("test", 40)]
    assert len(answers) == 40 and set(answers) <= {"negative", "positive"}
    assert usage.usage.parse_retries == 0 and usage.usage.calls == 40
    assert lmbridge.constraint_fallbacks() == before


def test_label_scoring_returns_valid_options_with_probabilities_summing_to_one(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.cache.Cache(tmp_path))
    fmt = lmbridge.ChatFormat(scoring="labels")
    program = lmbridge.Predict(Sentiment, lm=lm, format=fmt)
    for e in _shuffled("test", 3):
        scores = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": e.text})
        assert scores is not None and scores.options == ("negative", "positive")
        assert abs(sum(scores.probabilities) - 1.0) < 1e-9 and all(0 <= p <= 1 for p in scores.probabilities)
        assert program(text=e.text).label == scores.choice
    text_fmt = lmbridge.TextFormat(scoring="labels")
    scores = lmbridge.score_labels(lmbridge.LM("local/gemma3", cache=False), text_fmt, Sentiment,
                                 _balanced("train", 4), {"text": "a wonderful film"})
    assert scores is not None and abs(sum(scores.probabilities) - 1.0) < 1e-9


@pytest.mark.xfail(strict=False, reason=(
    "measured 2026-12-02: contextual calibration did not move these tiny models toward balance on 20 "
    "balanced SST-2 reviews (SmolLM2 ChatFormat mean P(positive) 0.588 -> 0.621; Gemma 3 ChatFormat "
    "0.472 -> 0.579, 5 -> 19 of 20 positive). Issue 13 stays open on it."))
def test_calibration_moves_a_biased_model_toward_balance(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.cache.Cache(tmp_path))
    rows = _balanced("test", 20)  # 10 positive, 10 negative
    fmt = lmbridge.ChatFormat(scoring="labels")

    def positive_share(calibrate: bool) -> tuple[float, int]:
        probs = []
        for e in rows:
            scores = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": e.text}, calibrate=calibrate)
            assert scores is not None
            probs.append(scores.as_dict()["positive"])
        return sum(probs) / len(probs), sum(p > 0.5 for p in probs)

    (raw_mean, raw_pos), (cal_mean, cal_pos) = positive_share(False), positive_share(True)
    assert abs(raw_mean - 0.5) > 0.05, f"SmolLM2 zero-shot should lean to one label here (mean {raw_mean:.2f})"
    assert abs(cal_mean - 0.5) < abs(raw_mean - 0.5)
    assert abs(cal_pos - 10) <= abs(raw_pos - 10)


def test_an_optimizer_given_a_strong_student_returns_it_unchanged(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/gemma3", max_tokens=8, cache=lmbridge.cache.Cache(tmp_path))
    demos = _balanced("train", 8)
    student = lmbridge.Predict(Sentiment, lm=lm, demos=demos, format=lmbridge.TextFormat())
    valset = [e for e in _shuffled("train", 400) if e not in demos][:30]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = lmbridge.LabeledFewShot(k=1, metric=lmbridge.metrics.exact_match("label"), display_progress=False,
                                        format=lmbridge.ChatFormat()).compile(
            student, trainset=_shuffled("train", 10), valset=valset)
    p = program.predictors()[0]
    assert program.report["selection"]["kept"] == "student"
    assert p.demos == student.demos and p.format == student.format
