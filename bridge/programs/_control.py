"""Control modules: sample a module several times (``BestOfN``), retry it with the model's own
feedback (``Refine``), or run many (module, inputs) pairs on threads (``Parallel``).

Attempts after the first run on a copy of the module whose predictors carry ``rollout_id`` and a
temperature above zero in their LM parameters, so each attempt is a distinct sample with a cache
entry of its own; the first attempt is the module as it is. A reward function
``reward_fn(inputs, prediction) -> float`` scores each attempt.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from lmbridge.errors import EvaluationError, describe
from lmbridge.programs._module import Module
from lmbridge.programs._predict import Predict
from lmbridge.settings import context_executor, current
from lmbridge.signatures import InputField, OutputField, Signature, render
from lmbridge.types import Example, Prediction

RewardFn = Callable[[dict[str, Any], Prediction], Any]


def _score(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise TypeError(f"reward_fn returned {value!r}; it must return a number or a bool")


class BestOfN(Module):
    """Run ``module`` up to ``N`` times; return the first prediction whose reward reaches
    ``threshold``, else the one with the highest reward.

    A failed attempt (the module or ``reward_fn`` raised) is skipped; the ``fail_count``-th failure
    (by default the ``N``-th) is raised. ``temperature`` is used for the attempts after the first.
    """

    def __init__(self, module: Module, N: int, reward_fn: RewardFn, threshold: float,
                 fail_count: int | None = None, *, temperature: float = 1.0) -> None:
        if N < 1:
            raise ValueError("N must be at least 1")
        self.module = module
        self.N = N
        self.reward_fn = reward_fn
        self.threshold = threshold
        self.fail_count = fail_count if fail_count is not None else N
        self.temperature = temperature

    def _attempt_module(self, attempt: int, advice: str | None = None) -> Module:
        if attempt == 0 and advice is None:
            return self.module
        copy = self.module.deepcopy()
        for p in copy.predictors():
            if attempt > 0:
                p.lm_params = {**p.lm_params, "rollout_id": attempt, "temperature": self.temperature}
            if advice:
                p.instructions = f"{p.instructions}\n\nAdvice from an earlier attempt: {advice}"
        return copy

    def _advise(self, inputs: dict[str, Any], pred: Prediction, score: float) -> str | None:
        return None  # BestOfN gives no feedback; Refine does

    def forward(self, **inputs: Any) -> Prediction:
        best: Prediction | None = None
        best_score = -math.inf
        failures = 0
        advice: str | None = None
        for attempt in range(self.N):
            try:
                pred = self._attempt_module(attempt, advice)(**inputs)
                score = _score(self.reward_fn(dict(inputs), pred))
            except Exception:
                failures += 1
                if failures >= self.fail_count:
                    raise
                continue
            if score > best_score:
                best, best_score = pred, score
            if score >= self.threshold:
                break
            if attempt < self.N - 1:
                advice = self._advise(dict(inputs), pred, score)
        if best is None:  # only reachable when fail_count > N
            raise EvaluationError(f"{type(self).__name__}: all {self.N} attempts failed")
        return best


class OfferFeedback(Signature):
    """A program produced these outputs for these inputs, and a reward function scored them below
    the target. In one or two sentences, advise the program what to do differently on this input."""

    program_inputs: str = InputField(desc="the inputs the program received")
    program_outputs: str = InputField(desc="what the program answered")
    reward: str = InputField(desc="the score it got, and the target score")
    advice: str = OutputField(desc="concrete advice for the next attempt")


class Refine(BestOfN):
    """BestOfN with feedback: after an attempt that scores below ``threshold``, the ``feedback``
    predictor (an ordinary Predict) writes advice, and the next attempt sees it in the instructions
    of each of its predictors."""

    def __init__(self, module: Module, N: int, reward_fn: RewardFn, threshold: float,
                 fail_count: int | None = None, *, temperature: float = 1.0, **feedback_options: Any) -> None:
        super().__init__(module, N, reward_fn, threshold, fail_count, temperature=temperature)
        self.feedback = Predict(OfferFeedback, **feedback_options)

    def _advise(self, inputs: dict[str, Any], pred: Prediction, score: float) -> str | None:
        shown_in = "\n".join(f"{k}: {render(v)}" for k, v in inputs.items())
        shown_out = "\n".join(f"{k}: {render(v)}" for k, v in pred.items())
        advice = self.feedback(program_inputs=shown_in, program_outputs=shown_out,
                               reward=f"{score:g} (target: {self.threshold:g})").advice
        return str(advice).strip() or None


class Parallel:
    """Run ``(module, inputs)`` pairs on worker threads that carry the caller's settings and
    trackers; each task runs in its own copy of the caller's context, so tasks never see each
    other's ``lmbridge.context`` changes.

    ``parallel(pairs)`` returns the results in order, None where a pair failed. Past
    ``max_errors`` failures (None: no limit) it stops and raises ``EvaluationError`` from the last
    failure. Inputs may be an Example (its ``inputs()`` when they are marked and
    ``access_examples``), a mapping (keyword arguments), or a tuple/list (positional arguments).
    """

    def __init__(self, num_threads: int | None = None, max_errors: int | None = None,
                 access_examples: bool = True, return_failed_examples: bool = False) -> None:
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples

    def _run_one(self, module: Callable[..., Any], inputs: Any) -> Any:
        if isinstance(inputs, Example):
            use = inputs.inputs() if self.access_examples and inputs.input_keys is not None else inputs
            return module(**use)
        if isinstance(inputs, Mapping):
            return module(**inputs)
        if isinstance(inputs, (tuple, list)):
            return module(*inputs)
        return module(inputs)

    def __call__(self, exec_pairs: Sequence[tuple[Callable[..., Any], Any]]) -> Any:
        pairs = list(exec_pairs)
        results: list[Any] = [None] * len(pairs)
        failed: list[Any] = []
        exceptions: list[BaseException] = []
        lock = threading.Lock()
        stop: list[EvaluationError] = []

        def task(i: int) -> None:
            if stop:
                return
            module, inputs = pairs[i]
            try:
                results[i] = self._run_one(module, inputs)
            except Exception as exc:
                with lock:
                    failed.append(inputs)
                    exceptions.append(exc)
                    if self.max_errors is not None and len(exceptions) > self.max_errors and not stop:
                        error = EvaluationError(
                            f"Parallel stopped: {len(exceptions)} pairs failed, more than "
                            f"max_errors={self.max_errors}; last: {describe(exc)}")
                        error.__cause__ = exc
                        stop.append(error)

        threads = self.num_threads or current().num_threads
        with context_executor(max(1, min(threads, len(pairs) or 1))) as pool:
            futures: list[Future[None]] = [pool.submit(task, i) for i in range(len(pairs))]
            for f in futures:
                f.result()
        if stop:
            raise stop[0]
        if self.return_failed_examples:
            return results, failed, exceptions
        return results

    forward = __call__


__all__ = ["BestOfN", "OfferFeedback", "Parallel", "Refine", "RewardFn"]
