"""MIPROv2's trial loop over an optuna study, shared by every worker process of one compile.

Each trial picks a point of the ``SearchSpace`` and scores it on a minibatch of the valset; every
``full_eval_steps`` complete trials, the point with the best mean minibatch score is scored on the
whole valset. Every decision is read back from the study (trials and user attributes), so a killed
compile resumes where it stopped and several workers given one study agree on the result.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lmbridge.evaluate import Metric, mean_score
from lmbridge.optimizers._support.search_space import WORKER, SearchSpace, StudyCheckpoint, key, optuna_module
from lmbridge.optimizers._support.shared_study import claim_trial, heartbeat, reap
from lmbridge.types import Example

if TYPE_CHECKING:
    from lmbridge.optimizers._base import CompileRun


class Search:
    """The trial loop of one worker over a shared study."""

    def __init__(self, metric: Metric, max_errors: int | None, run: CompileRun, study: Any, store: StudyCheckpoint,
                 space: SearchSpace, val: list[Example], batch: int, full_eval_steps: int, seed: int) -> None:
        self.metric, self.max_errors = metric, max_errors
        self.run, self.study, self.store, self.space = run, study, store, space
        self.val, self.batch, self.full_eval_steps, self.seed = val, batch, max(1, full_eval_steps), seed
        self.optuna = optuna_module()

    def _complete(self) -> list[Any]:
        return list(self.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.COMPLETE,)))

    def full_score(self, choice: Mapping[str, int]) -> float:
        """The candidate's score on the whole valset, computed once per study."""
        k = key(choice)
        saved = self.store.get(f"full:{k}")
        if isinstance(saved, dict):
            score = float(saved["score"])
        else:
            program = self.run.candidate(self.space.state(choice))
            outcomes = self.run.evaluate(program, self.val, self.metric)
            score = mean_score(outcomes)
            self.store.put(f"full:{k}", {"score": score, "at": time.time(), "worker": WORKER})
            self.run.check_errors(self.max_errors)
        self.run.offer(self.space.state(choice), score)
        return score

    def baseline(self) -> None:
        self.run.baseline_score = self.full_score(self.space.default())
        self.run.step("baseline")

    def seeded(self, choices: list[dict[str, int]]) -> None:
        """Score the simple recipes on the whole valset before the search, so its winner must beat them
        (and, within noise, the tie rule prefers the simpler of the two)."""
        for choice in choices:
            self.full_score(choice)
            self.run.step("seeded recipe")

    def trials(self, num_trials: int) -> None:
        """Run trials until the study holds ``num_trials`` complete ones.

        Each proposal depends only on the seed and the trials finished so far (a fresh TPE sampler
        seeded from both), never on how many processes or restarts came before, so a compile
        resumed after a kill proposes what an uninterrupted one would have."""
        dims = self.space.dims()
        self._catch_up_full_evals()
        while True:
            # The sampler is chosen before the claim, from the trials finished so far. A dead worker's
            # trial is retried by claim_trial (optuna's heartbeat) with its own choice and slot.
            # A dead worker's running trial is failed (and queued again) first, so it does not move the slot.
            reap(self.study, self.optuna)
            sampled = self._slot()
            self.study.sampler = self._sampler(sampled)
            trial = claim_trial(self.study, num_trials, self.optuna)
            if trial is None:
                break
            if "slot" not in trial.user_attrs:
                trial.set_user_attr("slot", self._slot_of(trial))
            slot = str(trial.user_attrs["slot"])
            if slot != sampled:
                # A retry of a trial killed part-way through its suggestions (its slot counted the dead
                # trial as running): the choices it had not made come from the sampler of its own slot,
                # as they would have in a run never killed. A Trial object draws them when it is made.
                self.study.sampler = self._sampler(slot)
                trial = self.optuna.trial.Trial(self.study, trial._trial_id)
            choice = {d: int(trial.suggest_categorical(d, list(range(n)))) for d, n in dims}
            trial.set_user_attr("combo", key(choice))
            trial.set_user_attr("worker", WORKER)
            try:
                with heartbeat(self.study, trial):  # a retry scores on its original's minibatch
                    score = self._score(choice, slot)
            except BaseException:
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                raise
            self.study.tell(trial, score)
            self.run.step(f"trial {trial.number}")
            done = len(self._complete())
            if self.batch < len(self.val) and done % self.full_eval_steps == 0:
                self._full_eval_best(str(done), upto=done)

    def _score(self, choice: Mapping[str, int], slot: str) -> float:
        if self.batch >= len(self.val):
            return self.full_score(choice)
        rows = random.Random(f"{self.seed}:{slot}").sample(self.val, self.batch)
        outcomes = self.run.evaluate(self.run.candidate(self.space.state(choice)), rows, self.metric)
        self.run.check_errors(self.max_errors)
        return mean_score(outcomes)

    def _slot(self, taken: int | None = None) -> str:
        """Where the next trial stands: trials complete, plus trials other workers are running now
        (not counting ``taken``, the trial this worker has just claimed)."""
        running = [t for t in self.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,))
                   if t.number != taken and "claim" in t.user_attrs]  # unclaimed: a worker that died asking
        complete = len(self._complete())
        return f"{complete}" if not running else f"{complete}+{len(running)}"

    def _slot_of(self, trial: Any) -> str:
        return self._slot(taken=trial.number)

    def _sampler(self, slot: str) -> Any:
        derived = int.from_bytes(hashlib.sha256(f"{self.seed}:{slot}".encode()).digest()[:4], "big")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is marked experimental
            # constant_liar: trials other workers are running count as bad, so workers spread out.
            return self.optuna.samplers.TPESampler(seed=derived, multivariate=True, constant_liar=True)

    def _catch_up_full_evals(self) -> None:
        """The full evaluations an interrupted run owed at its last steps, done before going on."""
        if self.batch >= len(self.val):
            return
        done = len(self._complete())
        for step in range(self.full_eval_steps, done + 1, self.full_eval_steps):
            self._full_eval_best(str(step), upto=step)

    def _full_eval_best(self, step: str, upto: int | None = None) -> None:
        """Score on the whole valset the candidate with the best mean minibatch score (over the first
        ``upto`` complete trials) that has no full score yet. Each step runs once per study (``step``
        names it), so a resumed run skips it."""
        if self.store.get(f"fullstep:{step}"):
            return
        means: dict[str, list[float]] = {}
        first: dict[str, int] = {}
        for t in sorted(self._complete(), key=lambda t: t.number)[:upto]:
            k = str(t.user_attrs.get("combo"))
            means.setdefault(k, []).append(float(t.value))
            first.setdefault(k, t.number)
        ranked = sorted(means, key=lambda k: (-sum(means[k]) / len(means[k]), first[k]))
        attrs = self.store.refresh()
        for k in ranked:
            if f"full:{k}" not in attrs:
                self.full_score({d: int(v) for d, v in json.loads(k).items()})
                self.run.step("full evaluation")
                break
        self.store.put(f"fullstep:{step}", True)

    def finish(self) -> None:
        if self.batch < len(self.val):
            self._full_eval_best("final")
        attrs = self.store.refresh()
        fulls = sorted(((v["at"], k.removeprefix("full:"), v["score"]) for k, v in attrs.items()
                        if k.startswith("full:") and isinstance(v, dict)))
        if fulls:  # decide from the study's record alone, so every worker of a study picks the same program
            self.run.best_score = None
        for _, k, score in fulls:
            self.run.remember(self.space.state(json.loads(k)))  # the tie rule weighs every worker's candidates
            self.run.offer(self.space.state(json.loads(k)), float(score))
        workers: dict[str, int] = {}  # the report names workers 0, 1, ...: no host names or pids
        for t in sorted(self._complete(), key=lambda t: t.number):
            choice = json.loads(str(t.user_attrs.get("combo")))
            worker = workers.setdefault(str(t.user_attrs.get("worker")), len(workers))
            kind = "full" if self.batch >= len(self.val) else "minibatch"
            self.run.record(kind, float(t.value), self.batch, number=t.number,
                            worker=worker,
                            config=self.space.describe(choice))
        for _, k, score in fulls:
            self.run.record("full_evaluation", float(score), len(self.val),
                            config=self.space.describe(json.loads(k)))

