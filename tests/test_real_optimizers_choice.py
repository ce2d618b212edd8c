"""Issue 26 against the real embedded models: the calibration guard on a prior Gemma 3 estimates
from one repeated input, and field labels proposed from TREC's task and rows, written into the
prompt the model reads and kept through save and load."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import pytest

import lmbridge
from lmbridge.optimizers._support.search_space import field_labels
from lmbridge.optimizers._support.state import build, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import trec_signature

from examples.data import labels_of, load_classification

pytestmark = pytest.mark.real_model


class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the movie review as negative or positive."""

    text: str = lmbridge.InputField()
    label: Literal["negative", "positive"] = lmbridge.OutputField()


def test_a_compile_on_gemma_does_not_trust_a_prior_from_one_repeated_input(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/gemma3", cache=lmbridge.lm._cache.Cache(tmp_path))
    review = load_classification("sst2", "train", 1)[0]
    train = [review] * 10  # ten rows, one distinct input: too uniform to show the model's bias
    fmt = lmbridge.TextFormat(scoring="calibrated")
    program = lmbridge.LabeledFewShot(k=0, format=fmt, display_progress=False).compile(
        lmbridge.Predict(Sentiment, lm=lm), trainset=train)
    prior = program.predictors()[0].format.prior  # type: ignore[union-attr]
    assert prior is not None and prior.inputs == 10
    raw = lmbridge.score_labels(lm, lmbridge.TextFormat(scoring="labels"), Sentiment, [], {"text": review.text})
    assert raw is not None
    shrunk = [0.2 * p + 0.8 * 0.5 for p in raw.probabilities]  # 1 of 5 distinct inputs: a fifth of the estimate
    assert [prior.probabilities[o] for o in ("negative", "positive")] == pytest.approx(shrunk, abs=1e-6)
    assert program.report is not None and "1 distinct input" in program.report["calibration"]["self"]["smoothed"][0]
    assert program(text="A wonderful, moving film.").label in ("negative", "positive")


def test_trec_field_labels_reach_the_prompt_and_survive_save_and_load(tmp_path: Path) -> None:
    kinds = labels_of("trec")
    sig = trec_signature()
    rows = load_classification("trec", "train", 40)
    lm = lmbridge.LM("local/gemma3", max_tokens=8, cache=lmbridge.lm._cache.Cache(tmp_path))
    student = lmbridge.Predict(sig, lm=lm, format=lmbridge.TextFormat())
    proposed = field_labels(snapshot(student), rows)
    assert proposed[1] == {"text": "Question", "label": "Type"}
    state = {name: s.with_labels(proposed[1]).with_demos(rows[:6]) for name, s in snapshot(student).items()}
    program = build(student, state)
    prompt = "\n".join(str(m["content"]) for m in program.messages(text="Who wrote Hamlet?"))
    assert "\nQuestion: Who wrote Hamlet?\nType:" in prompt and "Text:" not in prompt
    answer = program(text="Who wrote Hamlet?").label
    assert answer in kinds
    program.save(tmp_path / "kind.json")
    fields = json.loads((tmp_path / "kind.json").read_text())["predictors"]["self"]["fields"]
    assert fields["text"]["prefix"] == "Question"
    loaded = lmbridge.Predict(sig, lm=student.lm, format=lmbridge.TextFormat())
    loaded.load(tmp_path / "kind.json")
    assert loaded(text="Who wrote Hamlet?").label == answer
