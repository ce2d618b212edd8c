"""The contract every optimizer keeps, and the bookkeeping of one compile.

``optimizer.compile(student, *, trainset, valset=None) -> program`` returns a NEW program; the
student is never changed. The same seed, data and LM cache give the same program. Before any LM
call, ``optimizer.estimate(student, trainset=..., valset=...)`` projects the LM calls (and the
cost, where the model's price is known).

``max_lm_calls`` and ``max_cost`` are hard caps, checked before each LM call: when one is reached
the compile stops and returns the best program found so far, and its report says so. Every
compiled program carries ``program.report``, a JSON-able dict (see ``CompileRun.report``), which
``program.save`` writes with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from weakref import WeakKeyDictionary

from lmbridge.errors import EvaluationError
from lmbridge.evaluate import EvaluationRow, Metric, run_many
from lmbridge.lm import LM, price_per_token
from lmbridge.optimizers._support.budget import Budget, BudgetExhausted
from lmbridge.optimizers._support.selection import row_key, select, selection_key, state_key
from lmbridge.optimizers._support.state import ProgramState, build, describe_state, snapshot
from lmbridge.programs import Module, Predict
from lmbridge.settings import context, current
from lmbridge.tracing import NO_RUN, Progress, RunScope, RunScore, UsageTracker, start_run, track_usage
from lmbridge.types import Example


@dataclass
class Estimate:
    """What a compile is projected to spend, computed without calling any model."""

    lm_calls: int
    """Upper bound on LM calls, parse re-asks aside (each can add one call)."""
    cost: float | None = None
    """Projected US dollars, where the model's price is known; None otherwise."""
    breakdown: dict[str, int] = field(default_factory=dict)
    """Calls per phase (bootstrap, proposals, trials, full evaluations, ...)."""

    def __str__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.breakdown.items())
        cost = f", about ${self.cost:.4f}" if self.cost is not None else ""
        return f"at most {self.lm_calls} LM calls{cost} ({parts})"

    def to_dict(self) -> dict[str, Any]:
        return {"lm_calls": self.lm_calls, "cost": self.cost, "breakdown": dict(self.breakdown)}


class CompileRun:
    """The bookkeeping of one compile: budget, usage, trials, best program so far, progress.

    Use it as a context manager around the search; a ``BudgetExhausted`` raised inside ends the
    block quietly and is recorded as the reason the compile stopped.
    """

    def __init__(self, optimizer: Optimizer, student: Module, trainset: Sequence[Example],
                 valset: Sequence[Example] | None, total: int, unit: str = "trials") -> None:
        self.optimizer = optimizer
        self.student = student
        self.trainset = list(trainset)
        self.valset = list(valset) if valset is not None else None
        self.budget = Budget(optimizer.max_lm_calls, optimizer.max_cost)
        self.unit, self.planned = unit, total
        self.progress = Progress(f"{type(optimizer).__name__} {unit}", total,
                                 enabled=optimizer.display_progress, unit=unit)
        self.trials: list[dict[str, Any]] = []
        self.best_state: ProgramState = snapshot(student)
        self.best_score: float | None = None
        self.baseline_score: float | None = None
        self.examples_run = 0
        self.failures = 0
        self.errors: list[str] = []
        self.notes: dict[str, Any] = {}
        self.stopped: str | None = None
        self.store: Any = None
        self._state_keys: WeakKeyDictionary[Module, str] = WeakKeyDictionary()
        self._states: dict[str, ProgramState] = {}
        self._scores: dict[tuple[str, str], float] = {}
        """The compile's checkpoint (``get``/``put``), when it has one: selection keeps its scores there."""
        self.done = 0
        self._stack = ExitStack()
        self._tracker: UsageTracker | None = None
        self._scope: RunScope = NO_RUN
        self._start = 0.0

    # -- the block ---------------------------------------------------------------------------------
    def __enter__(self) -> CompileRun:
        self._start = time.perf_counter()
        self._scope = self._stack.enter_context(start_run(
            "compile", type(self.optimizer).__name__, self.optimizer.settings(),
            metadata={"trainset": len(self.trainset), "valset": None if self.valset is None else len(self.valset)}))
        self._tracker = self._stack.enter_context(track_usage())
        lm = current().lm
        if lm is not None:
            self._stack.enter_context(context(lm=self.budget.wrap(lm)))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None:
            self._select()
        self._stack.close()
        self.progress.close()
        self.elapsed = time.perf_counter() - self._start
        if isinstance(exc, BudgetExhausted):
            self.stopped = exc.reason
        if exc is not None and not isinstance(exc, BudgetExhausted):
            self._scope.error(exc)
        else:
            usage = self._tracker.usage if self._tracker is not None else None
            self._scope.end(RunScore(self.best_score, self.failures, usage=usage))
        return isinstance(exc, BudgetExhausted)

    def _select(self) -> None:
        """Never worse than the student: keep the winner only if it beats the student on the valset
        beyond noise (``lmbridge.optimizers.selection``). Needs the optimizer's metric and a valset."""
        metric = getattr(self.optimizer, "metric", None)
        if not self.optimizer.select or metric is None:
            return
        try:
            select(self, metric)
        except BudgetExhausted as exc:
            self.stopped = exc.reason
            self.notes["selection"] = {"kept": "winner", "reason": f"not compared: {exc.reason}"}

    # -- candidates and evaluation -------------------------------------------------------------
    def candidate(self, state: ProgramState) -> Module:
        """A program for ``state`` whose LMs are metered against this compile's budget."""
        program = build(self.student, state)
        key = state_key(state)
        self._state_keys[program] = key
        self._states.setdefault(key, state)
        return self.guard(program)

    def remember(self, state: ProgramState) -> None:
        """Count ``state`` among this compile's candidates (one another worker of a shared study built)."""
        self._states.setdefault(state_key(state), state)

    def scored_states(self, examples: Sequence[Example]) -> list[ProgramState]:
        """The candidates this compile scored on every one of ``examples`` (in this process, or kept in
        its checkpoint), in the order first met."""
        found = []
        for key, state in self._states.items():
            saved = self.store.get(selection_key(key, examples)) if self.store is not None else None
            if isinstance(saved, list) or self.row_scores(state, examples) is not None:
                found.append(state)
        return found

    def row_scores(self, state: ProgramState, examples: Sequence[Example]) -> list[float] | None:
        """The scores ``state`` got on ``examples`` during this compile, if it ran on all of them."""
        key = state_key(state)
        found = [self._scores.get((key, row_key(e))) for e in examples]
        return None if any(f is None for f in found) else [float(f) for f in found if f is not None]

    def guard(self, program: Module) -> Module:
        """Meter the LMs that ``program``'s predictors hold themselves (in place)."""
        for p in program.predictors():
            if p.lm is not None:
                p.lm = self.budget.wrap(p.lm)
        return program

    def evaluate(self, program: Module, examples: Sequence[Example], metric: Metric, *,
                 traced: bool = False) -> list[EvaluationRow]:
        outcomes = run_many(program, examples, metric, threads=self.optimizer.threads(), traced=traced)
        self.count(outcomes)
        key = self._state_keys.get(program)
        if key is not None:
            for example, outcome in zip(examples, outcomes):
                self._scores[(key, row_key(example))] = outcome.score
            if self.store is not None and self.valset is not None and len(examples) == len(self.valset) \
                    and all(a is b for a, b in zip(examples, self.valset)):
                # a whole-valset score, kept in the checkpoint: a resumed compile's never-worse check
                # reads it instead of running the rows again
                self.store.put(selection_key(key, examples), [o.score for o in outcomes])
        return outcomes

    def count(self, outcomes: Sequence[EvaluationRow]) -> None:
        for o in outcomes:
            self.examples_run += 1
            if o.error is not None:
                self.failures += 1
                if len(self.errors) < 5 and o.error not in self.errors:
                    self.errors.append(o.error)

    def check_errors(self, max_errors: int | None) -> None:
        """Stop the compile with EvaluationError once more than ``max_errors`` examples have failed."""
        if max_errors is not None and self.failures > max_errors:
            raise EvaluationError(f"{type(self.optimizer).__name__} stopped: {self.failures} examples failed, "
                                  f"more than max_errors={max_errors}; first errors: {self.errors}")

    def record(self, kind: str, score: float | None, n: int, **details: Any) -> dict[str, Any]:
        """Add one trial to the report."""
        entry: dict[str, Any] = {"trial": len(self.trials), "kind": kind,
                                 "score": None if score is None else round(score, 4), "n": n, **details}
        self.trials.append(entry)
        return entry

    def offer(self, state: ProgramState, score: float) -> bool:
        """Keep ``state`` if it beats the best so far (ties keep the earlier one)."""
        if self.best_score is None or score > self.best_score:
            self.best_state, self.best_score = state, score
            return True
        return False

    def step(self, note: str = "") -> None:
        self.done += 1
        best = "best -" if self.best_score is None else f"best {self.best_score:.1f}%"
        extra = f" | {note}" if note else ""
        self.progress.advance(max(0, self.done - self.progress.done), f"{best} | {self.budget.calls} LM calls{extra}")

    # -- the result ----------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        usage = self._tracker.usage if self._tracker is not None else None
        report: dict[str, Any] = {
            "optimizer": type(self.optimizer).__name__,
            "settings": self.optimizer.settings(),
            "trainset_size": len(self.trainset),
            "valset_size": None if self.valset is None else len(self.valset),
            "baseline_score": _round(self.baseline_score),
            "best_score": _round(self.best_score),
            "trials": self.trials,
            "best": describe_state(self.best_state),
            "lm_calls": usage.calls if usage else 0,
            "cache_hits": usage.cache_hits if usage else 0,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "tokens": usage.total_tokens if usage else 0,
            "cost": usage.cost if usage else None,
            "parse_retries": usage.parse_retries if usage else 0,
            "examples_run": self.examples_run,
            "failures": self.failures,
            "errors": list(self.errors),
            "wall_time": round(getattr(self, "elapsed", time.perf_counter() - self._start), 3),
            "stopped_early": self.stopped,
            "progress": {"unit": self.unit, "done": self.done, "planned": self.planned},
        }
        report.update(self.notes)
        report["lm_calls_per_point"] = _calls_per_point(report["lm_calls"], self.notes.get("selection"))
        return report

    def finish(self) -> Module:
        """The best program found, as a new copy of the student, with its report attached."""
        if self.examples_run and self.failures == self.examples_run and self.stopped is None:
            raise EvaluationError(
                f"{type(self.optimizer).__name__}: every one of the {self.examples_run} examples run during "
                f"the compile failed, so there is nothing to learn from. First errors: {self.errors}")
        program = build(self.student, self.best_state)
        program.report = self.report()
        return program


def _calls_per_point(calls: int, selection: Any) -> float | None:
    """The compile's LM calls per valset point the kept program gained over the student; None when
    it gained none (the student kept, or no comparison was made)."""
    if not isinstance(selection, dict) or selection.get("kept") != "winner":
        return None
    gained = selection.get("difference")
    return round(calls / gained, 1) if isinstance(gained, (int, float)) and gained > 0 else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Optimizer:
    """Base class of the optimizers. Subclasses implement ``compile`` and ``estimate``.

    ``select`` (default True): with a metric and a valset, the compiled program is compared with
    the student on the valset and the student is returned unchanged unless the winner is better
    beyond noise (see ``lmbridge.optimizers.selection``; the report's ``"selection"`` says why).
    """

    select: bool = True

    def __init__(self, *, seed: int = 0, num_threads: int | None = None, max_lm_calls: int | None = None,
                 max_cost: float | None = None, display_progress: bool = True) -> None:
        self.seed = seed
        self.num_threads = num_threads
        self.max_lm_calls = max_lm_calls
        self.max_cost = max_cost
        self.display_progress = display_progress

    def compile(self, student: Module, *, trainset: Sequence[Example],
                valset: Sequence[Example] | None = None) -> Module:
        raise NotImplementedError

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        raise NotImplementedError

    def threads(self) -> int:
        return self.num_threads or current().num_threads

    def settings(self) -> dict[str, Any]:
        """The optimizer's arguments, JSON-able, for the report and the checkpoint fingerprint."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key.startswith("_") or key in ("display_progress", "num_threads"):
                continue
            if value is None or isinstance(value, (bool, int, float, str)):
                out[key] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
                out[key] = list(value)
            elif callable(value):
                out[key] = getattr(value, "__name__", type(value).__name__)
            else:
                out[key] = repr(value)
        return out


def with_selection(optimizer: Optimizer, student: Module, valset: Sequence[Example] | None, estimate: Estimate,
                   price: float | None = None) -> Estimate:
    """``estimate`` plus the calls of the never-worse check (``CompileRun``'s selection), which
    scores the student and the winner on the valset when the optimizer has a metric: at most two
    runs of the program per valset row."""
    rows = list(valset or [])
    if not optimizer.select or getattr(optimizer, "metric", None) is None or not rows:
        return estimate
    per_run = max(1, len([p for p in student.predictors() if isinstance(p, Predict)]))
    calls = 2 * len(rows) * per_run
    cost = None if estimate.cost is None or price is None else estimate.cost + price * calls
    return Estimate(estimate.lm_calls + calls, cost, {**estimate.breakdown, "selection": calls})


def price_per_call(student: Module, example: Example | None, demos: int = 0) -> float | None:
    """Projected US dollars per LM call for ``student``'s LM, where LiteLLM knows the price: the
    zero-shot prompt of ``example`` grown by ``demos`` demonstrations, and 64 completion tokens."""
    lms: dict[int, Any] = {id(p.lm): p.lm for p in student.predictors() if p.lm is not None}
    default = current().lm
    if not lms and default is not None:
        lms = {id(default): default}
    if not lms or example is None:
        return None
    prompt_chars = sum(len(m["content"]) for p in student.predictors() for m in _messages(p, example))
    prompt_tokens = (1 + demos) * (prompt_chars // 4 // max(len(student.predictors()), 1) + 1)
    prices = []
    for lm in lms.values():
        if not isinstance(lm, LM):
            return None
        if lm.is_local:
            prices.append(0.0)
            continue
        price = price_per_token(lm.model)
        if price is None:
            return None
        prices.append(prompt_tokens * price[0] + 64 * price[1])
    return max(prices) if prices else None


def _messages(predictor: Any, example: Example) -> list[Any]:
    inputs = {n: example.get(n, "") for n in predictor.signature.input_fields}
    try:
        return list(predictor.messages(**inputs))
    except Exception:
        return []
