"""COPRO: coordinate ascent over each predictor's instruction, written by a prompt model.

For each predictor in turn: the prompt model writes ``breadth - 1`` variants of the instruction
(sampled at ``init_temperature``); each variant is scored on the trainset (or the valset when one
is given); then, ``depth - 1`` more times, the prompt model sees the instructions tried so far with
their scores and writes ``breadth`` new ones. The best instruction is kept for that predictor
before moving on to the next one. The original instruction is always a candidate, so the result
never scores below the student on the data it was scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmbridge.errors import LMError, ParseError
from lmbridge.evaluate import Metric, check_examples, mean_score
from lmbridge.lm import BaseLM
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._fewshot import _calls_per_run
from lmbridge.optimizers._support.proposer import clean_instruction
from lmbridge.optimizers._support.state import ProgramState, snapshot
from lmbridge.programs import Module, Predict
from lmbridge.signatures import InputField, OutputField, Signature
from lmbridge.types import Example


class RewriteInstruction(Signature):
    """You write instructions for a small language model. Rewrite the instruction below so the
    model does the task better. Reply with the new instruction only."""

    task: str = InputField(desc="the step's inputs and outputs")
    instruction: str = InputField(desc="the instruction to improve")
    proposed_instruction: str = OutputField(desc="the improved instruction")


class RewriteFromAttempts(Signature):
    """You write instructions for a small language model. Below are instructions already tried, with
    their scores (higher is better), worst first. Write a new instruction that should score higher
    than all of them. Reply with the new instruction only."""

    task: str = InputField(desc="the step's inputs and outputs")
    attempted_instructions: str = InputField(desc="instructions tried, with scores")
    proposed_instruction: str = OutputField(desc="the new instruction")


class COPRO(Optimizer):
    """Instruction search by a prompt model, one predictor at a time."""

    def __init__(self, prompt_model: BaseLM | None = None, metric: Metric | None = None, breadth: int = 10,
                 depth: int = 3, init_temperature: float = 1.4, *, seed: int = 0, num_threads: int | None = None,
                 max_lm_calls: int | None = None, max_cost: float | None = None,
                 display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        if metric is None:
            raise ValueError("COPRO needs a metric")
        if breadth < 2:
            raise ValueError("breadth must be at least 2 (the original instruction and one new one)")
        self.prompt_model = prompt_model
        self.metric = metric
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = init_temperature

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None) -> Estimate:
        n = len(list(valset if valset is not None else trainset))
        preds = len(student.predictors())
        proposals = preds * ((self.breadth - 1) + (self.depth - 1) * self.breadth)
        evals = preds * (self.breadth + (self.depth - 1) * self.breadth) * n * _calls_per_run(student)
        return Estimate(proposals + evals, None, {"proposals": proposals, "evaluation": evals})

    def compile(self, student: Module, *, trainset: Sequence[Example], valset: Sequence[Example] | None = None,
                eval_kwargs: dict[str, Any] | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        data = check_examples(valset, "valset") if valset is not None else rows
        names = [n for n, _ in student.named_predictors()]
        total = len(names) * (self.breadth + (self.depth - 1) * self.breadth)
        with CompileRun(self, student, rows, valset, total=total, unit="candidates") as run:
            own = next((p.lm for p in student.predictors() if p.lm is not None), None)
            prompt_lm = run.budget.wrap(self.prompt_model) or run.budget.wrap(own)
            state = snapshot(student)
            run.baseline_score = self._score(run, state, data)
            run.offer(state, run.baseline_score)
            for name in names:
                state = self._ascend(run, state, name, data, prompt_lm)
        return run.finish()

    def _score(self, run: CompileRun, state: ProgramState, data: list[Example]) -> float:
        return mean_score(run.evaluate(run.candidate(state), data, self.metric))

    def _ascend(self, run: CompileRun, state: ProgramState, name: str, data: list[Example],
                prompt_lm: BaseLM | None) -> ProgramState:
        sig = state[name].signature
        task = sig.spec()
        tried: dict[str, float] = {sig.instructions: run.best_score or 0.0}
        for round_ in range(self.depth):
            if round_ == 0:
                proposals = self._propose(RewriteInstruction, prompt_lm, self.breadth - 1, round_,
                                          task=task, instruction=sig.instructions)
            else:
                history = "\n".join(f"{score:.1f}: {text}" for text, score in
                                    sorted(tried.items(), key=lambda kv: kv[1]))
                proposals = self._propose(RewriteFromAttempts, prompt_lm, self.breadth, round_, task=task,
                                          attempted_instructions=history)
            for text in proposals:
                if text in tried:
                    run.step("repeat")
                    continue
                candidate = {**state, name: state[name].with_instructions(text)}
                tried[text] = self._score(run, candidate, data)
                run.record("candidate", tried[text], len(data), predictor=name, depth=round_,
                           instruction=text[:200])
                run.offer(candidate, tried[text])
                run.step(f"{name} depth {round_}")
        best = max(tried.items(), key=lambda kv: kv[1])[0]
        return {**state, name: state[name].with_instructions(best)}

    def _propose(self, signature: type[Signature], lm: BaseLM | None, n: int, round_: int,
                 **inputs: str) -> list[str]:
        out: list[str] = []
        for i in range(n):
            predict = Predict(signature, lm=lm, temperature=self.init_temperature, max_tokens=160,
                              rollout_id=f"copro-{self.seed}-{round_}-{i}")
            try:
                text = clean_instruction(str(predict(**inputs).proposed_instruction))
            except (LMError, ParseError):
                text = None
            if text and text not in out:
                out.append(text)
        return out
