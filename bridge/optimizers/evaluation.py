"""Running candidate programs over examples during a compile.

Like ``bridge.Evaluate``, a failing example scores 0 and is counted, but this runner also keeps
what optimizers need: the trace of every predictor call (for bootstrapping demos), the metric's
textual feedback (for GEPA), and a hard stop for errors no prompt can fix (no LM configured,
credentials refused, inputs that do not fit the program), which abort the compile at once.

A metric must return a number or a bool, or a result carrying a ``score`` (a dict
``{"score": ..., "feedback": ...}`` or an object with those attributes). Anything else is a bug in
the metric and raises ``EvaluationError`` on the first example instead of scoring garbage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import Any

from bridge.callbacks import RunScore, start_run
from bridge.errors import (
    AuthenticationError,
    ConfigurationError,
    EvaluationError,
    InputError,
    MissingDependencyError,
    describe,
)
from bridge.module import Module
from bridge.settings import context_executor
from bridge.tracking import trace
from bridge.types import Example, Prediction

Metric = Callable[..., Any]
FATAL_ERRORS: tuple[type[BaseException], ...] = (ConfigurationError, AuthenticationError, InputError,
                                                 MissingDependencyError)
"""Errors that no instruction or demo can fix: they stop the compile instead of scoring 0."""


@dataclass
class Outcome:
    """One example run through one candidate program."""

    example: Example
    prediction: Prediction | None
    score: float
    """The metric's score (0.0 when the program or the metric failed)."""
    error: str | None = None
    """``"program: ..."`` or ``"metric: ..."`` when the example failed."""
    feedback: str | None = None
    """Textual feedback the metric returned with its score, if any."""
    steps: list[tuple[str, dict[str, Any], Prediction]] = field(default_factory=list)
    """The predictor calls made, as (predictor name, inputs, prediction); only when traced."""


def read_score(value: Any) -> tuple[float, str | None]:
    """A metric result as (score, feedback). Raises TypeError for anything that is not a score."""
    feedback: Any = None
    if isinstance(value, Mapping) and "score" in value:
        value, feedback = value["score"], value.get("feedback")
    elif not isinstance(value, (int, float, bool)) and hasattr(value, "score"):
        value, feedback = value.score, getattr(value, "feedback", None)
    if isinstance(value, bool):
        return float(value), _text(feedback)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value), _text(feedback)
    raise TypeError(f"the metric returned {value!r} ({type(value).__name__}); "
                    "it must return a number, a bool, or {'score': number, 'feedback': text}")


def _text(feedback: Any) -> str | None:
    return None if feedback is None else str(feedback)


def run_one(program: Module, example: Example, metric: Metric, *, traced: bool = False) -> Outcome:
    """Run and score one example. A failure becomes a 0 score; fatal errors are raised."""
    with start_run("example", "example", example) as run:
        outcome = _run_one(program, example, metric, traced=traced)
        run.end(RunScore(outcome.score, int(outcome.error is not None), outcome.error, outcome.prediction))
    return outcome


def _run_one(program: Module, example: Example, metric: Metric, *, traced: bool = False) -> Outcome:
    names = {id(p): n for n, p in program.named_predictors()}
    try:
        with trace() as steps:
            prediction = program(**example.inputs())
    except FATAL_ERRORS:
        raise
    except Exception as exc:
        return Outcome(example, None, 0.0, f"program: {describe(exc)}")
    named = [(names.get(id(p), "?"), dict(inputs), pred) for p, inputs, pred in steps] if traced else []
    try:
        raw = metric(example, prediction, steps if traced else None)
    except Exception as exc:
        return Outcome(example, prediction, 0.0, f"metric: {describe(exc)}", steps=named)
    try:
        score, feedback = read_score(raw)
    except TypeError as exc:
        raise EvaluationError(str(exc)) from None
    return Outcome(example, prediction, score, None, feedback, named)


def run_many(program: Module, examples: Sequence[Example], metric: Metric, *, threads: int = 1,
             traced: bool = False, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """``run_one`` over ``examples`` on ``threads`` worker threads; outcomes in input order.

    BudgetExhausted and fatal errors from any worker are re-raised here after the pool stops.
    """
    return run_pairs([(program, ex) for ex in examples], metric, threads=threads, traced=traced,
                     on_outcome=on_outcome)


def run_pairs(pairs: Sequence[tuple[Module, Example]], metric: Metric, *, threads: int = 1,
              traced: bool = False, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Like ``run_many``, with a program of its own for each example."""
    with start_run("trial", "trial", len(pairs), metadata={"threads": threads}) as run:
        done = _run_pairs(pairs, metric, threads=threads, traced=traced, on_outcome=on_outcome)
        run.end(RunScore(mean_score(done), sum(1 for o in done if o.error is not None)))
    return done


def _run_pairs(pairs: Sequence[tuple[Module, Example]], metric: Metric, *, threads: int = 1,
               traced: bool = False, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(pairs)
    if threads <= 1 or len(pairs) <= 1:
        for i, (program, example) in enumerate(pairs):
            outcome = outcomes[i] = run_one(program, example, metric, traced=traced)
            if on_outcome is not None:
                on_outcome(outcome)
    else:
        with context_executor(min(threads, len(pairs))) as pool:
            futures = {pool.submit(run_one, program, ex, metric, traced=traced): i
                       for i, (program, ex) in enumerate(pairs)}
            try:
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes[futures[future]] = outcome
                    if on_outcome is not None:
                        on_outcome(outcome)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return [o for o in outcomes if o is not None]


def mean_score(outcomes: Sequence[Outcome]) -> float:
    """The mean score as a percentage (0-100), as ``bridge.Evaluate`` reports it."""
    return 100.0 * sum(o.score for o in outcomes) / len(outcomes) if outcomes else 0.0


def check_examples(examples: Sequence[Any], what: str, *, minimum: int = 1) -> list[Example]:
    """The examples as a list, or a clear ValueError when they cannot be used."""
    rows = list(examples)
    if len(rows) < minimum:
        raise ValueError(f"{what} has {len(rows)} examples; at least {minimum} are needed")
    for i, row in enumerate(rows):
        if not isinstance(row, Example):
            raise TypeError(f"{what}[{i}] is a {type(row).__name__}, not a bridge.Example")
        if row.input_keys is None:
            raise ValueError(f"{what}[{i}] has no input fields marked: build it with "
                             "Example(...).with_inputs('field', ...)")
    return rows
