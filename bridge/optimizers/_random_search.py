"""BootstrapFewShotWithRandomSearch: several few-shot candidates, scored on the valset; best wins.

The candidates, as in DSPy: the zero-shot student (seed -3), labeled demos only (-2), a bootstrap
over the trainset in order (-1), then ``num_candidate_programs`` bootstraps over shuffled copies of
the trainset, each keeping a random number (1..max_bootstrapped_demos) of bootstrapped demos.
With ``checkpoint=path``, each scored candidate and each bootstrap attempt is written down, so a
restarted compile skips them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lmbridge.evaluate import Metric, check_examples, mean_score
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer, price_per_call
from lmbridge.optimizers._fewshot import (
    Bootstrapper,
    Store,
    _calls_per_run,
    assemble,
    labeled_demos,
    prepare_teacher,
)
from lmbridge.optimizers._support.checkpoint import fingerprint, open_checkpoint
from lmbridge.optimizers._support.state import ProgramState, demos_from_json, demos_to_json, snapshot
from lmbridge.programs import Module
from lmbridge.types import Example


def demo_candidates(run: CompileRun, student: Module, trainset: Sequence[Example], seeds: Sequence[int], *,
                    metric: Metric | None, metric_threshold: float | None, teacher: Module | None,
                    teacher_settings: Mapping[str, Any], max_bootstrapped: int, max_labeled: int,
                    max_rounds: int, labeled_sample: bool, base_seed: int,
                    store: Store) -> dict[int, ProgramState]:
    """Few-shot candidate states keyed by seed (-3 zero-shot, -2 labeled, -1 ordered bootstrap,
    >= 0 shuffled bootstraps). Each finished candidate is saved to ``store`` as it is made."""
    base = {name: s.with_demos([]) for name, s in snapshot(student).items()}
    teacher_program = prepare_teacher(student, teacher, trainset, max_labeled, base_seed)
    out: dict[int, ProgramState] = {}
    for seed in seeds:
        saved = store.get(f"demos:{seed}")
        if saved is not None:
            out[seed] = {name: base[name].with_demos(demos_from_json(rows)) for name, rows in saved.items()}
            continue
        rng = random.Random(base_seed + seed)
        if seed == -3:
            state = base
        elif seed == -2:
            pick = rng if labeled_sample else None
            state = {name: s.with_demos(labeled_demos(s, trainset, max_labeled, pick))
                     for name, s in base.items()}
        else:
            order = list(range(len(trainset)))
            size = max_bootstrapped
            if seed >= 0:
                rng.shuffle(order)
                size = rng.randint(1, max(1, max_bootstrapped))
            boot = Bootstrapper(run, metric, metric_threshold=metric_threshold,
                                teacher_settings=teacher_settings, store=store, key=f"boot{seed}")
            shuffled = [trainset[i] for i in order]
            found, used_positions = boot.collect(teacher_program, shuffled, size, max_rounds)
            used = {order[p] for p in used_positions}
            rest = [e for i, e in enumerate(trainset) if i not in used]
            state = assemble(base, found, rest, size, max_labeled, rng)
        store.put(f"demos:{seed}", {name: demos_to_json(s.demos) for name, s in state.items()})
        out[seed] = state
    return out


class BootstrapFewShotWithRandomSearch(Optimizer):
    """Random search over few-shot candidates; the best valset score wins."""

    def __init__(self, metric: Metric, teacher_settings: Mapping[str, Any] | None = None,
                 max_bootstrapped_demos: int = 4, max_labeled_demos: int = 16, max_rounds: int = 1,
                 num_candidate_programs: int = 16, num_threads: int | None = None,
                 max_errors: int | None = None, stop_at_score: float | None = None,
                 metric_threshold: float | None = None, *, seed: int = 0,
                 max_lm_calls: int | None = None, max_cost: float | None = None,
                 display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        self.metric = metric
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.num_candidate_programs = num_candidate_programs
        self.max_errors = max_errors
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold

    def _seeds(self, restrict: Sequence[int] | None) -> list[int]:
        seeds = list(range(-3, self.num_candidate_programs))
        return [s for s in seeds if restrict is None or s in restrict]

    def compile(self, student: Module, *, trainset: Sequence[Example],
                valset: Sequence[Example] | None = None, teacher: Module | None = None,
                restrict: Sequence[int] | None = None, labeled_sample: bool = True,
                checkpoint: str | Path | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        val = check_examples(valset, "valset") if valset is not None else rows
        seeds = self._seeds(restrict)
        fp = fingerprint(type(self).__name__, self.settings(), student, rows, val)
        store = open_checkpoint(checkpoint, fp)
        with CompileRun(self, student, rows, val, total=len(seeds), unit="candidates") as run:
            run.notes["resumed"] = store.resumed
            run.store = store
            for seed in seeds:
                if self._candidate(run, student, rows, val, seed, teacher, labeled_sample, store):
                    run.notes["stopped_at_score"] = self.stop_at_score
                    break
        return run.finish()

    def _candidate(self, run: CompileRun, student: Module, rows: list[Example], val: list[Example], seed: int,
                   teacher: Module | None, labeled_sample: bool, store: Store) -> bool:
        """Make, score and record one candidate; True when ``stop_at_score`` is reached."""
        state = demo_candidates(
            run, student, rows, [seed], metric=self.metric, metric_threshold=self.metric_threshold,
            teacher=teacher, teacher_settings=self.teacher_settings,
            max_bootstrapped=self.max_bootstrapped_demos, max_labeled=self.max_labeled_demos,
            max_rounds=self.max_rounds, labeled_sample=labeled_sample, base_seed=self.seed,
            store=store)[seed]
        saved = store.get(f"score:{seed}")
        if saved is not None:
            score = float(saved)
        else:
            outcomes = run.evaluate(run.candidate(state), val, self.metric)
            score = mean_score(outcomes)
            store.put(f"score:{seed}", score)
            run.check_errors(self.max_errors)
        if seed == -3:
            run.baseline_score = score
        run.record("candidate", score, len(val), seed=seed, demos={n: len(s.demos) for n, s in state.items()},
                   resumed=saved is not None)
        run.offer(state, score)
        run.step(f"candidate {seed}")
        return self.stop_at_score is not None and score >= self.stop_at_score

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        n_train = len(list(trainset))
        n_val = len(list(valset)) if valset is not None else n_train
        per_run = _calls_per_run(student)
        boot = (self.num_candidate_programs + 1) * n_train * self.max_rounds * per_run
        evals = (self.num_candidate_programs + 3) * n_val * per_run
        price = price_per_call(student, next(iter(trainset), None), self.max_bootstrapped_demos)
        total = boot + evals
        cost = None if price is None else price * total
        return Estimate(total, cost, {"bootstrap": boot, "evaluation": evals})
