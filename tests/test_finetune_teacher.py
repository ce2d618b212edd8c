"""BootstrapFinetune with a teacher program: the teacher is scored on the valset rows the fine-tuned
program was, with the same paired selection, and the report shows it; a teacher that beats the weights
beyond noise is a warning naming BetterTogether; the teacher's calls count in the budget and in
``estimate``; no teacher (or the student as its own teacher) costs no extra call. Scripted LMs and a
scripted trainer."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from test_finetune_optimizer import RecordingTrainer, always_right, half_right
from test_optimizers_support import SIG, last_text, metric, sentiment_rows, truth

import lmbridge
from lmbridge import BootstrapFinetune
from lmbridge.testing import ScriptedLM

ROWS, VAL = sentiment_rows(8), sentiment_rows(40, offset=8)


def says_positive(messages: list[Any]) -> Any:
    return {"label": "positive"}


def wrong_on_great(messages: list[Any]) -> Any:
    """Right on three rows of four: "great" films are called negative."""
    text = last_text(messages)
    return {"label": "negative" if "great" in text else truth(text)}


def wrong_on(number: int) -> Callable[[list[Any]], Any]:
    def answer(messages: list[Any]) -> Any:
        text = last_text(messages)
        right = truth(text)
        return {"label": ("negative" if right == "positive" else "positive") if f"number {number}" in text else right}
    return answer


def compile_with(student_answers: Callable[[list[Any]], Any], tuned_answers: Callable[[list[Any]], Any],
                 teacher: lmbridge.Module | None, **options: Any) -> tuple[lmbridge.Module, list[str]]:
    """The compiled program and the warnings that name BetterTogether."""
    student = lmbridge.Predict(SIG, lm=ScriptedLM(student_answers))
    optimizer = BootstrapFinetune(metric, trainer=RecordingTrainer(tuned_answers), display_progress=False, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = optimizer.compile(student, trainset=ROWS, valset=VAL, teacher=teacher)
    return compiled, [str(w.message) for w in caught if "BetterTogether" in str(w.message)]


def teacher_program(answers: Callable[[list[Any]], Any] = always_right) -> lmbridge.Predict:
    return lmbridge.Predict(SIG, lm=ScriptedLM(answers))


def test_the_report_shows_the_teacher_scored_on_the_same_rows() -> None:
    compiled, _ = compile_with(says_positive, wrong_on_great, teacher_program())
    assert compiled.report is not None
    assert compiled.report["selection"]["kept"] == "winner"  # 75 beats the student's 50
    note = compiled.report["finetune"]["teacher"]
    assert note["score"] == 100.0 and note["rows"] == len(VAL) and note["fine_tuned_score"] == 75.0
    assert note["beats_fine_tuned"] is True and note["same_as_student"] is False


def test_a_teacher_beating_the_weights_beyond_noise_warns_and_names_better_together() -> None:
    kept, warned = compile_with(says_positive, wrong_on_great, teacher_program())
    assert len(warned) == 1 and "the fine-tuned program is returned" in warned[0]
    assert "100.0" in warned[0] and "75.0" in warned[0]
    assert kept.report is not None and kept.report["selection"]["kept"] == "winner"  # the semantics stay
    # weights no better than the student: the student is returned, and the warning says so
    student_kept, warned = compile_with(half_right, half_right, teacher_program())
    assert len(warned) == 1 and "the student is returned" in warned[0]
    assert student_kept.report is not None and student_kept.report["selection"]["kept"] == "student"


def test_no_warning_when_the_teacher_ties_or_wins_within_noise() -> None:
    tie, warned = compile_with(says_positive, always_right, teacher_program())
    assert warned == []
    assert tie.report is not None and tie.report["finetune"]["teacher"]["beats_fine_tuned"] is False
    close, warned = compile_with(says_positive, wrong_on(9), teacher_program())  # one row of 40 apart
    assert warned == []
    assert close.report is not None
    note = close.report["finetune"]["teacher"]
    assert (note["score"], note["fine_tuned_score"], note["beats_fine_tuned"]) == (100.0, 97.5, False)


def test_no_teacher_or_the_student_as_teacher_costs_no_extra_call() -> None:
    student_lm = ScriptedLM(says_positive)
    trainer = RecordingTrainer(always_right)
    student = lmbridge.Predict(SIG, lm=student_lm)
    compiled = BootstrapFinetune(metric, trainer=trainer, display_progress=False).compile(
        student, trainset=ROWS, valset=VAL)
    assert len(student_lm.calls) == len(ROWS) + len(VAL) and len(trainer.tuned[0].calls) == len(VAL)
    assert compiled.report is not None and compiled.report["lm_calls"] == len(ROWS) + 2 * len(VAL)
    assert "teacher" not in compiled.report["finetune"]
    # the student given as its own teacher (what BetterTogether's weights stage does): its scores are reused
    again = BootstrapFinetune(metric, trainer=RecordingTrainer(always_right), display_progress=False).compile(
        student, trainset=ROWS, valset=VAL, teacher=student.deepcopy())
    assert len(student_lm.calls) == 2 * (len(ROWS) + len(VAL))
    assert again.report is not None and again.report["lm_calls"] == len(ROWS) + 2 * len(VAL)
    note = again.report["finetune"]["teacher"]
    assert note["same_as_student"] is True and note["score"] == 50.0


def test_the_teachers_calls_count_in_the_budget_and_the_estimate() -> None:
    teacher = teacher_program()
    compiled, _ = compile_with(says_positive, wrong_on_great, teacher)
    assert len(teacher.lm.calls) == len(ROWS) + len(VAL)  # type: ignore[union-attr]
    assert compiled.report is not None and compiled.report["lm_calls"] == len(ROWS) + 3 * len(VAL)
    capped, _ = compile_with(says_positive, wrong_on_great, teacher_program(), max_lm_calls=len(ROWS) + 2 * len(VAL))
    assert capped.report is not None and "max_lm_calls" in capped.report["stopped_early"]
    assert capped.report["lm_calls"] <= len(ROWS) + 2 * len(VAL)
    note = capped.report["finetune"]["teacher"]
    assert note["score"] is None and "max_lm_calls" in note["reason"]
    student = lmbridge.Predict(SIG, lm=ScriptedLM(says_positive))
    optimizer = BootstrapFinetune(metric, trainer=RecordingTrainer(), display_progress=False)
    assert "teacher" not in optimizer.estimate(student, trainset=ROWS, valset=VAL).breakdown
    estimate = optimizer.estimate(student, trainset=ROWS, valset=VAL, teacher=teacher)
    assert estimate.breakdown == {"bootstrap": len(ROWS), "training": 0, "selection": 2 * len(VAL),
                                  "teacher": len(VAL)}
    assert estimate.lm_calls == len(ROWS) + 3 * len(VAL)
    assert BootstrapFinetune(metric, teacher=teacher, trainer=RecordingTrainer()).estimate(
        student, trainset=ROWS, valset=VAL).breakdown["teacher"] == len(VAL)
    assert "teacher" not in optimizer.estimate(student, trainset=ROWS, valset=VAL,
                                               teacher=student.deepcopy()).breakdown


@pytest.mark.parametrize("valset", [None, []])
def test_without_a_valset_the_teacher_is_not_scored_and_the_report_says_why(valset: Any) -> None:
    teacher = teacher_program()
    compiled = BootstrapFinetune(metric, trainer=RecordingTrainer(), display_progress=False).compile(
        lmbridge.Predict(SIG, lm=ScriptedLM(says_positive)), trainset=ROWS, valset=valset, teacher=teacher)
    assert len(teacher.lm.calls) == len(ROWS)  # type: ignore[union-attr]
    assert compiled.report is not None
    assert compiled.report["finetune"]["teacher"] == {"score": None, "rows": 0, "beats_fine_tuned": None,
                                                      "reason": "not scored: no valset"}
