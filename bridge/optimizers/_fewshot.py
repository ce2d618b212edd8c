"""Few-shot optimizers: LabeledFewShot and BootstrapFewShot.

``LabeledFewShot(k)`` gives every predictor ``k`` training examples as demos; it calls no model.

``BootstrapFewShot(metric)`` runs a teacher program (the student, given labeled demos, unless you
pass one) over the training examples. Each run the metric accepts becomes a demo for every
predictor it went through, carrying that predictor's own inputs and outputs, so even the inner
steps of a pipeline get demonstrations. Up to ``max_bootstrapped_demos`` such demos are kept per
predictor, topped up with plain labeled examples to ``max_labeled_demos``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lmbridge.evaluate import EvaluationRow, Metric, check_examples, run_pairs
from lmbridge.formats import PromptFormat
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer, price_per_call, with_selection
from lmbridge.optimizers._support.checkpoint import Checkpoint, fingerprint, open_checkpoint
from lmbridge.optimizers._support.selection import stratified_sample
from lmbridge.optimizers._support.state import (
    PredictorState,
    ProgramState,
    demos_from_json,
    demos_to_json,
    snapshot,
)
from lmbridge.programs import Module, Predict, calibrating, with_priors
from lmbridge.settings import context
from lmbridge.types import Example

Store = Checkpoint


class LabeledFewShot(Optimizer):
    """Give each predictor ``k`` labeled training examples as demos (sampled with the seed).

    ``balanced=True`` draws the demos with the classes of the predictor's first output field in
    equal numbers; ``format`` sets the predictors' prompt format (e.g. ``TextFormat()``). With a
    ``metric`` and a valset, the result is kept only if it beats the student beyond noise. It calls
    no model, except to estimate the prior of a calibrated format (``scoring="calibrated"``) from up
    to 128 of the trainset's inputs (see ``lmbridge.calibrate``).
    """

    def __init__(self, k: int = 16, *, seed: int = 0, display_progress: bool = True, balanced: bool = False,
                 format: PromptFormat | None = None, metric: Metric | None = None) -> None:
        super().__init__(seed=seed, display_progress=display_progress)
        if k < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        self.k = k
        self.balanced = balanced
        self.format = format
        self.metric = metric

    def compile(self, student: Module, *, trainset: Sequence[Example],
                valset: Sequence[Example] | None = None, sample: bool = True) -> Module:
        rows = check_examples(trainset, "trainset")
        with calibrating(rows, seed=self.seed) as pool:  # a calibrated format's prior: from the trainset's inputs
            with CompileRun(self, student, rows, valset, total=1, unit="steps") as run:
                rng = random.Random(self.seed)
                state = snapshot(student)
                run.best_state = {name: _formatted(s.with_demos(labeled_demos(
                    s, rows, self.k, rng if sample else None, balanced=self.balanced)), self.format)
                                  for name, s in state.items()}
                if self.k:
                    report_unfit(run, state, rows)
                run.step()
            return with_priors(run.finish(), pool)

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        rows = list(trainset)
        prior = min(128, len(rows)) * _calls_per_run(student) if _calibrated(self.format) else 0
        price = price_per_call(student, rows[0] if rows else None, self.k)
        estimate = Estimate(prior, None if price is None else price * prior, {"prior": prior} if prior else {})
        return with_selection(self, student, valset, estimate, price)


def report_unfit(run: CompileRun, state: ProgramState, rows: Sequence[Example]) -> None:
    """Say which predictors no training row can serve as a demo for: an error when none can (the
    trainset's fields match no predictor), else a warning in the report (``"unfit"``) and a
    ``UserWarning``, never 0 demos in silence."""
    unfit = {name: s for name, s in state.items() if rows and not any(fits(s, e) for e in rows)}
    if not unfit:
        return
    keys = sorted({k for e in rows for k in e})
    why = {name: f"no trainset row has all of its inputs {list(s.signature.input_fields)} and one of its outputs "
                 f"{list(s.signature.output_fields)} (the rows have {keys})" for name, s in unfit.items()}
    if len(unfit) == len(state):
        raise ValueError(f"{type(run.optimizer).__name__}: the trainset's fields match no predictor, so there is no "
                         f"demo to give: {'; '.join(f'{n}: {w}' for n, w in why.items())}. Rename the fields of the "
                         "rows (or of the signature) so that they match")
    run.notes["unfit"] = why
    import warnings

    warnings.warn(f"{type(run.optimizer).__name__} gave no demos to {sorted(unfit)}: {next(iter(why.values()))}",
                  UserWarning, stacklevel=4)


def _calibrated(fmt: PromptFormat | None) -> bool:
    return getattr(fmt, "scoring", None) == "calibrated"


def fits(predictor: PredictorState, example: Example) -> bool:
    """Whether ``example`` can serve as a demo for this predictor: all its inputs, some output."""
    sig = predictor.signature
    return all(n in example for n in sig.input_fields) and any(n in example for n in sig.output_fields)


def labeled_demos(predictor: PredictorState, pool: Sequence[Example], k: int,
                  rng: random.Random | None, *, balanced: bool = False) -> list[Example]:
    usable = [e for e in pool if fits(predictor, e)]
    if balanced and predictor.signature.output_fields:
        label = next(iter(predictor.signature.output_fields))
        return stratified_sample(usable, label, k, rng or random.Random(0), balanced=True)
    if rng is not None:
        return rng.sample(usable, min(k, len(usable)))
    return usable[:k]


class Bootstrapper:
    """Runs a teacher over training examples and keeps the traces the metric accepts."""

    def __init__(self, run: CompileRun, metric: Metric | None, *, metric_threshold: float | None,
                 teacher_settings: Mapping[str, Any] | None, store: Store, key: str) -> None:
        self.run = run
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.store = store
        self.key = key

    def _accept(self, outcome: EvaluationRow) -> bool:
        if outcome.error is not None:
            return False
        if self.metric is None:
            return True
        if self.metric_threshold is not None:
            return outcome.score >= self.metric_threshold
        return outcome.score > 0

    def _metric(self, example: Example, prediction: Any, trace: Any = None) -> Any:
        return 1.0 if self.metric is None else self.metric(example, prediction, trace)

    def collect(self, teacher: Module, examples: Sequence[Example], max_demos: int, max_rounds: int,
                on_progress: Callable[[dict[str, list[Example]], set[int], int], None] | None = None,
                ) -> tuple[dict[str, list[Example]], set[int]]:
        """Demos per predictor name from up to ``max_demos`` accepted runs, and the indices used."""
        names = [n for n, _ in teacher.named_predictors()]
        found: dict[str, list[Example]] = {n: [] for n in names}
        used: set[int] = set()
        threads = self.run.optimizer.threads()
        attempted = 0
        for round_ in range(max_rounds):
            todo = [i for i in range(len(examples)) if i not in used]
            while todo and len(used) < max_demos:
                size = max(1, min(threads, max_demos - len(used)))
                chunk, todo = todo[:size], todo[size:]
                attempted += len(chunk)
                for i, demos in zip(chunk, self._attempt(teacher, examples, chunk, round_)):
                    if demos is None or len(used) >= max_demos:
                        continue
                    used.add(i)
                    for name, demo in demos:
                        found.setdefault(name, []).append(demo)
                if on_progress is not None:
                    on_progress(found, used, attempted)
            if len(used) >= max_demos:
                break
        return found, used

    def _attempt(self, teacher: Module, examples: Sequence[Example], chunk: Sequence[int],
                 round_: int) -> list[list[tuple[str, Example]] | None]:
        """Per index, the demos its accepted trace gives, or None; read from the checkpoint first."""
        results: dict[int, list[tuple[str, Example]] | None] = {}
        pending = []
        for i in chunk:
            saved = self.store.get(f"{self.key}:r{round_}:{i}")
            if saved is not None:
                results[i] = None if not saved["ok"] else [
                    (name, demos_from_json([row])[0]) for name, row in saved["demos"]]
            else:
                pending.append(i)
        if pending:
            pairs = [(self._teacher_for(teacher, examples[i], round_), examples[i]) for i in pending]
            with context(**self.teacher_settings):
                outcomes = run_pairs(pairs, self._metric, threads=self.run.optimizer.threads(), traced=True)
            self.run.count(outcomes)
            for i, outcome in zip(pending, outcomes):
                demos = [(name, _demo(inputs, prediction)) for name, inputs, prediction in outcome.steps] \
                    if self._accept(outcome) else None
                results[i] = demos
                self.store.put(f"{self.key}:r{round_}:{i}", {
                    "ok": demos is not None,
                    "demos": [(name, demos_to_json([d])[0]) for name, d in (demos or [])]})
        return [results[i] for i in chunk]

    def _teacher_for(self, teacher: Module, example: Example, round_: int) -> Module:
        program = teacher.deepcopy()
        for p in program.predictors():
            p.demos = [d for d in p.demos if d != example]
            if round_ > 0:
                p.lm_params = {**p.lm_params, "temperature": 1.0, "rollout_id": f"bootstrap-{round_}"}
        return self.run.guard(program)


def _demo(inputs: Mapping[str, Any], prediction: Any) -> Example:
    return Example({**inputs, **dict(prediction)}).with_inputs(*inputs)


def _formatted(state: PredictorState, fmt: PromptFormat | None) -> PredictorState:
    return state if fmt is None else state.with_format(fmt)


def assemble(base: ProgramState, found: Mapping[str, Sequence[Example]], rest: Sequence[Example],
             max_bootstrapped: int, max_labeled: int, rng: random.Random, *,
             balanced: bool = False) -> ProgramState:
    """Bootstrapped demos first, then labeled examples from ``rest`` up to ``max_labeled`` in all."""
    state: ProgramState = {}
    for name, s in base.items():
        boot = list(found.get(name, []))[:max_bootstrapped]
        extra = labeled_demos(s, rest, max(0, max_labeled - len(boot)), rng, balanced=balanced)
        state[name] = s.with_demos(boot + extra)
    return state


def prepare_teacher(student: Module, teacher: Module | None, trainset: Sequence[Example], max_labeled: int,
                    seed: int, *, balanced: bool = False, format: PromptFormat | None = None) -> Module:
    """The teacher: the one given, or the student; given labeled demos if it has none."""
    program = (teacher or student).deepcopy()
    if max_labeled and not any(p.demos for p in program.predictors()):
        rng = random.Random(seed)
        for p in program.predictors():
            p.demos = labeled_demos(PredictorState(p.signature), trainset, max_labeled, rng, balanced=balanced)
    if format is not None and teacher is None:
        for p in program.predictors():
            p.format = format
    return program


class BootstrapFewShot(Optimizer):
    """Demos made by running a teacher over the trainset and keeping what the metric accepts."""

    def __init__(self, metric: Metric | None = None, metric_threshold: float | None = None,
                 teacher_settings: Mapping[str, Any] | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 16, max_rounds: int = 1, max_errors: int | None = None, *,
                 seed: int = 0, num_threads: int | None = None, max_lm_calls: int | None = None,
                 max_cost: float | None = None, display_progress: bool = True, balanced: bool = False,
                 format: PromptFormat | None = None) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.balanced = balanced
        self.format = format

    def compile(self, student: Module, *, trainset: Sequence[Example],
                valset: Sequence[Example] | None = None, teacher: Module | None = None,
                checkpoint: str | Path | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        fp = fingerprint("BootstrapFewShot", self.settings(), student, rows, None)
        store = open_checkpoint(checkpoint, fp)
        total = len(rows) * self.max_rounds
        with calibrating(rows, seed=self.seed) as pool:
            with CompileRun(self, student, rows, valset, total=total, unit="examples") as run:
                run.notes["resumed"] = store.resumed
                run.store = store
                self._run(run, student, rows, teacher, store)
            return with_priors(run.finish(), pool)

    def _run(self, run: CompileRun, student: Module, rows: list[Example], teacher: Module | None,
             store: Store) -> None:
        teacher_program = prepare_teacher(student, teacher, rows, self.max_labeled_demos, self.seed,
                                          balanced=self.balanced, format=self.format)
        boot = Bootstrapper(run, self.metric, metric_threshold=self.metric_threshold,
                            teacher_settings=self.teacher_settings, store=store, key="boot")
        base = snapshot(student)

        def progress(found: Mapping[str, Sequence[Example]], used: set[int], attempted: int) -> None:
            rest = [e for i, e in enumerate(rows) if i not in used]
            state = assemble(base, found, rest, self.max_bootstrapped_demos, self.max_labeled_demos,
                             random.Random(self.seed), balanced=self.balanced)
            run.best_state = {name: _formatted(s, self.format) for name, s in state.items()}
            run.done = attempted - 1
            run.step(f"{len(used)}/{self.max_bootstrapped_demos} demos")
            run.check_errors(self.max_errors)

        found, used = boot.collect(teacher_program, rows, self.max_bootstrapped_demos, self.max_rounds,
                                   progress)
        progress(found, used, run.done)
        run.notes["bootstrapped"] = {name: min(len(d), self.max_bootstrapped_demos)
                                     for name, d in found.items()}

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        rows = list(trainset)
        calls = len(rows) * self.max_rounds * _calls_per_run(student)
        prior = min(128, len(rows)) * _calls_per_run(student) if _calibrated(self.format) else 0
        price = price_per_call(student, rows[0] if rows else None, self.max_labeled_demos)
        phases = {"bootstrap": calls, **({"prior": prior} if prior else {})}
        estimate = Estimate(calls + prior, None if price is None else price * (calls + prior), phases)
        return with_selection(self, student, valset, estimate, price)


def _calls_per_run(program: Module) -> int:
    return max(1, len([p for p in program.predictors() if isinstance(p, Predict)]))
