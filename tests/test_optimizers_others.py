"""COPRO, GEPA, SIMBA, KNNFewShot and Ensemble with scripted models."""

from __future__ import annotations

from typing import Any

import pytest
from test_optimizers_support import SIG, CountingModel, last_text, metric, program_state, sentiment_rows, truth

import lmbridge
from lmbridge import COPRO, GEPA, SIMBA, Ensemble, KNNFewShot
from lmbridge.optimizers import HashingEmbedder, majority
from lmbridge.testing import ScriptedLM


def rewriting_model(messages: list[Any]) -> Any:
    """Proposals say "carefully"; the task is right only under such an instruction."""
    first = str(messages[0]["content"])
    if "You write instructions" in first:
        return {"proposed_instruction": "Read the review carefully and answer."}
    if "You improve the instruction" in first:
        return {"new_instruction": "Read the review carefully and answer."}
    if "Two attempts" in first:
        return {"rule": "Answer carefully."}
    if "carefully" in first:
        return {"label": truth(last_text(messages))}
    return {"label": "positive"}


# -- COPRO ------------------------------------------------------------------------------------------

def test_copro_rewrites_the_instruction_and_scores_each_candidate() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(rewriting_model))
    compiled = COPRO(metric=metric, breadth=3, depth=2).compile(student, trainset=sentiment_rows(8))
    assert "carefully" in compiled.instructions and "carefully" not in student.instructions
    report = compiled.report
    assert report is not None
    assert report["baseline_score"] == 50.0 and report["best_score"] == 100.0
    assert all(t["kind"] == "candidate" for t in report["trials"])


def test_copro_keeps_the_instruction_after_a_lead_in_line() -> None:
    """Small prompt models often announce the instruction ("Here is the new instruction:") and give
    it in the next paragraph; the candidate must be that instruction, not the announcement."""
    def model(messages: list[Any]) -> Any:
        if "You write instructions" in str(messages[0]["content"]):
            return {"proposed_instruction": 'Here is the new instruction:\n\n"Read the review carefully and '
                                            'answer."\n\nThis instruction will help the model.'}
        return rewriting_model(messages)

    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    compiled = COPRO(metric=metric, breadth=2, depth=1).compile(student, trainset=sentiment_rows(8))
    assert compiled.instructions == "Read the review carefully and answer."
    assert compiled.report is not None and compiled.report["best_score"] == 100.0


def test_copro_needs_a_metric() -> None:
    with pytest.raises(ValueError, match="metric"):
        COPRO()


# -- GEPA -------------------------------------------------------------------------------------------

def test_gepa_evolves_the_instruction_from_feedback() -> None:
    seen: list[str] = []

    def model(messages: list[Any]) -> Any:
        if "You improve the instruction" in str(messages[0]["content"]):
            seen.append(messages[-1]["content"])
        return rewriting_model(messages)

    def feedback_metric(example: Any, prediction: Any, trace: Any = None, pred_name: Any = None,
                        pred_trace: Any = None) -> dict[str, Any]:
        ok = example.label == prediction.label
        return {"score": float(ok), "feedback": "right" if ok else f"wrong: the review is {example.label}"}

    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    opt = GEPA(feedback_metric, max_metric_calls=40, reflection_minibatch_size=3)
    compiled = opt.compile(student, trainset=sentiment_rows(8), valset=sentiment_rows(8, offset=8))
    assert "carefully" in compiled.instructions
    assert compiled.report is not None and compiled.report["best_score"] == 100.0
    assert compiled.report["baseline_score"] == 50.0
    assert seen and "wrong: the review is negative" in seen[0]  # the metric's feedback reached reflection


def test_gepa_starts_only_proposals_the_budget_can_keep() -> None:
    """A proposal costs two minibatches and, when the child wins, a valset evaluation. With one
    example too few for all of it, GEPA must not pay for a reflection whose winner it could not keep."""
    train = [r for r in sentiment_rows(8) if r.label == "negative"]  # the student is wrong on all
    val = sentiment_rows(4, offset=8)
    for budget, reflections, best in ((4 + 2 * 2 + 4 - 1, 0, 50.0), (4 + 2 * 2 + 4, 1, 100.0)):
        lm = ScriptedLM(rewriting_model)
        compiled = GEPA(metric, max_metric_calls=budget, reflection_minibatch_size=2).compile(
            lmbridge.Predict(SIG, lm=lm), trainset=train, valset=val)
        assert sum("You improve the instruction" in str(m[0]["content"]) for m in lm.calls) == reflections
        assert compiled.report is not None and compiled.report["best_score"] == best
        assert compiled.report["examples_run"] <= budget


def test_gepa_budget_arguments_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exactly one budget"):
        GEPA(metric)
    with pytest.raises(ValueError, match="exactly one budget"):
        GEPA(metric, auto="light", max_metric_calls=10)


def test_gepa_same_seed_same_program() -> None:
    results = []
    for _ in range(2):
        student = lmbridge.Predict(SIG, lm=ScriptedLM(rewriting_model))
        compiled = GEPA(metric, auto="light", seed=4).compile(student, trainset=sentiment_rows(6),
                                                               valset=sentiment_rows(6, offset=6))
        results.append(program_state(compiled))
    assert results[0] == results[1]


# -- SIMBA ------------------------------------------------------------------------------------------

def test_simba_adds_demos_or_rules_where_runs_disagree() -> None:
    def noisy(messages: list[Any]) -> Any:
        # right with a rule or with demos, and half the time anyway (so trajectories disagree)
        first = str(messages[0]["content"])
        if "Two attempts" in first:
            return {"rule": "Answer carefully."}
        text = last_text(messages)
        if "carefully" in first or len(messages) > 1 or hash(str(messages)) % 2:
            return {"label": truth(text)}
        return {"label": "positive"}

    student = lmbridge.Predict(SIG, lm=ScriptedLM(noisy))
    opt = SIMBA(metric=metric, bsize=6, num_candidates=3, max_steps=2, max_demos=2)
    compiled = opt.compile(student, trainset=sentiment_rows(10))
    report = compiled.report
    assert report is not None
    assert report["best_score"] >= report["baseline_score"]
    assert any(t["kind"] == "full_evaluation" for t in report["trials"])
    assert student.demos == [] and "carefully" not in student.instructions


def test_simba_budget_cap_returns_a_program() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    compiled = SIMBA(metric=metric, bsize=4, num_candidates=2, max_steps=3, max_lm_calls=10).compile(
        student, trainset=sentiment_rows(6))
    assert model.calls == 10
    assert compiled.report is not None and "max_lm_calls=10" in compiled.report["stopped_early"]


# -- KNNFewShot ------------------------------------------------------------------------------------

def test_knn_fewshot_shows_the_nearest_training_examples_as_demos() -> None:
    lm = ScriptedLM(CountingModel(needs_demos=True))
    train = sentiment_rows(8)
    student = lmbridge.Predict(SIG, lm=lm)
    compiled = KNNFewShot(2, train, HashingEmbedder()).compile(student)
    near = compiled.nearest(text="a great film number 2")
    assert near[0].text == "a great film number 2"
    prediction = compiled(text="a great film number 2")
    assert prediction.label == "positive"
    sent = lm.calls[-1]
    assert len(sent) == 5  # two demos as user/assistant turns, then the question
    assert student.demos == []


def test_knn_fewshot_rejects_a_bad_embedder() -> None:
    with pytest.raises(ValueError, match="vectors"):
        KNNFewShot(2, sentiment_rows(4), lambda texts: [[1.0]]).compile(lmbridge.Predict(SIG))


# -- Ensemble ----------------------------------------------------------------------------------------

def test_ensemble_reduces_with_majority() -> None:
    answers = iter(["positive", "negative", "negative"])
    programs = [lmbridge.Predict(SIG, lm=ScriptedLM([{"label": next(answers)}])) for _ in range(3)]
    ensembled = Ensemble(reduce_fn=majority).compile(programs)
    assert ensembled(text="hmm").label == "negative"
    assert ensembled.report is not None and ensembled.report["programs"] == 3


def test_ensemble_without_reduce_returns_every_prediction_and_size_samples() -> None:
    programs = [lmbridge.Predict(SIG, lm=ScriptedLM(lambda m: {"label": "positive"})) for _ in range(4)]
    outputs = Ensemble(size=2, deterministic=True).compile(programs)(text="x")
    assert isinstance(outputs, list) and len(outputs) == 2
    with pytest.raises(ValueError):
        Ensemble().compile([])


def test_a_proposal_that_echoes_the_proposer_prompt_is_dropped() -> None:
    # A base model asked for an instruction may copy the request back; that is no candidate.
    from lmbridge.optimizers._support.proposer import ProposeInstruction, clean_instruction

    own = ProposeInstruction.instructions
    assert clean_instruction(own[:80], prompt=own) is None
    assert clean_instruction("Classify the review as negative or positive.", prompt=own) == \
        "Classify the review as negative or positive."
