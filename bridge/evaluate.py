"""Evaluate, and the one example runner that Evaluate and every optimizer share.

``run_one`` runs one example through a program and scores it with the metric. One rule decides
what a failure means, for Evaluate and for compile alike:

* **Counted** (the example scores 0, is counted in ``errors`` and shown): a failure of that one
  example that another example may not meet: ``ParseError`` (the answer did not parse, even after
  the re-ask), ``ToolError``, ``RetrievalError`` (a retriever raised), ``ContextWindowError`` (this
  example's prompt is too long), and a transient ``LMError`` (rate limit, time-out, server error)
  still failing after its retries.
* **Stops the run** at once, raised ``from`` the cause, with what to fix: everything else.
  ``ConfigurationError`` when the setup is wrong (no LM configured, credentials refused, an
  unknown model or provider, a request the server refuses); ``EvaluationError`` when the data or
  the metric cannot work (an example that does not fit the program, a metric that raises or does
  not return a finite number), or when the program itself raises something else.
  ``MissingDependencyError`` passes through unchanged.

A metric returns a number or a bool, or a result carrying a ``score`` (a dict
``{"score": ..., "feedback": ...}`` or an object with those attributes, such as a Prediction).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import Any

from lmbridge._evaluation_table import render_table
from lmbridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ContextWindowError,
    EvaluationError,
    InputError,
    LMError,
    LMTimeoutError,
    MissingDependencyError,
    ParseError,
    RateLimitError,
    RetrievalError,
    ToolError,
    TruncatedError,
    describe,
)
from lmbridge.metrics import SemanticF1 as SemanticF1  # DSPy's dspy.evaluate names, re-exported where
from lmbridge.metrics import answer_exact_match as answer_exact_match  # DSPy users look for them
from lmbridge.metrics import answer_passage_match as answer_passage_match
from lmbridge.metrics import normalize_text as normalize_text
from lmbridge.programs import Module
from lmbridge.settings import context_executor, current
from lmbridge.tracing import Progress, RunScore, start_run, trace, track_usage
from lmbridge.types import Example, Prediction, Usage

Metric = Callable[..., Any]


@dataclass
class EvaluationRow:
    """One example run through one program and scored."""

    example: Example
    prediction: Prediction | None
    score: float
    """The metric's score (0.0 when the example failed)."""
    error: str | None = None
    """``"program: ..."`` when the example failed (it is counted, not fatal)."""
    feedback: str | None = None
    """Textual feedback the metric returned with its score, if any."""
    steps: list[tuple[str, dict[str, Any], Prediction]] = field(default_factory=list)
    """The predictor calls made, as (predictor name, inputs, prediction); only when traced."""

    def __iter__(self) -> Any:  # unpacks as (example, prediction, score), as in DSPy
        return iter((self.example, self.prediction, self.score))


@dataclass
class EvaluationResult:
    score: float
    """Mean score over the devset, as a percentage (0-100); failed examples count as 0."""
    results: list[EvaluationRow]
    """One row per example, in devset order."""
    errors: int = 0
    """Examples that failed (see the module docstring for what is counted); each scored 0."""
    usage: Usage = field(default_factory=Usage)
    elapsed: float = 0.0

    def __float__(self) -> float:
        return self.score

    def __repr__(self) -> str:
        return (f"EvaluationResult(score={self.score:.1f}, n={len(self.results)}, errors={self.errors}, "
                f"lm_calls={self.usage.calls}, cache_hits={self.usage.cache_hits})")


# -- the rule ---------------------------------------------------------------------------------------

def is_counted_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised while running one example, fails only that example (scored 0 and
    counted). Anything else stops the run: no other example would fare better."""
    if isinstance(exc, (ParseError, ToolError, RetrievalError, ContextWindowError, RateLimitError, LMTimeoutError,
                        TruncatedError)):
        return True
    if isinstance(exc, AuthenticationError) or not isinstance(exc, LMError):
        return False
    status = exc.status_code
    return isinstance(status, int) and (status >= 500 or status in (408, 409, 429))


def stop_error(exc: BaseException, stage: str, index: int | None, example: Example,
               prediction: Prediction | None = None, metric: Metric | None = None) -> BaseException:
    """The error that stops a run, saying what to fix; the caller raises it ``from exc``."""
    where = "on the first example" if index in (None, 0) else f"at example {index}"
    cause = describe(exc)
    if isinstance(exc, MissingDependencyError):
        return exc
    if isinstance(exc, AuthenticationError):
        return ConfigurationError(
            f"stopped {where}: {exc.model or 'the model'} refused the credentials ({cause}). Set the "
            "provider's API key (for example OPENAI_API_KEY) or pass api_key= to lmbridge.LM")
    if isinstance(exc, LMError):
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        return ConfigurationError(
            f"stopped {where}: the call to {exc.model or 'the model'} failed{status} in a way retrying "
            f"cannot fix: {cause}. Check the model name and its provider prefix (for example "
            "'openai/gpt-4o-mini' or 'local/smollm2'), api_base, and that the model is installed")
    if isinstance(exc, ConfigurationError):
        return ConfigurationError(f"stopped {where}: {exc}")
    if stage == "inputs" or isinstance(exc, InputError):
        return EvaluationError(
            f"stopped {where}: the example does not fit the program ({cause}). Its fields are "
            f"{sorted(example.keys())}, marked as inputs: {list(example.input_keys or [])}; build it with "
            "Example(...).with_inputs(...) naming the program's input fields")
    if stage == "metric":
        name = getattr(metric, "__name__", type(metric).__name__)
        if isinstance(exc, (KeyError, AttributeError)):
            fields = sorted(prediction.keys()) if isinstance(prediction, Prediction) else []
            return EvaluationError(
                f"stopped {where}: the metric {name} raised {cause}: it reads a field that the example "
                f"(fields {sorted(example.keys())}) or the prediction (fields {fields}) lacks")
        return EvaluationError(f"stopped {where}: the metric {name} raised {cause}. Fix the metric: only "
                               "parse, tool and transient LM failures count as failed examples")
    kind = "" if isinstance(exc, BridgeError) else " (not an lmbridge error)"
    return EvaluationError(f"stopped {where}: the program raised {cause}{kind}. Only parse, tool and "
                           "transient LM failures count as failed examples; fix the program")


def read_score(value: Any) -> tuple[float, str | None]:
    """A metric's result as (score, feedback). Raises TypeError for anything that is not a finite
    number: a NaN score is an error, never a NaN average."""
    feedback: Any = None
    if isinstance(value, Mapping) and "score" in value:
        value, feedback = value["score"], value.get("feedback")
    elif not isinstance(value, (int, float, bool)) and hasattr(value, "score"):
        value, feedback = value.score, getattr(value, "feedback", None)
    if isinstance(value, bool):
        return float(value), _text(feedback)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value), _text(feedback)
    raise TypeError(f"the metric returned {value!r} ({type(value).__name__}); it must return a finite "
                    "number, a bool, or {'score': number, 'feedback': text}")


def _text(feedback: Any) -> str | None:
    return None if feedback is None else str(feedback)


# -- the runner ---------------------------------------------------------------------------------------

def run_one(program: Module, example: Example, metric: Metric, *, traced: bool = False,
            index: int | None = None) -> EvaluationRow:
    """Run and score one example: the one place an example runs, in Evaluate and in compile.

    A counted failure becomes a 0-score row; anything else raises (see the module docstring).
    Callbacks see it as an ``example`` run.
    """
    with start_run("example", "example", example) as run:
        row = _run_one(program, example, metric, traced=traced, index=index)
        run.end(RunScore(row.score, int(row.error is not None), row.error, row.prediction))
    return row


def _run_one(program: Module, example: Example, metric: Metric, *, traced: bool,
             index: int | None) -> EvaluationRow:
    try:
        inputs = example.inputs()
    except Exception as exc:
        raise stop_error(exc, "inputs", index, example) from exc
    try:
        with trace() as steps:
            prediction = program(**inputs)
    except Exception as exc:
        if is_counted_failure(exc):
            return EvaluationRow(example, None, 0.0, f"program: {describe(exc)}")
        raise stop_error(exc, "program", index, example) from exc
    named: list[tuple[str, dict[str, Any], Prediction]] = []
    if traced:
        names = {id(p): n for n, p in program.named_predictors()}
        named = [(names.get(id(p), "?"), dict(kwargs), pred) for p, kwargs, pred in steps]
    try:
        score, feedback = read_score(metric(example, prediction, steps if traced else None))
    except Exception as exc:
        if is_counted_failure(exc):  # an LM-judged metric whose judge failed on this example
            return EvaluationRow(example, prediction, 0.0, f"metric: {describe(exc)}", steps=named)
        raise stop_error(exc, "metric", index, example, prediction, metric) from exc
    return EvaluationRow(example, prediction, score, None, feedback, named)


def run_pairs(pairs: Sequence[tuple[Module, Example]], metric: Metric, *, threads: int = 1,
              traced: bool = False, on_row: Callable[[EvaluationRow], None] | None = None,
              trial: bool = True) -> list[EvaluationRow]:
    """``run_one`` for each (program, example) on ``threads`` worker threads; rows in input order.

    ``on_row`` sees each row as it finishes, on the calling thread. An error from a worker or from
    ``on_row`` cancels the examples not yet started and is re-raised here. With ``trial`` (the
    optimizers' use), callbacks see the batch as one ``trial`` run.
    """
    if not trial:
        return _run_pairs(pairs, metric, threads=threads, traced=traced, on_row=on_row)
    with start_run("trial", "trial", len(pairs), metadata={"threads": threads}) as run:
        rows = _run_pairs(pairs, metric, threads=threads, traced=traced, on_row=on_row)
        run.end(RunScore(mean_score(rows), sum(1 for r in rows if r.error is not None)))
    return rows


def _run_pairs(pairs: Sequence[tuple[Module, Example]], metric: Metric, *, threads: int,
               traced: bool, on_row: Callable[[EvaluationRow], None] | None) -> list[EvaluationRow]:
    rows: list[EvaluationRow | None] = [None] * len(pairs)

    def finish(i: int, row: EvaluationRow | None) -> None:
        rows[i] = row
        if on_row is not None and row is not None:
            on_row(row)

    if threads <= 1 or len(pairs) <= 1:
        for i, (program, example) in enumerate(pairs):
            finish(i, run_one(program, example, metric, traced=traced, index=i))
    else:
        _fan_out(pairs, metric, threads=threads, traced=traced, finish=finish)
    return [r for r in rows if r is not None]


def _fan_out(pairs: Sequence[tuple[Module, Example]], metric: Metric, *, threads: int, traced: bool,
             finish: Callable[[int, EvaluationRow | None], None]) -> None:
    """Run ``pairs`` on ``threads`` workers, the first example alone before the others: a
    configuration error (no LM, a refused key, an unknown model) then costs exactly one call,
    however many threads and however slow that call. The first error stops the examples not started."""
    stop = threading.Event()

    def task(i: int, program: Module, example: Example) -> EvaluationRow | None:
        if stop.is_set():
            return None
        try:
            return run_one(program, example, metric, traced=traced, index=i)
        except BaseException:
            stop.set()
            raise

    with context_executor(min(threads, len(pairs))) as pool:
        finish(0, pool.submit(task, 0, *pairs[0]).result())
        futures = {pool.submit(task, i, program, ex): i
                   for i, (program, ex) in enumerate(pairs) if i > 0}
        try:
            for future in as_completed(futures):
                finish(futures[future], future.result())
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise


def run_many(program: Module, examples: Sequence[Example], metric: Metric, *, threads: int = 1,
             traced: bool = False, on_row: Callable[[EvaluationRow], None] | None = None,
             trial: bool = True) -> list[EvaluationRow]:
    """``run_pairs`` with one program for every example."""
    return run_pairs([(program, ex) for ex in examples], metric, threads=threads, traced=traced, on_row=on_row,
                     trial=trial)


def mean_score(rows: Sequence[EvaluationRow]) -> float:
    """The mean score as a percentage (0-100); failed examples count as 0."""
    return 100.0 * sum(r.score for r in rows) / len(rows) if rows else 0.0


def check_examples(examples: Sequence[Any], what: str, *, minimum: int = 1) -> list[Example]:
    """The examples as a list, or a clear ValueError / TypeError when they cannot be used."""
    rows = list(examples)
    if len(rows) < minimum:
        raise ValueError(f"{what} has {len(rows)} examples; at least {minimum} are needed")
    for i, row in enumerate(rows):
        if not isinstance(row, Example):
            raise TypeError(f"{what}[{i}] is a {type(row).__name__}, not a lmbridge.Example")
        if row.input_keys is None:
            raise ValueError(f"{what}[{i}] has no input fields marked: build it with "
                             "Example(...).with_inputs('field', ...)")
    return rows


# -- Evaluate -----------------------------------------------------------------------------------------

class Evaluate:
    """``Evaluate(devset=..., metric=...)(program)`` returns an ``EvaluationResult``.

    ``max_errors``: stop with ``EvaluationError`` once more than this many examples have failed.
    ``display_table``: print a table of the results (True: every row; a number: that many rows).
    """

    def __init__(self, *, devset: Sequence[Example], metric: Metric, num_threads: int | None = None,
                 display_progress: bool = True, max_errors: int | None = None,
                 display_table: bool | int = False) -> None:
        self.display_table = display_table
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.max_errors = max_errors

    def __call__(self, program: Module, *, metric: Metric | None = None,
                 devset: Sequence[Example] | None = None) -> EvaluationResult:
        rows_in = check_examples(self.devset if devset is None else devset, "devset", minimum=0)
        score_fn = metric or self.metric
        if not callable(score_fn):
            raise TypeError(f"the metric must be callable, not {type(score_fn).__name__}")
        threads = self.num_threads or current().num_threads
        tally = {"score": 0.0, "errors": 0}
        start = time.perf_counter()

        def seen(row: EvaluationRow) -> None:
            tally["score"] += row.score
            tally["errors"] += row.error is not None
            progress.advance(1, _status(tally["score"], progress.done + 1, int(tally["errors"])))
            if self.max_errors is not None and tally["errors"] > self.max_errors:
                raise EvaluationError(
                    f"evaluation stopped: {int(tally['errors'])} examples failed, more than "
                    f"max_errors={self.max_errors}; last: {row.error}")

        scope = start_run("evaluate", type(program).__name__, len(rows_in), metadata={"threads": threads})
        with scope, track_usage() as tracker, Progress("Evaluate", len(rows_in), enabled=self.display_progress,
                                                       unit="ex") as progress:
            rows = run_many(program, rows_in, score_fn, threads=threads, on_row=seen, trial=False)
            result = EvaluationResult(score=mean_score(rows), results=rows, errors=int(tally["errors"]),
                                      usage=tracker.usage, elapsed=time.perf_counter() - start)
            scope.end(RunScore(result.score, result.errors, usage=result.usage))
        if self.display_table:
            print(render_table(rows, self.display_table))
        return result


def _status(total: float, done: int, errors: int) -> str:
    failed = f" failed {errors}" if errors else ""
    return f"score {100 * total / max(done, 1):5.1f}%{failed}"

