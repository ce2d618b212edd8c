"""MIPROv2: joint search over instructions, demonstrations and prompt format, with optuna's TPE.

1. Demo-set candidates: ``num_candidates`` few-shot sets per predictor, made as in the random
   search (zero-shot, labeled only, an ordered bootstrap, shuffled bootstraps).
2. Instruction candidates: the original instruction plus grounded proposals (``proposer.py``).
3. Search: each trial picks, per predictor, one instruction and one demo set (categorical), and one
   prompt format for the program (``formats``; beyond DSPy: tiny models swing from near 0 to
   over 90 % on prompt form alone), and one set of field labels (``search_labels``: "Text / Label"
   as given, or labels proposed from the task and the data such as "Question / Type"; they are
   part of the predictor's signature, so a saved program keeps them), and a value for each searched
   setting of a tunable module (a RAG module's ``k``, retriever and query rewrite: the retrieval side
   searched jointly with the answer prompt, scored end to end). A trial scores the candidate
   on a minibatch of the valset; every ``minibatch_full_eval_steps`` trials the candidate with the
   best mean minibatch score is scored on the whole valset. The best full score wins; the unchanged
   student is scored first, as the baseline, then the seeded simple recipes (``seeded``).
4. Final choice (``rescore_top``, beyond DSPy): the best few candidates by valset score, the seeded
   recipes and the student are scored again on the train and valset rows together, each never on its
   own demos, and the paired rule picks (within noise, the cheaper one): a choice made on 30 valset
   rows alone does not carry to new rows (``rescore.py``; ``rescore_top=0`` turns it off).

``auto`` sets the size: "light", "medium", "heavy" mean 6, 12, 18 candidates and a valset of at
most 100, 300, 1000 examples; the number of trials follows from the number of dimensions.

``checkpoint=path`` (or an RDB URL such as ``postgresql://...``) keeps the study in a database:
a killed compile restarts where it stopped, and several worker processes given the same
checkpoint run trials of one study together.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lmbridge.evaluate import Metric, check_examples
from lmbridge.formats import PromptFormat, TextFormat
from lmbridge.lm import BaseLM
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer, price_per_call
from lmbridge.optimizers._fewshot import _calls_per_run, labeled_demos
from lmbridge.optimizers._random_search import demo_candidates
from lmbridge.optimizers._support.budget import StudyCounter
from lmbridge.optimizers._support.checkpoint import fingerprint, storage_url
from lmbridge.optimizers._support.mipro_search import Search
from lmbridge.optimizers._support.proposer import GroundedProposer
from lmbridge.optimizers._support.rescore import RESCORE_TOP, finalists, rescore
from lmbridge.optimizers._support.search_space import (
    SearchSpace,
    StudyCheckpoint,
    default_formats,
    field_labels,
    open_study,
    usable_formats,
)
from lmbridge.optimizers._support.state import PredictorState, setting_options, snapshot
from lmbridge.programs import DEFAULT_FORMAT, Module, calibrating, label_options, with_priors
from lmbridge.settings import context, current
from lmbridge.signatures import extractive_fields
from lmbridge.types import Example

AUTO_RUN_SETTINGS = {"light": {"n": 6, "val_size": 100}, "medium": {"n": 12, "val_size": 300},
                     "heavy": {"n": 18, "val_size": 1000}}
SMALL_VALSET = 30
"""Below this many valset rows the report warns that the selection is noisy."""
SEEDED = 2
"""How many simple recipes are scored before the search (balanced demos as given and as plain text)."""
SETUP_STALE_AFTER = 90.0
"""Seconds without a setup heartbeat after which another worker takes the setup over."""


class MIPROv2(Optimizer):
    """Bayesian search (optuna TPE) over instructions, demo sets and prompt formats."""

    def __init__(self, metric: Metric, prompt_model: BaseLM | None = None, task_model: BaseLM | None = None,
                 teacher_settings: Mapping[str, Any] | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 4, auto: Literal["light", "medium", "heavy"] | None = "light",
                 num_candidates: int | None = None, num_threads: int | None = None,
                 max_errors: int | None = None, seed: int = 9, init_temperature: float = 1.0,
                 metric_threshold: float | None = None, *,
                 formats: Sequence[PromptFormat] | None = None, proposal_templates: bool = True,
                 search_labels: bool = True, rescore_top: int = RESCORE_TOP,
                 max_lm_calls: int | None = None, max_cost: float | None = None,
                 display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise ValueError(f"auto must be one of {sorted(AUTO_RUN_SETTINGS)} or None, not {auto!r}")
        if auto is not None and num_candidates is not None:
            raise ValueError("with auto set, num_candidates comes from auto: pass auto=None to set it")
        if auto is None and num_candidates is None:
            raise ValueError("with auto=None, pass num_candidates (and num_trials to compile)")
        if isinstance(rescore_top, bool) or not isinstance(rescore_top, int) or rescore_top < 0:
            raise ValueError(f"rescore_top must be an int >= 0 (0: no re-scoring), not {rescore_top!r}")
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.auto = auto
        self.num_candidates = num_candidates if auto is None else AUTO_RUN_SETTINGS[auto]["n"]
        self.max_errors = max_errors
        self.init_temperature = init_temperature
        self.metric_threshold = metric_threshold
        self.formats: list[PromptFormat] = list(default_formats() if formats is None else formats)
        self.proposal_templates = proposal_templates
        self.search_labels = search_labels
        self.rescore_top = rescore_top

    # -- sizes -------------------------------------------------------------------------------------
    def _split(self, trainset: Sequence[Example], valset: Sequence[Example] | None,
               seed: int) -> tuple[list[Example], list[Example]]:
        rows = check_examples(trainset, "trainset", minimum=1 if valset is not None else 2)
        if valset is None:
            cut = max(1, min(len(rows) - 1, int(len(rows) * 0.8)))
            val, rows = rows[:cut], rows[cut:]
        else:
            val = check_examples(valset, "valset")
        if self.auto is not None:
            cap = AUTO_RUN_SETTINGS[self.auto]["val_size"]
            if len(val) > cap:
                val = random.Random(seed).sample(val, cap)
        return rows, val

    def _num_trials(self, student: Module, num_trials: int | None, zero_shot: bool) -> int:
        if num_trials is not None:
            return num_trials
        if self.auto is None:
            raise ValueError("with auto=None, pass num_trials to compile")
        n = int(self.num_candidates or 1)
        dims = len(student.predictors()) * (1 if zero_shot else 2) + (1 if self.formats else 0)
        dims += sum(len(opts) for opts in setting_options(student).values())  # a RAG module's k, retriever, ...
        return max(math.ceil(2 * dims * math.log2(max(n, 2))), math.ceil(1.5 * n))

    def estimate(self, student: Module, *, trainset: Sequence[Example],
                 valset: Sequence[Example] | None = None,
                 num_trials: int | None = None, minibatch: bool = True, minibatch_size: int = 35,
                 minibatch_full_eval_steps: int = 5) -> Estimate:
        train, val = self._split(trainset, valset, self.seed)
        n = int(self.num_candidates or 1)
        zero_shot = self.max_bootstrapped_demos == 0 and self.max_labeled_demos == 0
        trials = self._num_trials(student, num_trials, zero_shot)
        per_run = _calls_per_run(student)
        boot = 0 if zero_shot else max(0, n - 2) * len(train) * per_run
        proposals = 1 + len(student.predictors()) * max(0, n - 1)
        batch = min(minibatch_size, len(val)) if minibatch else len(val)
        trial_calls = trials * batch * per_run
        steps = max(1, minibatch_full_eval_steps)
        fulls = (trials // steps + 2) * len(val) * per_run if batch < len(val) else 0
        baseline = (1 + (0 if zero_shot else SEEDED)) * len(val) * per_run  # the student, the seeded recipes
        twin = len(val) * per_run if any(f.scoring == "calibrated" for f in self.formats) else 0  # the tie rule
        # the final choice: its finalists on the trainset rows (their valset scores are known)
        finalists = self.rescore_top + (0 if zero_shot else SEEDED) + 1 if self.rescore_top else 0
        rescored = finalists * len(train) * per_run
        total = boot + proposals + trial_calls + fulls + baseline + twin + rescored
        price = price_per_call(student, train[0] if train else None, self.max_bootstrapped_demos)
        return Estimate(total, None if price is None else price * total,
                        {"bootstrap": boot, "proposals": proposals, "trials": trial_calls,
                         "full_evaluations": fulls + baseline + twin, "rescore": rescored})

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None, num_trials: int | None = None,
                max_bootstrapped_demos: int | None = None, max_labeled_demos: int | None = None,
                seed: int | None = None, minibatch: bool = True, minibatch_size: int = 35,
                minibatch_full_eval_steps: int = 5, program_aware_proposer: bool = True,
                data_aware_proposer: bool = True, view_data_batch_size: int = 10,
                tip_aware_proposer: bool = True, fewshot_aware_proposer: bool = True,
                checkpoint: str | Path | None = None) -> Module:
        seed = self.seed if seed is None else seed
        max_boot = self.max_bootstrapped_demos if max_bootstrapped_demos is None else max_bootstrapped_demos
        max_lab = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        train, val = self._split(trainset, valset, seed)
        zero_shot = max_boot == 0 and max_lab == 0
        trials = self._num_trials(student, num_trials, zero_shot)
        batch = min(minibatch_size, len(val)) if minibatch else len(val)
        settings = {**self.settings(), "seed": seed, "trials": trials, "batch": batch,
                    "max_bootstrapped_demos": max_boot, "max_labeled_demos": max_lab}
        fp = fingerprint("MIPROv2", settings, student, train, val)
        url = storage_url(checkpoint) if checkpoint is not None else None
        study, created = open_study(url, f"lmbridge-mipro-{fp}", seed)
        store = StudyCheckpoint(study)
        proposer = GroundedProposer(
            self.prompt_model, view_data_batch_size=view_data_batch_size,
            program_aware=program_aware_proposer, data_aware=data_aware_proposer,
            tip_aware=tip_aware_proposer, fewshot_aware=fewshot_aware_proposer,
            templates=self.proposal_templates, init_temperature=self.init_temperature, seed=seed)
        total = trials + (trials // max(1, minibatch_full_eval_steps) + 2 if batch < len(val) else 1) + SEEDED
        total += self.rescore_top + SEEDED + 1 if self.rescore_top else 0
        # a calibrated format takes its prior from the trainset's inputs (labels unused), here and in the result
        with calibrating(train, seed=seed) as pool:
            with CompileRun(self, student, train, val, total=total, unit="evaluations") as run:
                run.store = store
                run.notes.update({"resumed": store.resumed or not created, "num_trials": trials,
                                  "minibatch_size": batch,
                                  "study": study.study_name})
                if len(val) < SMALL_VALSET:
                    run.notes["warnings"] = [
                        f"the valset has {len(val)} rows: one row moves a score by {100 / len(val):.1f} points, so "
                        f"the search can pick a candidate by chance; {SMALL_VALSET} rows or more are advised"]
                if url is not None and run.budget.limited:
                    run.budget.share(StudyCounter(url, study.study_name))  # the caps hold for the whole study
                task = run.budget.wrap(self.task_model)
                with context(lm=task) if task is not None else context():
                    own = next((p.lm for p in student.predictors() if p.lm is not None), None)
                    proposer.prompt_model = (run.budget.wrap(self.prompt_model) or current().lm
                                             or run.budget.wrap(own))
                    space = self._setup(run, student, train, store, created, proposer, teacher, seed, max_boot,
                                        max_lab, zero_shot)
                    search = Search(self.metric, self.max_errors, run, study, store, space, val, batch,
                                    minibatch_full_eval_steps, seed)
                    search.baseline()
                    recipes = seeded(space)
                    search.seeded(recipes)
                    search.trials(trials)
                    search.finish()
                    if self.rescore_top:
                        rescore(run, space, finalists(store, space, recipes, self.rescore_top), train, val,
                                self.metric)
            with context(lm=self.task_model) if self.task_model is not None else context():
                return with_priors(run.finish(), pool)

    def _setup(self, run: CompileRun, student: Module, train: list[Example], store: StudyCheckpoint,
               created: bool,
               proposer: GroundedProposer, teacher: Module | None, seed: int, max_boot: int, max_lab: int,
               zero_shot: bool) -> SearchSpace:
        if not created:
            _wait_for_setup(store)
        base = snapshot(student)
        n = int(self.num_candidates or 1)

        def beat(*_: Any) -> None:
            store.put("setup:heartbeat",
                      {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid()})

        if not store.get("setup:done"):
            beat()
        demo_sets = []
        if not zero_shot:
            seeds = list(range(-3, n - 3))
            boot_store = _Beating(store, beat)
            made = demo_candidates(
                run, student, train, seeds, metric=self.metric, metric_threshold=self.metric_threshold,
                teacher=teacher, teacher_settings=self.teacher_settings, max_bootstrapped=max_boot,
                max_labeled=max_lab, max_rounds=1, labeled_sample=True, base_seed=seed, store=boot_store)
            demo_sets = [made[s] for s in seeds]
        instructions = proposer.propose(base, train, demo_sets, n, store, on_step=beat)
        store.put("setup:done", True)
        effective = _effective_format(student)
        formats: list[PromptFormat | None] = [None] + [f for f in self.formats if f != effective]
        # label scoring needs log-probabilities: scoring formats are searched only where the LM has them
        lms: list[BaseLM | None] = [p.lm for p in student.predictors() if p.lm is not None] or [current().lm]
        logprobs = all(lm is not None and lm.supports_logprobs() for lm in lms)
        formats = usable_formats(formats, logprobs and any(label_options(s.signature) for s in base.values()))
        balanced_made = not zero_shot and max_lab > 0 and all(label_options(s.signature) for s in base.values())
        if balanced_made:
            # A class-balanced draw of labeled demos, two of each class at least: a 6-class task needs
            # more than the default 4 demos before every class is shown once.
            balanced = {name: s.with_demos(labeled_demos(s, train, max(max_lab, 2 * _classes(s)), random.Random(seed),
                                                         balanced=True))
                        for name, s in base.items()}
            demo_sets.append(balanced)
        labels = field_labels(base, train) if self.search_labels else [{}]
        space = SearchSpace(base, instructions, demo_sets, formats if self.formats else [None], labels,
                            setting_options(student))
        space.balanced = len(demo_sets) - 1 if balanced_made else None
        space.extractive = extractive_recipe(space, labeled=1 if len(demo_sets) > 1 and max_lab > 0 else None)
        return space


def extractive_recipe(space: SearchSpace, labeled: int | None) -> dict[str, int] | None:
    """The simple recipe for extractive answers (a RAG program): labelled demos (``labeled``, the
    demo set of labelled rows only), the instruction about the span's length, and the fewest passages
    searched (the smallest ``k``): what moved F1 most on SQuAD with the embedded models."""
    choice = space.default()
    found = False
    for name, state in space.base.items():
        if not extractive_fields(state.signature):
            continue
        options = space.instructions.get(name, [])
        short = next((i for i, text in enumerate(options) if text.startswith("Answer with the shortest phrase")), None)
        if short is not None and f"{name}.instruction" in choice:
            choice[f"{name}.instruction"], found = short, True
        if labeled is not None and f"{name}.demos" in choice:
            choice[f"{name}.demos"], found = labeled, True
        ks = space.settings.get(name, {}).get("k")
        if ks and f"{name}.k" in choice and all(isinstance(k, int) for k in ks):
            choice[f"{name}.k"], found = ks.index(min(ks)), True
    return choice if found and choice != space.default() else None


def seeded(space: SearchSpace) -> list[dict[str, int]]:
    """The simple recipes the search must beat: the class-balanced labelled demos, with the original
    instruction and labels, in the format as given and in plain text (``TextFormat``) when searched;
    for an extractive answer, the recipe of ``extractive_recipe``."""
    if space.extractive is not None:
        return [space.extractive]
    if space.balanced is None:
        return []
    text = [i for i, f in enumerate(space.formats) if isinstance(f, TextFormat) and f.scoring == "generate" and i > 0]
    formats = [0, *text[:SEEDED - 1]]
    out = []
    for index in formats:
        choice = space.default()
        choice.update({d: space.balanced for d in choice if d.endswith(".demos")})
        if "format" in choice:
            choice["format"] = index
        if choice not in out and choice != space.default():
            out.append(choice)
    return out


def _classes(state: PredictorState) -> int:
    found = label_options(state.signature)
    return len(found[1]) if found is not None else 0


class _Beating:
    """A checkpoint that also beats the setup heartbeat on every write."""

    def __init__(self, store: StudyCheckpoint, beat: Any) -> None:
        self.store, self.beat = store, beat
        self.resumed = store.resumed

    def get(self, name: str) -> Any:
        return self.store.get(name)

    def put(self, name: str, value: Any) -> None:
        self.store.put(name, value)
        self.beat()


def _effective_format(student: Module) -> PromptFormat | None:
    found = {repr(p.format or current().format or DEFAULT_FORMAT) for p in student.predictors()}
    if len(found) != 1:
        return None
    p = student.predictors()[0]
    return p.format or current().format or DEFAULT_FORMAT


def _wait_for_setup(store: StudyCheckpoint) -> None:
    """Wait while another live worker is making the candidates; take over if it stopped."""
    while not store.refresh().get("setup:done"):
        beat = store.get("setup:heartbeat")
        if not isinstance(beat, dict):
            return
        if beat.get("host") == socket.gethostname() and not _alive(int(beat.get("pid", 0))):
            return
        if time.time() - float(beat.get("time", 0)) > SETUP_STALE_AFTER:
            return
        time.sleep(1.0)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False  # our own earlier run in this process: nothing to wait for
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
