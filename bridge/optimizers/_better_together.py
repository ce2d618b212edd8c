"""BetterTogether: prompt optimization and fine-tuning, taking turns.

``strategy`` (default ``"p -> w -> p"``) lists the stages. Each stage compiles the program the stage
before returned: a ``p`` stage runs the prompt optimizer on it; a ``w`` stage runs the weight
optimizer (``BootstrapFinetune``) with it as both student and teacher, so the model learns the
improved program's own traces; the ``p`` after a ``w`` searches prompts for the fine-tuned model.

Every stage's program and the student are scored on the same valset rows. The best stage (the
earlier one on a tie) is kept only when it beats the student beyond noise: the paired selection
every optimizer ends with. The report lists each stage with its optimizer, valset score, LM calls
and wall time. Without a valset the last stage's program is returned, and the report says so.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmbridge.evaluate import Metric, check_examples
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._support.budget import BudgetExhausted, MeteredLM
from lmbridge.optimizers._support.state import snapshot
from lmbridge.optimizers._weights_selection import WeightsRun, compare, row_scores
from lmbridge.programs import Module
from lmbridge.types import Example

STAGES = {"p": "prompt", "w": "weights"}


def parse_strategy(strategy: str) -> list[str]:
    """``"p -> w -> p"`` -> ``["p", "w", "p"]``; anything but p and w stages joined by ``->`` is refused."""
    stages = [s.strip() for s in strategy.split("->")]
    if not stages or any(s not in STAGES for s in stages):
        raise ValueError(f"strategy must be stages 'p' (prompt optimization) and 'w' (fine-tuning) joined by "
                         f"'->', such as 'p -> w -> p', not {strategy!r}")
    return stages


class BetterTogether(Optimizer):
    """Prompt optimization, then fine-tuning on the improved program's traces, then prompt optimization
    on the fine-tuned model (see the module docstring). ``metric`` defaults to the prompt optimizer's
    (else the weight optimizer's); ``max_lm_calls`` and ``max_cost`` cap the whole run."""

    def __init__(self, prompt_optimizer: Optimizer, weight_optimizer: Optimizer, strategy: str = "p -> w -> p", *,
                 metric: Metric | None = None, seed: int = 0, max_lm_calls: int | None = None,
                 max_cost: float | None = None, display_progress: bool = True) -> None:
        super().__init__(seed=seed, max_lm_calls=max_lm_calls, max_cost=max_cost, display_progress=display_progress)
        self.strategy = " -> ".join(parse_strategy(strategy))
        self.prompt_optimizer = prompt_optimizer
        self.weight_optimizer = weight_optimizer
        self.metric = metric or getattr(prompt_optimizer, "metric", None) or getattr(weight_optimizer, "metric", None)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "prompt_optimizer": type(self.prompt_optimizer).__name__,
                "weight_optimizer": type(self.weight_optimizer).__name__}

    def compile(self, student: Module, *, trainset: Sequence[Example], valset: Sequence[Example] | None = None,
                checkpoint: str | Path | None = None) -> Module:
        """Run the stages; ``checkpoint`` (a file path) gives each stage whose optimizer resumes its own
        checkpoint file next to it (``<checkpoint>.<stage number>``)."""
        rows = check_examples(trainset, "trainset")
        val = list(valset) if valset is not None else None
        chosen = student
        with WeightsRun(self, student, rows, val, total=len(parse_strategy(self.strategy)), unit="stages") as run:
            stages = self._stages(run, student, rows, val, checkpoint)
            chosen = self._choose(run, student, stages, val)
        run.best_state = snapshot(chosen)
        result = run.finish()
        for (_, p), (_, source) in zip(result.named_predictors(), chosen.named_predictors()):
            p.lm = source.lm
        return result

    def _stages(self, run: CompileRun, student: Module, rows: list[Example], val: list[Example] | None,
                checkpoint: str | Path | None) -> list[tuple[dict[str, Any], Module]]:
        """Each stage's report entry and program, in order; stops early when the budget runs out."""
        current, done = student, []
        entries: list[dict[str, Any]] = []
        run.notes["stages"] = entries
        for i, kind in enumerate(parse_strategy(self.strategy)):
            optimizer = self._capped(self.prompt_optimizer if kind == "p" else self.weight_optimizer, run)
            options: dict[str, Any] = {"valset": val} if val is not None and _takes(optimizer, "valset") else {}
            if kind == "w" and _takes(optimizer, "teacher"):
                options["teacher"] = run.guard(current.deepcopy())  # learn the improved program's traces
            if checkpoint is not None and _takes(optimizer, "checkpoint"):
                options["checkpoint"] = f"{checkpoint}.{i}"
            start = time.perf_counter()
            compiled = _unmetered(optimizer.compile(run.guard(current.deepcopy()), trainset=rows, **options))
            inner = compiled.report or {}
            entry = {"stage": i, "kind": kind, "optimizer": type(optimizer).__name__, "score": None,
                     "lm_calls": inner.get("lm_calls"), "wall_time": round(time.perf_counter() - start, 3),
                     "stopped_early": inner.get("stopped_early"),
                     "kept": (inner.get("selection") or {}).get("kept"),
                     "training": (inner.get("finetune") or {}).get("training")}
            entries.append(entry)
            done.append((entry, compiled))
            current = compiled
            run.step(f"{kind} done")
            run.budget.calls += int(inner.get("lm_calls") or 0)  # the stage's calls count against this run's caps
            run.budget.cost += float(inner.get("cost") or 0.0)
            stop = self._spent(run)
            if stop is not None:
                run.stopped = stop
                break
        return done

    def _capped(self, optimizer: Optimizer, run: CompileRun) -> Optimizer:
        """A copy of ``optimizer`` whose caps are at most what is left of this run's (each compile
        meters its own calls, so the stages are capped one by one)."""
        inner = copy.copy(optimizer)
        if self.max_lm_calls is not None:
            left = max(0, self.max_lm_calls - run.budget.calls)
            inner.max_lm_calls = left if inner.max_lm_calls is None else min(left, inner.max_lm_calls)
        if self.max_cost is not None:
            money = max(0.0, self.max_cost - run.budget.cost)
            inner.max_cost = money if inner.max_cost is None else min(money, inner.max_cost)
        return inner

    def _spent(self, run: CompileRun) -> str | None:
        """Why the run must stop after a stage, when a cap is reached."""
        if self.max_lm_calls is not None and run.budget.calls >= self.max_lm_calls:
            return f"max_lm_calls={self.max_lm_calls} reached"
        if self.max_cost is not None and run.budget.cost >= self.max_cost:
            return f"max_cost=${self.max_cost:g} reached (spent ${run.budget.cost:.4f})"
        return None

    def _choose(self, run: CompileRun, student: Module, stages: list[tuple[dict[str, Any], Module]],
                val: list[Example] | None) -> Module:
        """The best stage on the valset, kept over the student only beyond noise."""
        if not stages:
            return student
        last = stages[-1][1]
        why = ("selection is off" if not self.select else "no metric" if self.metric is None
               else "no valset" if not val else run.stopped)
        if why or not val or self.metric is None:
            run.notes["selection"] = {"kept": "winner", "reason": f"not compared: {why}; the last stage is kept"}
            return last
        try:
            base = row_scores(run, student, val, self.metric)
            scored = [(row_scores(run, program, val, self.metric), entry, program) for entry, program in stages]
        except BudgetExhausted as exc:
            run.stopped = exc.reason
            run.notes["selection"] = {"kept": "winner", "reason": f"not compared: {exc.reason}; the last stage is kept"}
            return last
        run.notes["student_score"] = _percent(base)
        for scores, entry, _ in scored:
            entry["score"] = _percent(scores)
        best, entry, program = max(scored, key=lambda s: sum(s[0]))  # the first of equals: the earlier stage
        run.notes["chosen_stage"] = entry["stage"]
        if compare(run, self.metric, base, best, val):
            return program
        run.notes["chosen_stage"] = None
        return student

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        calls, breakdown = 0, {}
        for i, kind in enumerate(parse_strategy(self.strategy)):
            optimizer = self.prompt_optimizer if kind == "p" else self.weight_optimizer
            inner = optimizer.estimate(student, trainset=trainset, valset=valset)
            breakdown[f"stage {i} ({kind})"] = inner.lm_calls
            calls += inner.lm_calls
        stages = len(parse_strategy(self.strategy))
        evaluations = (stages + 1) * len(valset or []) * max(1, len(student.predictors())) if self.metric else 0
        if evaluations:
            breakdown["selection"] = evaluations
        return Estimate(calls + evaluations, None, breakdown)


def _percent(scores: Sequence[float]) -> float:
    return round(100.0 * sum(scores) / len(scores), 2)


def _takes(optimizer: Optimizer, name: str) -> bool:
    return name in inspect.signature(optimizer.compile).parameters


def _unmetered(program: Module) -> Module:
    """``program`` with each predictor's LM freed of the compile's metering (in place: a fresh copy)."""
    for p in program.predictors():
        while isinstance(p.lm, MeteredLM):
            p.lm = p.lm.inner
    return program
