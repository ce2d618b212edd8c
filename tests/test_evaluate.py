"""Evaluate: scores, rows, errors, max_errors, threads, usage and progress output, and the one rule
of the shared example runner: per-example failures are counted, configuration failures stop the run."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
from lmbridge.evaluate import read_score, run_one
from lmbridge.metrics import answer_exact_match, exact_match, f1, normalize_text, token_f1
from lmbridge.testing import ScriptedLM

DEVSET = [lmbridge.Example(question=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("question")
          for i in range(10)]


def adder(messages: list[lmbridge.Message]) -> Any:
    """Answers right for even i and wrong for odd i, so the score is 50%."""
    i = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
    return {"answer": str(2 * i if i % 2 == 0 else 0)}


def program(lm: ScriptedLM | None = None) -> lmbridge.Predict:
    return lmbridge.Predict("question -> answer", lm=lm or ScriptedLM(adder))


def test_score_is_a_percentage_and_rows_follow_the_devset() -> None:
    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(program())
    assert result.score == 50.0
    assert float(result) == 50.0
    assert len(result.results) == 10
    assert [row.example for row in result.results] == DEVSET
    example, prediction, score = result.results[2]
    assert example is DEVSET[2] and prediction is not None and prediction.answer == "4" and score == 1.0
    assert result.results[3].score == 0.0 and result.results[3].error is None
    assert result.errors == 0


def test_usage_is_aggregated_and_visible_to_track_usage() -> None:
    evaluate = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False,
                               num_threads=3)
    with lmbridge.track_usage() as tracker:
        result = evaluate(program())
    assert result.usage.calls == 10
    assert tracker.usage.calls == 10
    assert tracker.usage.prompt_tokens == result.usage.prompt_tokens > 0


def test_failing_examples_score_zero_and_are_counted() -> None:
    def flaky(messages: list[lmbridge.Message]) -> Any:
        if "What is 3 " in messages[-1]["content"]:
            return lmbridge.LMError("server overloaded", status_code=503)  # transient, still failing after retries
        return adder(messages)

    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(
        program(ScriptedLM(flaky)))
    assert result.errors == 1
    row = result.results[3]
    assert row.prediction is None and row.score == 0.0
    assert row.error is not None and "LMError" in row.error
    assert result.score == 50.0


def test_max_errors_aborts_only_when_given() -> None:
    always_broken = ScriptedLM(lambda m: "unparseable for an int")
    prog = lmbridge.Predict("question -> answer: int", lm=always_broken)
    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(prog)
    assert result.errors == 10 and result.score == 0.0
    assert all(r.error is not None and "ParseError" in r.error for r in result.results)
    with pytest.raises(lmbridge.EvaluationError, match="max_errors=2"):
        lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=2,
                        num_threads=1)(prog)
    with pytest.raises(lmbridge.EvaluationError):
        lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=2,
                        num_threads=4)(prog)


def test_max_errors_not_reached_returns_normally() -> None:
    def flaky(messages: list[lmbridge.Message]) -> Any:
        if "What is 1 " in messages[-1]["content"]:
            return lmbridge.RateLimitError("slow down")
        return adder(messages)

    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False, max_errors=1)(
        program(ScriptedLM(flaky)))
    assert result.errors == 1


@pytest.mark.parametrize(("bad_metric", "says"), [
    (lambda ex, pred, trace=None: 1 / 0, "ZeroDivisionError"),
    (lambda ex, pred, trace=None: "yes", "must return a finite number"),
    (lambda ex, pred, trace=None: None, "must return a finite number"),
    (lambda ex, pred, trace=None: float("nan"), "nan"),
])
def test_a_metric_that_raises_or_returns_a_non_number_stops_the_run(bad_metric: Any, says: str) -> None:
    lm = ScriptedLM(adder)
    with pytest.raises(lmbridge.EvaluationError, match=says) as info:
        lmbridge.Evaluate(devset=DEVSET, metric=bad_metric, display_progress=False, num_threads=1)(program(lm))
    assert "first example" in str(info.value)
    assert info.value.__cause__ is not None
    assert len(lm.calls) == 1  # stopped at the first example, not scored 0 ten times


def test_threads_give_the_same_result_as_one() -> None:
    one = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=1, display_progress=False)(
        program())
    many = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=4, display_progress=False)(
        program())
    assert many.score == one.score
    assert [(r.example, r.score, r.prediction) for r in many.results] == \
           [(r.example, r.score, r.prediction) for r in one.results]


def test_workers_see_the_callers_context() -> None:
    prog = lmbridge.Predict("question -> answer")  # no LM of its own
    with lmbridge.context(lm=ScriptedLM(adder)):
        result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=4,
                                 display_progress=False)(prog)
    assert result.errors == 0 and result.score == 50.0


def test_progress_off_a_terminal_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, num_threads=1, display_progress=True)(program())
    err = capsys.readouterr().err
    assert "Evaluate: 10/10 score  50.0%" in err
    assert "\r" not in err and "\x1b" not in err  # no carriage returns or escapes in logs and CI
    assert len(err.splitlines()) <= 11
    lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(program())
    assert capsys.readouterr().err == ""


def test_override_metric_and_devset_at_call_time() -> None:
    evaluate = lmbridge.Evaluate(devset=DEVSET, metric=lambda e, p, t=None: 0.0, display_progress=False)
    result = evaluate(program(), metric=answer_exact_match, devset=DEVSET[0:4:2])
    assert len(result.results) == 2 and result.score == 100.0


def test_run_one_passes_the_trace_when_traced() -> None:
    seen: list[Any] = []
    row = run_one(program(), DEVSET[0], lambda e, p, t=None: seen.append(t) or True, traced=True)
    assert row.score == 1.0 and len(seen) == 1 and len(seen[0]) == 1  # one predictor call
    assert row.steps[0][0] == "self" and row.steps[0][1] == {"question": DEVSET[0].question}
    row = run_one(program(), DEVSET[0], lambda e, p, t=None: seen.append(t) or True)
    assert seen[-1] is None and row.steps == []


def test_read_score() -> None:
    assert read_score(True) == (1.0, None) and read_score(False) == (0.0, None)
    assert read_score(3) == (3.0, None) and read_score(0.25) == (0.25, None)
    assert read_score({"score": 1, "feedback": "ok"}) == (1.0, "ok")

    class Scored:
        score = 0.75
        feedback = "close"

    assert read_score(Scored()) == (0.75, "close")
    assert read_score(lmbridge.Prediction(score=0.5)) == (0.5, None)  # a Prediction-like result
    for bad in ("1", None, float("inf"), float("nan"), [1], {"score": float("nan")}):
        with pytest.raises(TypeError):
            read_score(bad)


def test_metrics() -> None:
    assert normalize_text("The  Eiffel Tower!") == "eiffel tower"
    ex = lmbridge.Example(answer="The Eiffel Tower")
    assert exact_match("answer")(ex, lmbridge.Prediction(answer="eiffel tower")) == 1.0
    assert exact_match("answer")(ex, lmbridge.Prediction(answer="tower")) == 0.0
    assert f1("answer")(ex, lmbridge.Prediction(answer="tower")) == pytest.approx(2 / 3)
    multi = lmbridge.Example(answers=["Paris", "City of Paris"])
    assert exact_match("answer")(multi, lmbridge.Prediction(answer="paris")) == 1.0
    assert token_f1("", "") == 1.0 and token_f1("a b", "c") == 0.0


# -- the rule: what is counted, what stops the run ----------------------------------------------------

class Tooling(lmbridge.Module):
    """A program whose tool fails on odd questions."""

    def __init__(self) -> None:
        self.predict = lmbridge.Predict("question -> answer", lm=ScriptedLM(adder))

    def forward(self, question: str) -> lmbridge.Prediction:
        if int(question.split("What is ")[1].split(" ")[0]) % 2:
            raise lmbridge.ToolError("calculator: timed out")
        return self.predict(question=question)


@pytest.mark.parametrize(("failure", "counted"), [
    (lmbridge.LMError("bad gateway", status_code=502), "LMError"),
    (lmbridge.RateLimitError("slow down", status_code=429), "RateLimitError"),
    (lmbridge.LMTimeoutError("timed out"), "LMTimeoutError"),
    (lmbridge.ContextWindowError("too long", status_code=400), "ContextWindowError"),
    ("no label here at all", "ParseError"),
])
def test_per_example_failures_are_counted_and_shown(failure: Any, counted: str) -> None:
    def model(messages: list[lmbridge.Message]) -> Any:
        return failure if any("What is 3 " in str(m["content"]) for m in messages) else adder(messages)

    prog = lmbridge.Predict("question -> answer: int", lm=ScriptedLM(model, num_retries=1))
    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(prog)
    assert result.errors == 1 and counted in str(result.results[3].error)
    assert result.score == 50.0 and len(result.results) == 10


def test_a_tool_failure_is_counted() -> None:
    result = lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(Tooling())
    assert result.errors == 5 and result.score == 50.0
    assert all("ToolError" in str(r.error) for r in result.results[1::2])


@pytest.mark.parametrize(("failure", "says"), [
    (lmbridge.AuthenticationError("Incorrect API key provided", status_code=401), "API key"),
    (lmbridge.LMError("model 'gpt-4o-mnii' does not exist", status_code=404), "model name"),
    (lmbridge.LMError("LLM Provider NOT provided: opnai/gpt-4o-mini", status_code=400), "provider prefix"),
    (lmbridge.LMError("unknown local model 'smolm2'"), "model name"),
])
@pytest.mark.parametrize("threads", [1, 4])
def test_configuration_failures_stop_the_run_with_what_to_fix(failure: Exception, says: str,
                                                             threads: int) -> None:
    lm = ScriptedLM(lambda m: failure)
    with pytest.raises(lmbridge.ConfigurationError, match=says) as info:
        lmbridge.Evaluate(devset=DEVSET * 10, metric=answer_exact_match, display_progress=False,
                        num_threads=threads)(program(lm))
    assert info.value.__cause__ is failure
    assert len(lm.calls) <= threads  # the first example(s) in flight, never the whole devset


def test_no_lm_configured_stops_the_run() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="no LM is configured"):
        lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(
            lmbridge.Predict("question -> answer"))


def test_a_metric_reading_a_field_the_examples_lack_stops_the_run_naming_it() -> None:
    lm = ScriptedLM(adder)
    with pytest.raises(lmbridge.EvaluationError, match="reads a field") as info:
        lmbridge.Evaluate(devset=DEVSET, metric=exact_match("label"), display_progress=False)(program(lm))
    assert "['answer', 'question']" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    assert len(lm.calls) == 1

    def attr_metric(example: Any, prediction: Any, trace: Any = None) -> bool:
        return bool(example.label == prediction.answer)

    with pytest.raises(lmbridge.EvaluationError, match="reads a field"):
        lmbridge.Evaluate(devset=DEVSET, metric=attr_metric, display_progress=False)(program())


def test_an_example_without_inputs_marked_stops_before_any_call() -> None:
    lm = ScriptedLM(adder)
    rows = [*DEVSET[:3], lmbridge.Example(question="What is 1 + 1?", answer="2")]
    with pytest.raises(ValueError, match=r"devset\[3\].*with_inputs"):
        lmbridge.Evaluate(devset=rows, metric=answer_exact_match, display_progress=False)(program(lm))
    assert lm.calls == []


def test_an_example_whose_inputs_do_not_fit_the_program_stops_the_run() -> None:
    rows = [lmbridge.Example(text="What is 1 + 1?", answer="2").with_inputs("text")]
    with pytest.raises(lmbridge.EvaluationError, match="does not fit the program"):
        lmbridge.Evaluate(devset=rows, metric=answer_exact_match, display_progress=False)(program())


def test_a_program_bug_stops_the_run() -> None:
    class Buggy(lmbridge.Module):
        def forward(self, question: str) -> lmbridge.Prediction:
            raise RuntimeError("oops")

    with pytest.raises(lmbridge.EvaluationError, match="the program raised RuntimeError: oops") as info:
        lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False)(Buggy())
    assert isinstance(info.value.__cause__, RuntimeError)


def test_the_optimizers_use_the_same_rule() -> None:
    lm = ScriptedLM(lambda m: lmbridge.AuthenticationError("Incorrect API key provided", status_code=401))
    opt = lmbridge.BootstrapFewShot(metric=answer_exact_match, display_progress=False)
    with pytest.raises(lmbridge.ConfigurationError, match="API key"):
        opt.compile(program(lm), trainset=DEVSET)
    assert len(lm.calls) == 1


def slow_refusal(messages: list[lmbridge.Message]) -> Any:
    """A refused key that takes a while to come back, as a real provider's 401 does under load."""
    import time

    time.sleep(0.05)
    return lmbridge.AuthenticationError("Incorrect API key provided", status_code=401)


def test_a_configuration_error_costs_one_call_however_many_threads() -> None:
    lm = ScriptedLM(slow_refusal)
    with pytest.raises(lmbridge.ConfigurationError, match="API key"):
        lmbridge.Evaluate(devset=DEVSET, metric=answer_exact_match, display_progress=False,
                          num_threads=8)(program(lm))
    assert len(lm.calls) == 1


@pytest.mark.parametrize("make", [
    lambda: lmbridge.BootstrapFewShot(metric=answer_exact_match, display_progress=False),
    lambda: lmbridge.BootstrapFewShotWithRandomSearch(metric=answer_exact_match, num_candidate_programs=2,
                                                      display_progress=False),
])
def test_an_optimizer_stops_on_a_configuration_error_after_one_call_however_many_threads(make: Any) -> None:
    lm = ScriptedLM(slow_refusal)
    with lmbridge.context(num_threads=8), pytest.raises(lmbridge.ConfigurationError, match="API key"):
        make().compile(program(lm), trainset=DEVSET)
    assert len(lm.calls) == 1


def test_the_docs_example_of_a_run_that_stops_runs() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "concepts" / "evaluate.md").read_text()
    blocks = [b.split("```", 1)[0] for b in page.split("```python\n")[1:]]
    runnable = [b for b in blocks if "import lmbridge" in b]
    assert runnable
    for block in runnable:
        exec(compile(block, "docs/concepts/evaluate.md", "exec"), {"__name__": "__docs__"})


# -- on the real embedded model -----------------------------------------------------------------------

@pytest.mark.real_model
def test_on_the_real_model_unparsable_answers_are_counted_and_the_score_matches_the_rows(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    from pathlib import Path

    monkeypatch.setenv("LMBRIDGE_LOCAL_THREADS", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.data import labels_of, load_classification

    labels = labels_of("trec")
    options = ", ".join(repr(label) for label in labels)
    signature = lmbridge.make_signature(f"text -> label: Literal[{options}]",
                                      "Classify what kind of answer the question asks for.")
    lm = lmbridge.LM("local/smollm2", cache=lmbridge.lm._cache.Cache(tmp_path), max_tokens=24)
    devset = load_classification("trec", "test", 6)
    result = lmbridge.Evaluate(devset=devset, metric=exact_match("label"), num_threads=1,
                             display_progress=False)(lmbridge.Predict(signature, lm=lm))
    assert len(result.results) == 6
    for row in result.results:
        if row.error is None:  # parsed: a typed label, scored by the metric
            assert row.prediction is not None and row.prediction.label in labels
            assert row.score == float(row.prediction.label == row.example.label)
        else:  # unparsable: counted, scored 0, never a made-up label
            assert row.error.startswith("program: ParseError") and row.prediction is None and row.score == 0
    assert result.errors == sum(1 for r in result.results if r.error is not None)
    assert result.score == pytest.approx(100 * sum(r.score for r in result.results) / 6)

    with pytest.raises(lmbridge.LMError, match="unknown local model"):  # a typo is refused up front
        lmbridge.LM("local/smolm2")


def test_the_progress_display_is_a_tqdm_bar_on_a_terminal_and_plain_lines_elsewhere() -> None:
    import io

    from lmbridge.tracing._progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        with Progress("Evaluate", 50, stream=stream, unit="ex") as progress:
            for i in range(50):
                progress.advance(1, f"score {i}%")
    assert "\r" in tty.getvalue() and "50/50" in tty.getvalue()  # tqdm redraws in place
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert lines[0] == "Evaluate: 1/50 score 0%" and lines[-1] == "Evaluate: 50/50 score 49%"
    assert len(lines) == 11  # the first, then one per tenth
    stopped = io.StringIO()
    with Progress("Evaluate", 50, stream=stopped) as progress:
        progress.advance(7, "score 1%")
        progress.advance(1, "score 2%")
    assert stopped.getvalue().splitlines()[-1] == "Evaluate: 8/50 score 2%"  # where the run stopped
