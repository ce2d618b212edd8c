"""GEPA: reflective instruction evolution over a Pareto frontier of per-example scores.

The pool starts with the student, scored example by example on the valset. Each iteration:

1. Select a parent: with ``candidate_selection_strategy="pareto"``, a candidate that is best on at
   least one valset example, drawn in proportion to how many examples it is best on (so programs
   good at different things all survive); with ``"current_best"``, the best mean score.
2. Run the parent on a minibatch of ``reflection_minibatch_size`` training examples, tracing it.
3. Reflect: the reflection LM sees, for one predictor (round robin), its current instruction and the
   inputs, outputs and feedback of each minibatch example, and writes a new instruction. The
   feedback is what the metric returned with its score (a dict ``{"score": ..., "feedback":
   ...}`` or an object with those attributes); when the metric gives none, the expected outputs.
4. Score the child on the same minibatch; if it does better than the parent, score it on the whole
   valset and add it to the pool.

The budget is ``auto`` ("light", "medium", "heavy": 6, 12, 18 proposals), ``max_full_evals`` or
``max_metric_calls`` (examples run). The best mean valset score wins.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Sequence
from typing import Any, Literal

from lmbridge.errors import LMError, ParseError
from lmbridge.evaluate import EvaluationRow, Metric, check_examples
from lmbridge.lm import BaseLM
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._fewshot import _calls_per_run
from lmbridge.optimizers._support.proposer import clean_instruction
from lmbridge.optimizers._support.state import ProgramState, snapshot
from lmbridge.programs import Module, Predict
from lmbridge.signatures import InputField, OutputField, Signature
from lmbridge.types import Example

AUTO_RUN_SETTINGS = {"light": 6, "medium": 12, "heavy": 18}


class ReflectOnFeedback(Signature):
    """You improve the instruction of one step of a language-model program. Read the current
    instruction and the examples of what the step received, what it answered, and the feedback on
    the answer. Write a new instruction that fixes the mistakes and keeps what worked. Reply with
    the new instruction only."""

    current_instruction: str = InputField()
    examples_with_feedback: str = InputField()
    new_instruction: str = OutputField()


def gepa_metric(metric: Metric) -> Metric:
    """Call a GEPA-style metric ``(gold, pred, trace, pred_name, pred_trace)`` with three arguments."""
    try:
        params = [p for p in inspect.signature(metric).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return metric
    if len(params) < 5:
        return metric

    def wrapped(example: Any, prediction: Any, trace: Any = None) -> Any:
        return metric(example, prediction, trace, None, None)
    return wrapped


class GEPA(Optimizer):
    """Reflective instruction evolution with a Pareto frontier (see the module docstring)."""

    def __init__(self, metric: Metric, *, auto: Literal["light", "medium", "heavy"] | None = None,
                 max_full_evals: int | None = None, max_metric_calls: int | None = None,
                 reflection_minibatch_size: int = 3,
                 candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto",
                 reflection_lm: BaseLM | None = None, skip_perfect_score: bool = True,
                 num_threads: int | None = None, failure_score: float = 0.0, perfect_score: float = 1.0,
                 seed: int = 0, max_lm_calls: int | None = None, max_cost: float | None = None,
                 display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        given = [x is not None for x in (auto, max_full_evals, max_metric_calls)]
        if sum(given) != 1:
            raise ValueError("set exactly one budget: auto, max_full_evals or max_metric_calls")
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise ValueError(f"auto must be one of {sorted(AUTO_RUN_SETTINGS)}, not {auto!r}")
        self.metric = metric
        self.auto = auto
        self.max_full_evals = max_full_evals
        self.max_metric_calls = max_metric_calls
        self.reflection_minibatch_size = reflection_minibatch_size
        self.candidate_selection_strategy = candidate_selection_strategy
        self.reflection_lm = reflection_lm
        self.skip_perfect_score = skip_perfect_score
        self.failure_score = failure_score
        self.perfect_score = perfect_score

    def _metric_budget(self, n_val: int) -> int:
        if self.max_metric_calls is not None:
            return self.max_metric_calls
        if self.max_full_evals is not None:
            return self.max_full_evals * n_val
        proposals = AUTO_RUN_SETTINGS[str(self.auto)]
        # the baseline, each proposal's two minibatches, and about one accepted child in two
        return n_val + proposals * 2 * self.reflection_minibatch_size + math.ceil(proposals / 2) * n_val

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        n_val = len(list(valset if valset is not None else trainset))
        rollouts = self._metric_budget(n_val) * _calls_per_run(student)
        reflections = rollouts // max(1, 2 * self.reflection_minibatch_size)
        return Estimate(rollouts + reflections, None, {"rollouts": rollouts, "reflections": reflections})

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        val = check_examples(valset, "valset") if valset is not None else rows
        budget = self._metric_budget(len(val))
        with CompileRun(self, student, rows, val, total=budget, unit="rollouts") as run:
            _Evolution(self, run, student, rows, val, budget).evolve()
        return run.finish()


class _Evolution:
    def __init__(self, opt: GEPA, run: CompileRun, student: Module, train: list[Example], val: list[Example],
                 budget: int) -> None:
        self.opt, self.run, self.train, self.val, self.budget = opt, run, train, val, budget
        self.metric = gepa_metric(opt.metric)
        self.rng = random.Random(opt.seed)
        self.pool: list[ProgramState] = []
        self.scores: list[list[float]] = []
        self.names = [n for n, _ in student.named_predictors()]
        own = next((p.lm for p in student.predictors() if p.lm is not None), None)
        self.reflection_lm = run.budget.wrap(opt.reflection_lm) or run.budget.wrap(own)
        self.used = 0
        self.start = snapshot(student)

    def _run(self, state: ProgramState, rows: Sequence[Example], traced: bool = False) -> list[EvaluationRow]:
        outcomes = self.run.evaluate(self.run.candidate(state), rows, self.metric, traced=traced)
        self.used += len(rows)
        self.run.done = min(self.used, self.budget) - 1
        self.run.step(f"{len(self.pool)} candidates")
        return outcomes

    def _add(self, state: ProgramState, outcomes: list[EvaluationRow], parent: int | None) -> None:
        self.pool.append(state)
        self.scores.append([o.score for o in outcomes])
        mean = 100.0 * sum(self.scores[-1]) / len(self.scores[-1])
        self.run.record("candidate", mean, len(outcomes), candidate=len(self.pool) - 1, parent=parent)
        self.run.offer(state, mean)

    def evolve(self) -> None:
        self._add(self.start, self._run(self.start, self.val), None)
        self.run.baseline_score = self.run.best_score
        iteration = 0
        size = min(self.opt.reflection_minibatch_size, len(self.train))
        # A proposal starts only when the budget can pay for all of it: both minibatches and, should
        # the child win, its valset evaluation. A winner with no budget left to score it is wasted.
        while self.used + 2 * size + len(self.val) <= self.budget:
            parent = self._select()
            batch = self.rng.sample(self.train, size)
            before = self._run(self.pool[parent], batch, traced=True)
            name = self.names[iteration % len(self.names)]
            iteration += 1
            if self.opt.skip_perfect_score and all(o.score >= self.opt.perfect_score for o in before):
                continue
            text = self._reflect(self.pool[parent], name, before, iteration)
            if text is None or text == self.pool[parent][name].signature.instructions:
                continue
            child = {**self.pool[parent], name: self.pool[parent][name].with_instructions(text)}
            after = self._run(child, batch)
            self.run.record("minibatch", 100.0 * sum(o.score for o in after) / len(after), len(after),
                            parent=parent, predictor=name, before=sum(o.score for o in before),
                            instruction=text[:200])
            if sum(o.score for o in after) > sum(o.score for o in before):
                self._add(child, self._run(child, self.val), parent)

    def _select(self) -> int:
        if self.opt.candidate_selection_strategy == "current_best" or len(self.pool) == 1:
            return max(range(len(self.pool)), key=lambda i: (sum(self.scores[i]), -i))
        wins = [0] * len(self.pool)
        for j in range(len(self.val)):
            best = max(s[j] for s in self.scores)
            for i, s in enumerate(self.scores):
                if s[j] == best:
                    wins[i] += 1
        return self.rng.choices(range(len(self.pool)), weights=[w or 0.0 for w in wins])[0] \
            if any(wins) else 0

    def _reflect(self, state: ProgramState, name: str, outcomes: list[EvaluationRow], iteration: int) -> str | None:
        blocks = []
        for i, o in enumerate(outcomes, 1):
            steps = [(inputs, pred) for n, inputs, pred in o.steps if n == name]
            shown = steps[-1] if steps else (dict(o.example.inputs()), o.prediction)
            inputs, pred = shown
            feedback = o.feedback or o.error or self._expected(o)
            blocks.append(f"Example {i}\nInputs: {dict(inputs)}\nAnswer: {dict(pred) if pred else '(failed)'}\n"
                          f"Score: {o.score}\nFeedback: {feedback}")
        # A rollout_id per iteration: a reflection LM that samples (temperature > 0) writes a new
        # proposal each time, even when a minibatch repeats; the seed makes the whole run repeat.
        predict = Predict(ReflectOnFeedback, lm=self.reflection_lm, max_tokens=200,
                          rollout_id=f"gepa-{self.opt.seed}-{iteration}")
        try:
            result = predict(current_instruction=state[name].signature.instructions,
                             examples_with_feedback="\n\n".join(blocks))
        except (LMError, ParseError):
            return None
        return clean_instruction(str(result.new_instruction), prompt=ReflectOnFeedback.instructions)

    def _expected(self, outcome: EvaluationRow) -> str:
        labels = dict(outcome.example.labels())
        verdict = "correct" if outcome.score >= self.opt.perfect_score else "wrong"
        return f"The answer was {verdict}. Expected: {labels}"
