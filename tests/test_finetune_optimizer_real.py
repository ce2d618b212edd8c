"""BootstrapFinetune on the embedded SmolLM2 and real SST-2 rows.

The first test needs no training: a trainer that hands back the base model shows that the training
examples are the real model's passing answers, and that the compiled predictor sends the real model
exactly the prompts of its examples. The second trains for real with ``LocalLoRA`` (a few steps) when
this lmbridge has it and the ``finetune`` extra is installed, and skips with the reason otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import pytest

import lmbridge
from lmbridge.finetune import TrainingCheckpoint, TrainingExample, TrainingProgress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_classification

pytestmark = pytest.mark.real_model


class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the review as positive or negative."""

    text: str = lmbridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")


metric = lmbridge.metrics.exact_match("label")


class SameModel:
    """A trainer that trains nothing: it records the examples and returns the base model."""

    name = "same-model"

    def __init__(self) -> None:
        self.examples: list[TrainingExample] = []

    def check(self, lm: lmbridge.BaseLM) -> None:
        return None

    def train(self, lm: lmbridge.BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> lmbridge.BaseLM:
        self.examples = [list(e) for e in examples]
        return lm


def test_the_real_models_passing_answers_are_the_examples_and_their_prompts_are_sent() -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=16)
    rows = load_classification("sst2", "train", 12)
    trainer = SameModel()
    student = lmbridge.Predict(Sentiment, lm=lm)
    compiled = lmbridge.BootstrapFinetune(metric, trainer=trainer, num_threads=1, display_progress=False).compile(
        student, trainset=rows)
    assert student.lm is lm and student.format is None
    report = compiled.report
    assert report is not None
    passed = report["finetune"]["examples"]["self"]
    assert passed == len(trainer.examples) > 0
    by_text = {r.text: r for r in rows}
    for example in trainer.examples:
        assert example[-1]["role"] == "assistant"
        review = str(example[-2]["content"]).rsplit("Review:", 1)[-1].rsplit("\nSentiment:", 1)[0].strip()
        assert example[-1]["content"] == by_text[review].label  # a passing answer states the gold label
        compiled(text=review)
        assert lm.history[-1].messages == example[:-1]  # the real model got the trained prompt


def test_a_tiny_local_fine_tune_end_to_end(tmp_path: Path) -> None:
    local = getattr(lmbridge.finetune, "LocalLoRA", None)
    if local is None:
        pytest.skip("this lmbridge has no lmbridge.finetune.LocalLoRA (the local trainer)")
    base = lmbridge.LM("local/smollm2", max_tokens=16)
    trainer = local(steps=2)
    try:
        trainer.check(base)
    except lmbridge.MissingDependencyError as exc:
        pytest.skip(f"the finetune extra is missing: {exc}")
    rows = load_classification("sst2", "train", 8)
    student = lmbridge.Predict(Sentiment, lm=base)
    compiled = lmbridge.BootstrapFinetune(metric, trainer=trainer, num_threads=1, display_progress=False).compile(
        student, trainset=rows)
    assert student.lm is base
    tuned = compiled.predictors()[0].lm
    assert tuned is not None and tuned is not base
    answer = compiled(text=rows[0].text)
    assert answer.label in ("negative", "positive")
    report = compiled.report
    assert report is not None and report["finetune"]["training"][0]["trainer"] == "local-lora"
    compiled.save(tmp_path / "tuned.json")


def test_better_together_on_the_real_model_reports_each_stage_and_is_never_worse() -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=16)
    train = load_classification("sst2", "train", 12)
    val = load_classification("sst2", "dev", 30)
    trainer = SameModel()
    optimizer = lmbridge.BetterTogether(
        lmbridge.LabeledFewShot(k=4, balanced=True, metric=metric, display_progress=False),
        lmbridge.BootstrapFinetune(metric, trainer=trainer, num_threads=1, display_progress=False),
        "p -> w", display_progress=False)
    compiled = optimizer.compile(lmbridge.Predict(Sentiment, lm=lm), trainset=train, valset=val)
    report = compiled.report
    assert report is not None
    assert [s["kind"] for s in report["stages"]] == ["p", "w"]
    assert all(isinstance(s["score"], float) for s in report["stages"])
    assert trainer.examples  # the weight stage learned the prompt-compiled program's passing runs
    kept = report["selection"]["kept"]
    best = max(s["score"] for s in report["stages"])
    assert kept == "student" or best > report["student_score"]
    if kept == "winner":
        assert report["stages"][report["chosen_stage"]]["score"] == best
