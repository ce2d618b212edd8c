"""SIMBA: stochastic introspective mini-batch ascent.

Each step takes a minibatch of training examples and runs ``num_candidates`` trajectories per
example, each with a program drawn from the pool (better programs more often, by a softmax over
their scores at ``temperature_for_sampling``) and its own sampling seed. The examples whose
trajectories disagree most (the largest gap between best and worst score) are where a change can
help. For each of them a new candidate is made from the program of the best trajectory, by one of
two strategies:

* add a demo: the best trajectory's own inputs and outputs become a demo of each predictor it went
  through (at most ``max_demos``; the oldest is dropped);
* add a rule: the prompt model compares the best and the worst trajectory and writes one piece of
  advice, appended to the instructions of the predictors involved.

New candidates are scored on the same minibatch and join the pool. At the end the candidates with
the best minibatch means are scored on the valset (the trainset when none is given); the best wins.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from lmbridge.errors import LMError, ParseError
from lmbridge.evaluate import EvaluationRow, Metric, check_examples, mean_score, run_pairs
from lmbridge.lm import BaseLM
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._fewshot import _calls_per_run, _demo
from lmbridge.optimizers._support.budget import BudgetExhausted
from lmbridge.optimizers._support.proposer import clean_instruction
from lmbridge.optimizers._support.state import ProgramState, snapshot
from lmbridge.programs import Module, Predict
from lmbridge.signatures import InputField, OutputField, Signature
from lmbridge.types import Example


class WriteRule(Signature):
    """Two attempts at the same input by a language-model program are shown: one scored well, one
    badly. Write one short rule, in the imperative, that would make the program answer like the
    good attempt. Reply with the rule only."""

    good_attempt: str = InputField()
    bad_attempt: str = InputField()
    rule: str = OutputField()


class SIMBA(Optimizer):
    """Mini-batch ascent that adds demos and self-written rules where runs disagree."""

    def __init__(self, *, metric: Metric, bsize: int = 32, num_candidates: int = 6, max_steps: int = 8,
                 max_demos: int = 4, prompt_model: BaseLM | None = None, demo_input_field_maxlen: int = 100_000,
                 num_threads: int | None = None, temperature_for_sampling: float = 0.2,
                 temperature_for_candidates: float = 0.2, seed: int = 0, max_lm_calls: int | None = None,
                 max_cost: float | None = None, display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        self.metric = metric
        self.bsize = bsize
        self.num_candidates = num_candidates
        self.max_steps = max_steps
        self.max_demos = max_demos
        self.prompt_model = prompt_model
        self.demo_input_field_maxlen = demo_input_field_maxlen
        self.temperature_for_sampling = temperature_for_sampling
        self.temperature_for_candidates = temperature_for_candidates

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        batch = min(self.bsize, len(list(trainset)))
        per_run = _calls_per_run(student)
        steps = self.max_steps * (2 * self.num_candidates * batch * per_run + self.num_candidates)
        final = self.num_candidates * len(list(valset if valset is not None else trainset)) * per_run
        return Estimate(steps + final, None, {"steps": steps, "final": final})

    def compile(self, student: Module, *, trainset: Sequence[Example], valset: Sequence[Example] | None = None,
                seed: int | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        val = check_examples(valset, "valset") if valset is not None else rows
        rng = random.Random(self.seed if seed is None else seed)
        with CompileRun(self, student, rows, val, total=self.max_steps + 1, unit="steps") as run:
            own = next((p.lm for p in student.predictors() if p.lm is not None), None)
            prompt_lm = run.budget.wrap(self.prompt_model) or run.budget.wrap(own)
            pool: list[tuple[ProgramState, list[float]]] = [(snapshot(student), [])]
            try:
                for step in range(self.max_steps):
                    self._step(run, pool, rows, rng, step, prompt_lm)
                    run.step(f"{len(pool)} candidates")
            except BudgetExhausted:
                scored = [(sum(s) / len(s), i) for i, (_, s) in enumerate(pool) if s]
                if scored:  # no budget left for the final evaluation: the best minibatch mean
                    mean, i = max(scored, key=lambda t: (t[0], -t[1]))
                    run.offer(pool[i][0], 100.0 * mean)
                raise
            self._final(run, pool, val)
        return run.finish()

    def _pick(self, pool: list[tuple[ProgramState, list[float]]], rng: random.Random) -> int:
        means = [sum(s) / len(s) if s else 0.0 for _, s in pool]
        temperature = max(self.temperature_for_sampling, 1e-6)
        top = max(means)
        weights = [math.exp((m - top) / temperature) for m in means]
        return rng.choices(range(len(pool)), weights=weights)[0]

    def _step(self, run: CompileRun, pool: list[tuple[ProgramState, list[float]]], rows: list[Example],
              rng: random.Random, step: int, prompt_lm: BaseLM | None) -> None:
        batch = rng.sample(rows, min(self.bsize, len(rows)))
        picks = [self._pick(pool, rng) for _ in range(self.num_candidates)]
        pairs: list[tuple[Module, Example]] = []
        for c, index in enumerate(picks):
            program = run.candidate(pool[index][0])
            for p in program.predictors():
                p.lm_params = {**p.lm_params, "temperature": self.temperature_for_candidates,
                               "rollout_id": f"simba-{step}-{c}"}
            pairs.extend((program, ex) for ex in batch)
        outcomes = run_pairs(pairs, self.metric, threads=self.threads(), traced=True)
        run.count(outcomes)
        per_example = [[outcomes[c * len(batch) + j] for c in range(len(picks))] for j in range(len(batch))]
        gaps = sorted(range(len(batch)), key=lambda j: -(max(o.score for o in per_example[j])
                                                         - min(o.score for o in per_example[j])))
        for j in gaps[:self.num_candidates]:
            trials = per_example[j]
            best = max(range(len(trials)), key=lambda c: trials[c].score)
            worst = min(range(len(trials)), key=lambda c: trials[c].score)
            if trials[best].score == trials[worst].score:
                continue
            source = pool[picks[best]][0]
            if rng.random() < 0.5:
                candidate = self._add_demo(source, trials[best], rng)
            else:
                candidate = self._add_rule(source, trials[best], trials[worst], prompt_lm)
            if candidate is None:
                continue
            scores = [o.score for o in run.evaluate(run.candidate(candidate), batch, self.metric)]
            pool.append((candidate, scores))
            run.record("minibatch", 100.0 * sum(scores) / len(scores), len(batch), step=step,
                       source=picks[best])

    def _add_demo(self, source: ProgramState, best: EvaluationRow, rng: random.Random) -> ProgramState | None:
        if not best.steps:
            return None
        new = dict(source)
        for name, inputs, prediction in best.steps:
            clipped = {k: str(v)[:self.demo_input_field_maxlen] if isinstance(v, str) else v
                       for k, v in inputs.items()}
            demos = list(new[name].demos)
            if len(demos) >= self.max_demos and demos:
                demos.pop(rng.randrange(len(demos)))
            new[name] = new[name].with_demos([*demos, _demo(clipped, prediction)])
        return new

    def _add_rule(self, source: ProgramState, best: EvaluationRow, worst: EvaluationRow,
                  prompt_lm: BaseLM | None) -> ProgramState | None:
        def show(o: EvaluationRow) -> str:
            steps = "\n".join(f"{n}: {dict(i)} -> {dict(p)}" for n, i, p in o.steps) or str(o.error)
            return f"{steps}\nscore: {o.score}"

        try:
            text = str(Predict(WriteRule, lm=prompt_lm, max_tokens=80)(
                good_attempt=show(best), bad_attempt=show(worst)).rule)
        except (LMError, ParseError):
            return None
        rule = clean_instruction(text)
        if rule is None:
            return None
        names = {n for n, _, _ in best.steps} or set(source)
        return {n: s.with_instructions(f"{s.signature.instructions}\n- {rule}") if n in names else s
                for n, s in source.items()}

    def _final(self, run: CompileRun, pool: list[tuple[ProgramState, list[float]]],
               val: list[Example]) -> None:
        means = [sum(s) / len(s) if s else 0.0 for _, s in pool]
        ranked = sorted(range(len(pool)), key=lambda i: -means[i])
        chosen = [0, *[i for i in ranked if i != 0][:max(0, self.num_candidates - 1)]]
        for i in chosen:
            score = mean_score(run.evaluate(run.candidate(pool[i][0]), val, self.metric))
            if i == 0:
                run.baseline_score = score
            run.record("full_evaluation", score, len(val), candidate=i)
            run.offer(pool[i][0], score)
        run.step("final evaluation")

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in super().settings().items() if k != "prompt_model"}
