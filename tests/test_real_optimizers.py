"""Each optimizer compiles a real program on a real dataset slice, on an embedded model.

SmolLM2-135M-Instruct follows instructions, brittlely: the wording moves it. Gemma-3-270M is a base
model that learns the task from demos, which makes it the target for the demo optimizers. Small on
purpose (a few dozen LM calls each).

Greedy decoding of a tiny model differs with the CPU's instruction set, so whether a given compile
moves the score up here is a property of the machine, not of lmbridge (the benchmarks measure that,
side by side with DSPy). These tests assert what holds on any CPU: the budget is kept, the compiled
program is the best candidate the search scored and never worse than the student it started from,
its demos are training examples with their gold labels, and every answer is a typed label or a
counted failure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest

import lmbridge
from lmbridge.optimizers import majority

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.compile_trec import QuestionType
from examples.data import load_classification

pytestmark = pytest.mark.real_model

class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the review as positive or negative."""

    text: str = lmbridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")


metric = lmbridge.metrics.exact_match("label")


@pytest.fixture(scope="module")
def lm() -> lmbridge.LM:
    return lmbridge.LM("local/smollm2", max_tokens=24)


@pytest.fixture(scope="module")
def gemma() -> lmbridge.LM:
    return lmbridge.LM("local/gemma3", max_tokens=8)


def score(program: lmbridge.Module, rows: list[lmbridge.Example]) -> float:
    return lmbridge.Evaluate(devset=rows, metric=metric, num_threads=1, display_progress=False)(program).score


def instruction_of(program: lmbridge.Module) -> str:
    return program.predictors()[0].signature.instructions


def gold_demos(program: lmbridge.Module, train: list[lmbridge.Example]) -> None:
    """Every demo of ``program`` is a training example with its gold label."""
    gold = {row.text: row.label for row in train}
    for demo in program.predictors()[0].demos:
        assert gold.get(demo["text"]) == demo["label"], demo


def test_labeled_fewshot_sends_k_gold_examples_with_every_question(lm: lmbridge.LM) -> None:
    train = load_classification("trec", "train", 40)
    test = load_classification("trec", "test", 6)
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(QuestionType)
        compiled = lmbridge.LabeledFewShot(k=6).compile(student, trainset=train)
        assert student.demos == [] and len(compiled.predictors()[0].demos) == 6
        gold_demos(compiled, train)
        before = len(lm.history)
        result = lmbridge.Evaluate(devset=test, metric=metric, num_threads=1, display_progress=False)(compiled)
    assert len(result.results) == 6 and 0.0 <= result.score <= 100.0
    for entry in list(lm.history)[before:]:
        sent = "\n".join(m["content"] for m in entry.messages)
        assert all(d["text"] in sent for d in compiled.predictors()[0].demos)


def test_bootstrap_fewshot_keeps_the_budget_and_only_demos_that_pass(lm: lmbridge.LM) -> None:
    train = load_classification("trec", "train", 10)
    test = load_classification("trec", "test", 12)
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(QuestionType)
        compiled = lmbridge.BootstrapFewShot(metric=metric, max_bootstrapped_demos=3, max_labeled_demos=6,
                                           num_threads=1).compile(student, trainset=train)
        assert compiled.report is not None and compiled.report["lm_calls"] <= 10
        assert 0.0 <= score(compiled, test) <= 100.0
    demos = compiled.predictors()[0].demos
    assert 0 < len(demos) <= 6
    gold_demos(compiled, train)  # a bootstrapped demo passed the metric, so its label is the gold one


def test_mipro_search_keeps_the_budget_and_never_loses_to_its_baseline(lm: lmbridge.LM) -> None:
    pytest.importorskip("optuna")
    train = load_classification("trec", "train", 8)
    val = load_classification("trec", "train", 16)[8:]
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(QuestionType)
        opt = lmbridge.MIPROv2(metric, auto=None, num_candidates=3, max_bootstrapped_demos=2, max_labeled_demos=4,
                             num_threads=1, max_lm_calls=100)
        compiled = opt.compile(student, trainset=train, valset=val, num_trials=4)
    report = compiled.report
    assert report is not None and report["lm_calls"] <= 100
    assert report["best_score"] >= report["baseline_score"]
    assert len(report["trials"]) >= 1


def test_random_search_on_gemma_keeps_the_best_candidate(gemma: lmbridge.LM) -> None:
    rows = load_classification("sst2", "train", 12)
    train, val = rows[:8], rows[8:]
    test = load_classification("sst2", "test", 8)
    with lmbridge.context(lm=gemma):
        student = lmbridge.Predict(Sentiment)
        opt = lmbridge.BootstrapFewShotWithRandomSearch(metric, max_bootstrapped_demos=2, max_labeled_demos=4,
                                                      num_candidate_programs=1, num_threads=1, max_lm_calls=40)
        compiled = opt.compile(student, trainset=train, valset=val)
        report = compiled.report
        assert report is not None and report["lm_calls"] <= 40
        assert report["best_score"] >= report["baseline_score"]  # the zero-shot student is a candidate
        assert 0.0 <= score(compiled, test) <= 100.0
    gold_demos(compiled, train)


def test_copro_keeps_the_best_instruction_it_scored(lm: lmbridge.LM) -> None:
    # init_temperature=0: greedy proposals, so the run does not depend on which tests ran before.
    rows = load_classification("sst2", "dev", 8)
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(Sentiment)
        opt = lmbridge.COPRO(metric=metric, breadth=2, depth=3, init_temperature=0.0, max_lm_calls=40)
        compiled = opt.compile(student, trainset=rows)
    report = compiled.report
    assert report is not None and report["lm_calls"] <= 40
    assert report["best_score"] >= report["baseline_score"]
    # the student's instruction is kept unless a proposal scored strictly better
    assert (instruction_of(compiled) != student.instructions) == (report["best_score"] > report["baseline_score"])


def test_ensemble_votes_its_members_answers_on_gemma(gemma: lmbridge.LM) -> None:
    # Three 3-shot programs, each with other demos; the ensemble answers what most of them answer.
    train = load_classification("sst2", "train", 40)
    test = load_classification("sst2", "test", 12)
    with lmbridge.context(lm=gemma):
        student = lmbridge.Predict(Sentiment)
        programs = [lmbridge.LabeledFewShot(k=3, seed=seed).compile(student, trainset=train) for seed in range(3)]
        ensembled = lmbridge.Ensemble(reduce_fn=majority).compile(programs)
        assert 0.0 <= score(ensembled, test) <= 100.0
        assert len({tuple(d["text"] for d in p.predictors()[0].demos) for p in programs}) == 3
        for example in test[:4]:
            votes = [p(text=example.text).label for p in programs]
            assert ensembled(text=example.text).label == max(votes, key=votes.count)


def test_simba_keeps_the_budget_and_never_loses_to_its_baseline(lm: lmbridge.LM) -> None:
    # SIMBA samples its trajectories at temperature 0.2; the embedded model seeds each sample from
    # the request, so the run repeats on one machine.
    train = load_classification("sst2", "train", 16)
    val = load_classification("sst2", "dev", 8)
    test = load_classification("sst2", "test", 16)
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(Sentiment)
        opt = lmbridge.SIMBA(metric=metric, bsize=4, num_candidates=3, max_steps=3, max_lm_calls=120,
                           display_progress=False)
        compiled = opt.compile(student, trainset=train, valset=val)
        report = compiled.report
        assert report is not None and report["lm_calls"] <= 120
        assert report["best_score"] >= report["baseline_score"]
        assert 0.0 <= score(compiled, test) <= 100.0


def test_gepa_reads_feedback_and_keeps_only_proposals_that_win(lm: lmbridge.LM) -> None:
    # No improvement is asserted here, because none happens: SmolLM2 as its own reflection model
    # writes instructions that drop the task ("You are a helpful AI assistant..."), and every one
    # of them loses on its minibatch (see docs/optimizers/gepa.md). What a user relies on, on the
    # real model: the metric's feedback reaches the reflection, each proposal is scored, and the
    # compiled program is the best one seen on the valset, never worse than the student.
    def sentiment_feedback(gold: lmbridge.Example, pred: lmbridge.Prediction,
                           trace: object = None) -> dict[str, object]:
        right = pred.label == gold.label
        wrong = f"Wrong: the review is {gold.label}, the answer said {pred.label}."
        return {"score": float(right), "feedback": "Correct." if right else wrong}

    train = load_classification("sst2", "train", 12)
    val = load_classification("sst2", "dev", 8)
    reflection = lmbridge.LM("local/smollm2", temperature=1.0, max_tokens=160)
    with lmbridge.context(lm=lm):
        student = lmbridge.Predict(Sentiment)
        opt = lmbridge.GEPA(sentiment_feedback, max_metric_calls=48, reflection_minibatch_size=4,
                          reflection_lm=reflection, max_lm_calls=90, display_progress=False)
        compiled = opt.compile(student, trainset=train, valset=val)
        report = compiled.report
        assert report is not None and report["lm_calls"] <= 90
        proposals = [t for t in report["trials"] if t["kind"] == "minibatch"]
        assert len(proposals) >= 3
        asked = " ".join(m["content"] for h in reflection.history for m in h.messages)
        assert "Wrong: the review is" in asked or "Correct." in asked  # the metric's feedback, verbatim
        assert score(compiled, val) == report["best_score"] >= report["baseline_score"]
