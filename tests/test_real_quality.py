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
    lm = lmbridge.LM(f"local/{model}", max_tokens=8, cache=lmbridge.lm._cache.Cache(tmp_path))
    program = lmbridge.Predict(Sentiment, lm=lm)  # the default ChatFormat: constrained
    before = lmbridge.constraint_fallbacks()
    with lmbridge.track_usage() as usage:
        answers = [program(text=e.text).label for e in _shuffled("test", 40)]
    assert len(answers) == 40 and set(answers) <= {"negative", "positive"}
    assert usage.usage.parse_retries == 0 and usage.usage.calls == 40
    assert lmbridge.constraint_fallbacks() == before


def test_label_scoring_returns_valid_options_with_probabilities_summing_to_one(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.lm._cache.Cache(tmp_path))
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


def _summary(probs: list[float], rows: list[lmbridge.Example]) -> tuple[float, int, float]:
    """Mean P(positive), answers that are "positive", accuracy."""
    right = sum((p > 0.5) == (e.label == "positive") for p, e in zip(probs, rows))
    return sum(probs) / len(probs), sum(p > 0.5 for p in probs), right / len(rows)


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
@pytest.mark.parametrize("layout", ["chat", "text"])
def test_calibration_moves_a_biased_model_toward_balance(model: str, layout: str, tmp_path: Path) -> None:
    """Zero-shot, each setting leans to one label on 100 balanced SST-2 test reviews. The prior is
    estimated from 128 unlabeled training reviews (lmbridge.calibrate; the labels are not read), and
    the calibrated predictions move toward balance. The content-free fallback is printed for
    comparison (docs/decoding.md): on these models it often points the wrong way."""
    lm = lmbridge.LM(f"local/{model}", cache=lmbridge.lm._cache.Cache(tmp_path))
    fmt = lmbridge.ChatFormat(scoring="calibrated") if layout == "chat" else lmbridge.TextFormat(scoring="calibrated")
    program = lmbridge.Predict(Sentiment, lm=lm, format=fmt)
    calibrated = lmbridge.calibrate(program, _shuffled("train", 400))
    assert calibrated.format is not None and calibrated.format.prior is not None
    assert calibrated.format.prior.inputs == 128
    rows = _balanced("test", 100)  # 50 positive, 50 negative

    def positive(scores: lmbridge.LabelScores | None) -> float:
        assert scores is not None
        return scores.as_dict()["positive"]

    raw, stored, content_free = [], [], []
    for e in rows:
        raw.append(positive(lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": e.text}, calibrate=False)))
        scores = lmbridge.score_labels(lm, calibrated.format, Sentiment, [], {"text": e.text})
        assert scores is not None and scores.prior_source == "stored"
        stored.append(positive(scores))
        fallback = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": e.text})  # no stored prior
        assert fallback is not None and fallback.prior_source == "content-free"
        content_free.append(positive(fallback))
    (raw_mean, raw_pos, raw_acc), (cal_mean, cal_pos, cal_acc) = _summary(raw, rows), _summary(stored, rows)
    cf_mean, cf_pos, cf_acc = _summary(content_free, rows)
    print(f"\n{model} {layout}: prior P(positive) {calibrated.format.prior.probabilities['positive']:.3f}; "
          f"raw mean {raw_mean:.3f}, {raw_pos}/100 positive, accuracy {raw_acc:.2f}; calibrated on train inputs "
          f"{cal_mean:.3f}, {cal_pos}/100, {cal_acc:.2f}; content-free (prior {fallback.prior[1]:.3f}) "
          f"{cf_mean:.3f}, {cf_pos}/100, {cf_acc:.2f}")
    assert abs(raw_pos - 50) >= 10, f"{model} {layout} zero-shot should lean to one label here ({raw_pos}/100)"
    assert abs(cal_pos - 50) < abs(raw_pos - 50)
    assert abs(cal_mean - 0.5) < abs(raw_mean - 0.5)


def test_a_compiled_calibrated_predictor_keeps_its_prior_through_save_and_load(tmp_path: Path) -> None:
    """An optimizer compiling a calibrated format estimates the prior from the trainset's inputs and
    stores it: the saved program answers like the compiled one, with one scoring call per answer."""
    lm = lmbridge.LM("local/smollm2", cache=False)
    compiled = lmbridge.LabeledFewShot(k=4, balanced=True, format=lmbridge.TextFormat(scoring="calibrated"),
                                     display_progress=False).compile(
        lmbridge.Predict(Sentiment, lm=lm), trainset=_shuffled("train", 60))
    fmt = compiled.predictors()[0].format
    assert fmt is not None and fmt.prior is not None and fmt.prior.inputs == 60
    assert compiled.report is not None and compiled.report["calibration"]["self"]["inputs"] == 60
    rows = _shuffled("test", 10)
    answers = [compiled(text=e.text).label for e in rows]
    compiled.save(tmp_path / "sentiment.json")
    loaded = lmbridge.Predict(Sentiment, lm=lm)
    loaded.load(tmp_path / "sentiment.json")
    assert loaded.format == fmt
    with lmbridge.track_usage() as usage:
        assert [loaded(text=e.text).label for e in rows] == answers
    assert usage.usage.calls == len(rows)


def test_an_optimizer_given_a_strong_student_returns_it_unchanged(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/gemma3", max_tokens=8, cache=lmbridge.lm._cache.Cache(tmp_path))
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
