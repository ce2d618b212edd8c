"""Evaluate: scores, rows, errors, max_errors, threads, usage and progress output."""

from __future__ import annotations

from typing import Any

import pytest

import bridge
from bridge.evaluate import evaluate_one, to_score
from bridge.metrics import answer_exact_match, exact_match, f1, normalize_text, token_f1
from bridge.testing import ScriptedLM

DEVSET = [bridge.Example(question=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("question")
          for i in range(10)]


def adder(messages: list[bridge.Message]) -> Any:
    """Answers right for even i and wrong for odd i, so the score is 50%."""
    i = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
    return {"answer": str(2 * i if i % 2 == 0 else 0)}


def program(lm: ScriptedLM | None = None) -> bridge.Predict:
    return bridge.Predict("question -> answer", lm=lm or ScriptedLM(adder))


def test_score_is_a_percentage_and_rows_follow_the_devset() -> None:
    result = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(program())
    assert result.score == 50.0
    assert float(result) == 50.0
    assert len(result.results) == 10
    assert [row.example for row in result.results] == DEVSET
    example, prediction, score = result.results[2]
    assert example is DEVSET[2] and prediction is not None and prediction.answer == "4" and score == 1.0
    assert result.results[3].score == 0.0 and result.results[3].error is None
    assert result.errors == 0


def test_usage_is_aggregated_and_visible_to_track_usage() -> None:
    evaluate = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False,
                               num_threads=3)
    with bridge.track_usage() as tracker:
        result = evaluate(program())
    assert result.usage.calls == 10
    assert tracker.usage.calls == 10
    assert tracker.usage.prompt_tokens == result.usage.prompt_tokens > 0


def test_failing_examples_score_zero_and_are_counted() -> None:
    def flaky(messages: list[bridge.Message]) -> Any:
        if "What is 3 " in messages[-1]["content"]:
            return bridge.AuthenticationError("no")
        return adder(messages)

    result = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(
        program(ScriptedLM(flaky)))
    assert result.errors == 1
    row = result.results[3]
    assert row.prediction is None and row.score == 0.0
    assert row.error is not None and "AuthenticationError" in row.error
    assert result.score == 50.0


def test_max_errors_aborts_only_when_given() -> None:
    always_broken = ScriptedLM(lambda m: "unparseable for an int")
    prog = bridge.Predict("question -> answer: int", lm=always_broken)
    result = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(prog)
    assert result.errors == 10 and result.score == 0.0
    assert all(r.error is not None and "ParseError" in r.error for r in result.results)
    with pytest.raises(bridge.EvaluationError, match="max_errors=2"):
        bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=2,
                        num_threads=1)(prog)
    with pytest.raises(bridge.EvaluationError):
        bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=2,
                        num_threads=4)(prog)


def test_max_errors_not_reached_returns_normally() -> None:
    def flaky(messages: list[bridge.Message]) -> Any:
        if "What is 1 " in messages[-1]["content"]:
            return bridge.AuthenticationError("no")
        return adder(messages)

    result = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=1)(
        program(ScriptedLM(flaky)))
    assert result.errors == 1


@pytest.mark.parametrize("bad_metric", [
    lambda ex, pred, trace=None: 1 / 0,
    lambda ex, pred, trace=None: "yes",
    lambda ex, pred, trace=None: None,
    lambda ex, pred, trace=None: float("nan"),
])
def test_metric_that_raises_or_returns_a_non_number_is_an_error(bad_metric: Any) -> None:
    result = bridge.Evaluate(devset=DEVSET[:3], metric=bad_metric, display_progress=False)(program())
    assert result.errors == 3
    assert result.score == 0.0
    assert all(r.error is not None and r.error.startswith("metric:") for r in result.results)
    assert all(r.prediction is not None for r in result.results)


def test_threads_give_the_same_result_as_one() -> None:
    one = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=1, display_progress=False)(
        program())
    many = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=4, display_progress=False)(
        program())
    assert many.score == one.score
    assert [(r.example, r.score, r.prediction) for r in many.results] == \
           [(r.example, r.score, r.prediction) for r in one.results]


def test_workers_see_the_callers_context() -> None:
    prog = bridge.Predict("question -> answer")  # no LM of its own
    with bridge.context(lm=ScriptedLM(adder)):
        result = bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=4,
                                 display_progress=False)(prog)
    assert result.errors == 0 and result.score == 50.0


def test_progress_shows_a_running_score(capsys: pytest.CaptureFixture[str]) -> None:
    bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=1, display_progress=True)(program())
    err = capsys.readouterr().err
    assert "10/10" in err
    assert "score= 50.0%" in err
    bridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(program())
    assert capsys.readouterr().err == ""


def test_override_metric_and_devset_at_call_time() -> None:
    evaluate = bridge.Evaluate(devset=DEVSET, metric=lambda e, p, t=None: 0.0, display_progress=False)
    result = evaluate(program(), metric=answer_exact_match, devset=DEVSET[0:4:2])
    assert len(result.results) == 2 and result.score == 100.0


def test_evaluate_one_passes_the_trace() -> None:
    seen: list[Any] = []
    row = evaluate_one(program(), DEVSET[0], lambda e, p, t=None: seen.append(t) or True, trace="T")
    assert row.score == 1.0 and seen == ["T"]


def test_to_score() -> None:
    assert to_score(True) == 1.0 and to_score(False) == 0.0
    assert to_score(3) == 3.0 and to_score(0.25) == 0.25

    class Scored:
        score = 0.75

    assert to_score(Scored()) == 0.75
    for bad in ("1", None, float("inf"), [1]):
        with pytest.raises(TypeError):
            to_score(bad)


def test_metrics() -> None:
    assert normalize_text("The  Eiffel Tower!") == "eiffel tower"
    ex = bridge.Example(answer="The Eiffel Tower")
    assert exact_match("answer")(ex, bridge.Prediction(answer="eiffel tower")) == 1.0
    assert exact_match("answer")(ex, bridge.Prediction(answer="tower")) == 0.0
    assert f1("answer")(ex, bridge.Prediction(answer="tower")) == pytest.approx(2 / 3)
    multi = bridge.Example(answers=["Paris", "City of Paris"])
    assert exact_match("answer")(multi, bridge.Prediction(answer="paris")) == 1.0
    assert token_f1("", "") == 1.0 and token_f1("a b", "c") == 0.0
