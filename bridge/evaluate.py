"""Evaluate: run a program over a devset on worker threads and score it with a metric.

A failing example (the program raised, or the metric did) scores 0 and is counted in the result;
the run only stops when ``max_errors`` is given and passed. The progress line shows the running
score. Worker threads see the caller's settings.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import Any, TextIO

from bridge.callbacks import RunScore, start_run
from bridge.errors import EvaluationError, describe
from bridge.module import Module
from bridge.settings import context_executor, current
from bridge.tracking import track_usage
from bridge.types import Example, Prediction, Usage

Metric = Callable[..., Any]


@dataclass
class EvaluationRow:
    example: Example
    prediction: Prediction | None
    score: float
    error: str | None = None

    def __iter__(self) -> Any:  # unpacks as (example, prediction, score), as in DSPy
        return iter((self.example, self.prediction, self.score))


@dataclass
class EvaluationResult:
    score: float
    """Mean score over the devset, as a percentage (0-100)."""
    results: list[EvaluationRow]
    """One row per example, in devset order."""
    errors: int = 0
    """Examples that failed (program or metric raised); each scored 0."""
    usage: Usage = field(default_factory=Usage)
    elapsed: float = 0.0

    def __float__(self) -> float:
        return self.score

    def __repr__(self) -> str:
        return (f"EvaluationResult(score={self.score:.1f}, n={len(self.results)}, errors={self.errors}, "
                f"lm_calls={self.usage.calls}, cache_hits={self.usage.cache_hits})")


def to_score(value: Any, where: str = "metric") -> float:
    """A metric's return value as a float; bool counts as 0/1. Anything else is an error."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    score = getattr(value, "score", None)  # a (score, feedback) result object
    if isinstance(score, (int, float, bool)):
        return float(score)
    raise TypeError(f"{where} returned {value!r} ({type(value).__name__}); it must return a number or a bool")


class _Progress:
    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total, self.enabled, self.stream = total, enabled, stream
        self.done, self.sum, self.errors = 0, 0.0, 0
        self._last = 0.0

    def update(self, score: float, failed: bool) -> None:
        self.done += 1
        self.sum += score
        self.errors += failed
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            pct = 100 * self.sum / self.done
            bar = "#" * int(20 * self.done / max(self.total, 1))
            errs = f" errors={self.errors}" if self.errors else ""
            self.stream.write(f"\r[{bar:<20}] {self.done}/{self.total} score={pct:5.1f}%{errs}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


class Evaluate:
    """``Evaluate(devset=..., metric=...)(program)`` returns an ``EvaluationResult``."""

    def __init__(self, *, devset: Sequence[Example], metric: Metric, num_threads: int | None = None,
                 display_progress: bool = True, max_errors: int | None = None) -> None:
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.max_errors = max_errors

    def __call__(self, program: Module, *, metric: Metric | None = None,
                 devset: Sequence[Example] | None = None) -> EvaluationResult:
        rows_in = list(devset) if devset is not None else self.devset
        score_fn = metric or self.metric
        threads = self.num_threads or current().num_threads
        progress = _Progress(len(rows_in), self.display_progress, sys.stderr)
        rows: list[EvaluationRow | None] = [None] * len(rows_in)
        lock = threading.Lock()
        aborted: list[BaseException] = []
        start = time.perf_counter()

        def run(i: int, example: Example) -> None:
            if aborted:
                return
            row = evaluate_one(program, example, score_fn)
            with lock:
                rows[i] = row
                progress.update(row.score, row.error is not None)
                errors = sum(1 for r in rows if r is not None and r.error is not None)
                if self.max_errors is not None and errors > self.max_errors and not aborted:
                    aborted.append(EvaluationError(
                        f"evaluation stopped: {errors} examples failed, more than max_errors={self.max_errors}; "
                        f"last: {row.error}"))

        scope = start_run("evaluate", type(program).__name__, len(rows_in), metadata={"threads": threads})
        with scope, track_usage() as tracker:
            if threads <= 1:
                for i, ex in enumerate(rows_in):
                    run(i, ex)
                    if aborted:
                        break
            else:
                with context_executor(threads) as pool:
                    futures = [pool.submit(run, i, ex) for i, ex in enumerate(rows_in)]
                    for f in as_completed(futures):
                        f.result()
        if aborted:
            scope.error(aborted[0])
            raise aborted[0]
        done = [r for r in rows if r is not None]
        total = sum(r.score for r in done)
        result = EvaluationResult(
            score=100.0 * total / len(done) if done else 0.0,
            results=done,
            errors=sum(1 for r in done if r.error is not None),
            usage=tracker.usage,
            elapsed=time.perf_counter() - start,
        )
        scope.end(RunScore(result.score, result.errors, usage=result.usage))
        return result


def evaluate_one(program: Module, example: Example, metric: Metric, trace: Any = None) -> EvaluationRow:
    """Run one example and score it; a failure becomes a 0-score row carrying the error."""
    with start_run("example", "example", example) as run:
        row = _evaluate_one(program, example, metric, trace)
        run.end(RunScore(row.score, int(row.error is not None), row.error, row.prediction))
    return row


def _evaluate_one(program: Module, example: Example, metric: Metric, trace: Any = None) -> EvaluationRow:
    try:
        prediction = program(**example.inputs())
    except Exception as exc:
        return EvaluationRow(example, None, 0.0, f"program: {describe(exc)}")
    try:
        score = to_score(metric(example, prediction, trace))
    except Exception as exc:
        return EvaluationRow(example, prediction, 0.0, f"metric: {describe(exc)}")
    return EvaluationRow(example, prediction, score)
