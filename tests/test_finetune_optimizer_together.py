"""BetterTogether with scripted models and a scripted trainer: the stages run in turn on each other's
programs, the fine-tuning learns the prompt-compiled program's traces, the winner is chosen on the
valset with the paired selection, and the report lists each stage."""

from __future__ import annotations

from typing import Any

import pytest
from test_finetune_optimizer import RecordingTrainer
from test_optimizers_support import SIG, last_text, metric, program_state, sentiment_rows, truth

import lmbridge
from lmbridge import BetterTogether, BootstrapFinetune, LabeledFewShot
from lmbridge.testing import ScriptedLM


def base_model(messages: list[Any]) -> Any:
    """50% zero-shot (wrong on "great" and "awful"); 75% with demos in the prompt (wrong on "awful")."""
    text = last_text(messages)
    if "awful" in text:
        return {"label": "positive"}
    if "great" in text and len(messages) == 1:
        return {"label": "negative"}
    return {"label": truth(text)}


def together(trainer: RecordingTrainer, strategy: str = "p -> w -> p") -> BetterTogether:
    return BetterTogether(LabeledFewShot(k=2, metric=metric, display_progress=False),
                          BootstrapFinetune(metric, trainer=trainer, display_progress=False),
                          strategy, display_progress=False)


def test_prompts_then_weights_then_prompts_and_the_best_stage_wins() -> None:
    trainer = RecordingTrainer()  # the fine-tuned model is always right
    lm = ScriptedLM(base_model)
    student = lmbridge.Predict(SIG, lm=lm)
    before = program_state(student)
    rows, val = sentiment_rows(8), sentiment_rows(40, offset=8)
    compiled = together(trainer).compile(student, trainset=rows, valset=val)
    assert program_state(student) == before and student.lm is lm
    # the weight stage learned the prompt-compiled program's passing runs: 6 of 8 (not "awful")
    [(trained_lm, examples, _)] = trainer.calls
    assert trained_lm is lm and len(examples) == 6
    assert all(len(e) == 2 for e in examples)  # the fine-tuned predictor's prompt: no demos
    report = compiled.report
    assert report is not None and report["optimizer"] == "BetterTogether"
    assert [(s["kind"], s["optimizer"], s["score"]) for s in report["stages"]] == [
        ("p", "LabeledFewShot", 75.0), ("w", "BootstrapFinetune", 100.0), ("p", "LabeledFewShot", 100.0)]
    assert all(isinstance(s["lm_calls"], int) for s in report["stages"])
    assert report["student_score"] == 50.0
    assert report["chosen_stage"] == 1  # the first of the equal best
    assert report["selection"]["kept"] == "winner"
    tuned = trainer.tuned[0]
    assert compiled.lm is tuned and compiled.demos == []
    assert len(tuned.calls) > 0  # the last prompt stage ran on the fine-tuned model


def test_the_student_is_kept_when_no_stage_beats_it_beyond_noise() -> None:
    trainer = RecordingTrainer()
    student = lmbridge.Predict(SIG, lm=ScriptedLM(lambda m: {"label": truth(last_text(m))}))
    compiled = together(trainer).compile(student, trainset=sentiment_rows(8), valset=sentiment_rows(40, offset=8))
    assert compiled.report is not None and compiled.report["selection"]["kept"] == "student"
    assert compiled.report["chosen_stage"] is None
    assert compiled.lm is student.lm and compiled.demos == []


def test_without_a_valset_the_last_stage_is_kept_and_the_report_says_so() -> None:
    trainer = RecordingTrainer()
    compiled = together(trainer, "w").compile(lmbridge.Predict(SIG, lm=ScriptedLM(base_model)),
                                              trainset=sentiment_rows(8))
    assert compiled.lm is trainer.tuned[0]
    assert compiled.report is not None and "no valset" in compiled.report["selection"]["reason"]


@pytest.mark.parametrize("strategy", ["", "p -> x", "p w", "p ->"])
def test_a_strategy_other_than_p_and_w_stages_is_refused(strategy: str) -> None:
    with pytest.raises(ValueError, match="'p -> w -> p'"):
        together(RecordingTrainer(), strategy)


def test_the_estimate_adds_up_the_stages_and_the_stage_scoring() -> None:
    estimate = together(RecordingTrainer()).estimate(lmbridge.Predict(SIG), trainset=sentiment_rows(10),
                                                     valset=sentiment_rows(5))
    assert estimate.breakdown["stage 1 (w)"] == 10 + 10  # bootstrap + its own selection
    assert estimate.breakdown["selection"] == 4 * 5


def test_a_budget_cap_stops_the_stages_and_is_reported() -> None:
    trainer = RecordingTrainer()
    lm = ScriptedLM(base_model)
    optimizer = BetterTogether(LabeledFewShot(k=2, metric=metric, display_progress=False),
                               BootstrapFinetune(metric, trainer=trainer, display_progress=False),
                               max_lm_calls=30, display_progress=False)
    compiled = optimizer.compile(lmbridge.Predict(SIG, lm=lm), trainset=sentiment_rows(8),
                                 valset=sentiment_rows(40, offset=8))
    report = compiled.report
    assert report is not None and "max_lm_calls=30" in report["stopped_early"]
    assert [s["kind"] for s in report["stages"]] == ["p"] and trainer.calls == []
    assert len(lm.calls) <= 30
    assert "not compared" in report["selection"]["reason"]
