"""The optimizer contract on LabeledFewShot, BootstrapFewShot and the random search, with scripted
models: no mutation, the seed, the report, budget caps, bad inputs, resume from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_optimizers_support import SIG, CountingModel, metric, program_state, sentiment_rows, truth

import lmbridge
from lmbridge import BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot
from lmbridge.testing import ScriptedLM


class Pipeline(lmbridge.Module):
    """Two steps: a keyword extractor, then a classifier that reads the keyword."""

    def __init__(self) -> None:
        self.extract = lmbridge.Predict("text -> keyword")
        self.classify = lmbridge.Predict("keyword -> label: Literal['negative', 'positive']")

    def forward(self, text: str) -> lmbridge.Prediction:
        keyword = self.extract(text=text).keyword
        return self.classify(keyword=keyword)


def pipeline_model(messages: list[Any]) -> Any:
    content = messages[-1]["content"]
    if "Keyword:" in content.rsplit("\n", 1)[-1] and "Text:" in content:
        return {"keyword": content.rsplit("Text:", 1)[-1].split()[1]}
    word = content.rsplit("Keyword:", 1)[-1].split("\n")[0].strip()
    return {"label": truth(word)}


# -- LabeledFewShot --------------------------------------------------------------------------------

def test_labeled_fewshot_gives_k_demos_from_the_trainset_and_leaves_the_student_alone() -> None:
    student = lmbridge.Predict(SIG)
    rows = sentiment_rows(10)
    compiled = LabeledFewShot(k=3).compile(student, trainset=rows)
    assert student.demos == []
    assert len(compiled.demos) == 3 and all(d in rows for d in compiled.demos)
    assert compiled.report is not None and compiled.report["optimizer"] == "LabeledFewShot"
    assert compiled.report["lm_calls"] == 0


def test_labeled_fewshot_is_seeded() -> None:
    rows = sentiment_rows(12)
    a = LabeledFewShot(k=4, seed=1).compile(lmbridge.Predict(SIG), trainset=rows)
    b = LabeledFewShot(k=4, seed=1).compile(lmbridge.Predict(SIG), trainset=rows)
    c = LabeledFewShot(k=4, seed=2).compile(lmbridge.Predict(SIG), trainset=rows)
    assert a.demos == b.demos
    assert a.demos != c.demos
    first = LabeledFewShot(k=4).compile(lmbridge.Predict(SIG), trainset=rows, sample=False)
    assert first.demos == rows[:4]


# -- BootstrapFewShot ------------------------------------------------------------------------------

def test_bootstrap_keeps_only_accepted_traces_with_the_model_outputs() -> None:
    model = CountingModel(needs_demos=True)
    rows = sentiment_rows(8)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    compiled = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=5).compile(
        student, trainset=rows)
    assert student.demos == [] and student.lm is compiled.lm
    boot = compiled.demos[:2]
    # each bootstrapped demo is an accepted run: the model's label equals the gold label
    assert all(d["label"] == truth(d["text"]) for d in boot)
    assert len(compiled.demos) == 5
    report = compiled.report
    assert report is not None
    assert report["bootstrapped"] == {"self": 2}
    assert report["lm_calls"] == model.calls >= 2
    assert report["wall_time"] >= 0 and report["stopped_early"] is None


def test_bootstrap_gives_each_predictor_of_a_pipeline_its_own_demos() -> None:
    rows = sentiment_rows(6)
    with lmbridge.context(lm=ScriptedLM(pipeline_model)):
        compiled = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2).compile(
            Pipeline(), trainset=rows)
    extract, classify = compiled.extract.demos, compiled.classify.demos
    assert len(extract) == 2 and len(classify) == 2
    assert set(extract[0]) == {"text", "keyword"}
    assert set(classify[0]) == {"keyword", "label"}
    assert extract[0]["keyword"] == rows[0].text.split()[1]


def test_bootstrap_with_a_scripted_teacher_is_deterministic_across_thread_counts() -> None:
    rows = sentiment_rows(10)
    results = []
    for threads in (1, 4):
        student = lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel(needs_demos=False)))
        opt = BootstrapFewShot(metric=metric, max_bootstrapped_demos=3, max_labeled_demos=6, seed=5,
                               num_threads=threads)
        results.append(program_state(opt.compile(student, trainset=rows)))
    assert results[0] == results[1]


def test_max_lm_calls_stops_the_compile_and_returns_the_best_so_far() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    opt = BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=4, max_lm_calls=2,
                           num_threads=1)
    compiled = opt.compile(student, trainset=sentiment_rows(10))
    assert model.calls == 2
    assert compiled.report is not None
    assert "max_lm_calls=2" in compiled.report["stopped_early"]
    assert len(compiled.demos) >= 2  # the two accepted traces, topped up with labeled rows


def test_estimate_is_an_upper_bound_and_calls_no_model() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    rows = sentiment_rows(6)
    opt = BootstrapFewShot(metric=metric, max_bootstrapped_demos=6)
    estimate = opt.estimate(student, trainset=rows)
    assert model.calls == 0
    compiled = opt.compile(student, trainset=rows)
    assert compiled.report is not None
    assert compiled.report["lm_calls"] <= estimate.lm_calls


# -- bad inputs -------------------------------------------------------------------------------------

def test_empty_trainset_and_unmarked_inputs_are_clear_errors() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel()))
    with pytest.raises(ValueError, match="trainset has 0 examples"):
        BootstrapFewShot(metric=metric).compile(student, trainset=[])
    with pytest.raises(ValueError, match="with_inputs"):
        unmarked = [lmbridge.Example(text="x", label="positive")]
        BootstrapFewShot(metric=metric).compile(student, trainset=unmarked)


def test_a_metric_returning_a_non_number_is_an_error_at_once() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    with pytest.raises(lmbridge.EvaluationError, match="must return a finite number"):
        BootstrapFewShot(metric=lambda e, p, t=None: "yes", num_threads=1).compile(
            student, trainset=sentiment_rows(6))
    assert model.calls == 1


def test_a_metric_that_always_raises_ends_in_a_clear_error() -> None:
    def broken(example: Any, prediction: Any, trace: Any = None) -> float:
        raise KeyError("answer")

    student = lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel()))
    with pytest.raises(lmbridge.EvaluationError, match="KeyError"):
        BootstrapFewShot(metric=broken).compile(student, trainset=sentiment_rows(4))


def test_a_program_failing_some_examples_counts_them() -> None:
    def flaky(messages: list[Any]) -> Any:
        request = [m["content"] for m in messages if m["role"] == "user" and "Text:" in m["content"]][-1]
        if "awful" in request.rsplit("Text:", 1)[-1]:
            return "no idea"
        return {"label": truth(request.rsplit("Text:", 1)[-1])}

    student = lmbridge.Predict(SIG, lm=ScriptedLM(flaky))
    compiled = BootstrapFewShot(metric=metric, max_bootstrapped_demos=8, max_labeled_demos=8).compile(
        student, trainset=sentiment_rows(8))
    assert compiled.report is not None
    assert compiled.report["failures"] == 2
    assert any("ParseError" in e for e in compiled.report["errors"])
    with pytest.raises(lmbridge.EvaluationError, match="max_errors=1"):
        BootstrapFewShot(metric=metric, max_bootstrapped_demos=8, max_errors=1).compile(
            lmbridge.Predict(SIG, lm=ScriptedLM(flaky)), trainset=sentiment_rows(8))


def test_a_program_failing_every_example_is_a_clear_error() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(lambda messages: "gibberish"))
    with pytest.raises(lmbridge.EvaluationError, match="every one of the 4 examples"):
        BootstrapFewShot(metric=metric).compile(student, trainset=sentiment_rows(4))


# -- checkpoint ---------------------------------------------------------------------------------------

def test_bootstrap_resumes_from_its_checkpoint_without_new_calls(tmp_path: Path) -> None:
    rows = sentiment_rows(8)
    first = CountingModel(needs_demos=False)
    opt = BootstrapFewShot(metric=metric, max_bootstrapped_demos=3, max_labeled_demos=3)
    a = opt.compile(lmbridge.Predict(SIG, lm=ScriptedLM(first)), trainset=rows, checkpoint=tmp_path / "ck.json")
    again = CountingModel(needs_demos=False)
    b = opt.compile(lmbridge.Predict(SIG, lm=ScriptedLM(again)), trainset=rows, checkpoint=tmp_path / "ck.json")
    assert first.calls > 0 and again.calls == 0
    assert program_state(a) == program_state(b)
    assert b.report is not None and b.report["resumed"] is True
    with pytest.raises(lmbridge.StateError, match="different compile"):
        opt.compile(lmbridge.Predict(SIG, lm=ScriptedLM(again)), trainset=rows[:5],
                    checkpoint=tmp_path / "ck.json")


# -- random search --------------------------------------------------------------------------------

def test_random_search_scores_candidates_and_keeps_the_best() -> None:
    model = CountingModel(needs_demos=True)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    train, val = sentiment_rows(8), sentiment_rows(6, offset=8)
    opt = BootstrapFewShotWithRandomSearch(metric, max_bootstrapped_demos=2, max_labeled_demos=2,
                                           num_candidate_programs=2)
    compiled = opt.compile(student, trainset=train, valset=val)
    report = compiled.report
    assert report is not None
    assert [t["seed"] for t in report["trials"]] == [-3, -2, -1, 0, 1]
    assert report["baseline_score"] == 50.0  # zero-shot: always "positive"
    assert report["best_score"] == 100.0
    assert compiled.demos and student.demos == []
    assert lmbridge.Evaluate(devset=val, metric=metric, display_progress=False)(compiled).score == 100.0


def test_random_search_stop_at_score_restrict_and_resume(tmp_path: Path) -> None:
    train, val = sentiment_rows(6), sentiment_rows(4, offset=6)
    opt = BootstrapFewShotWithRandomSearch(metric, max_bootstrapped_demos=2, max_labeled_demos=2,
                                           num_candidate_programs=3, stop_at_score=100.0)
    compiled = opt.compile(lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel())), trainset=train, valset=val)
    assert compiled.report is not None
    assert [t["seed"] for t in compiled.report["trials"]] == [-3, -2]
    restricted = opt.compile(lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel())), trainset=train,
                             valset=val, restrict=[-3, 1])
    assert restricted.report is not None
    assert [t["seed"] for t in restricted.report["trials"]] == [-3, 1]

    slow = BootstrapFewShotWithRandomSearch(metric, max_bootstrapped_demos=2, max_labeled_demos=2,
                                            num_candidate_programs=2)
    ck = tmp_path / "search.json"
    a = slow.compile(lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel())), trainset=train, valset=val,
                     checkpoint=ck)
    assert json.loads(ck.read_text())["format"] == "lmbridge.checkpoint"
    again = CountingModel()
    b = slow.compile(lmbridge.Predict(SIG, lm=ScriptedLM(again)), trainset=train, valset=val, checkpoint=ck)
    assert again.calls == 0
    assert program_state(a) == program_state(b)


def test_compiled_program_saves_and_loads_its_report(tmp_path: Path) -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(CountingModel(needs_demos=False)))
    compiled = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2).compile(
        student, trainset=sentiment_rows(4))
    compiled.save(tmp_path / "p.json")
    loaded = lmbridge.Predict(SIG).load(tmp_path / "p.json")
    assert loaded.report == json.loads(json.dumps(compiled.report))
    assert [d.to_dict() for d in loaded.predictors()[0].demos] == [d.to_dict() for d in compiled.demos]


def test_a_compile_stopped_by_its_budget_resumes_under_a_larger_one(tmp_path: Path) -> None:
    rows = sentiment_rows(8)
    ck = tmp_path / "boot.json"
    first = CountingModel(needs_demos=False)
    capped = BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=4, max_lm_calls=2,
                              num_threads=1)
    stopped = capped.compile(lmbridge.Predict(SIG, lm=ScriptedLM(first)), trainset=rows, checkpoint=ck)
    assert stopped.report is not None and stopped.report["stopped_early"]
    rest = CountingModel(needs_demos=False)
    full = BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=4, num_threads=1)
    done = full.compile(lmbridge.Predict(SIG, lm=ScriptedLM(rest)), trainset=rows, checkpoint=ck)
    assert first.calls == 2 and rest.calls == 2  # the two finished attempts were not paid for again
    assert done.report is not None and done.report["bootstrapped"] == {"self": 4}
