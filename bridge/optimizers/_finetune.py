"""BootstrapFinetune: compile a program to weights.

A teacher (the student itself unless you give one: a prompt-compiled program, or one on a bigger
model) runs over the trainset; the runs the metric accepts are kept, up to ``max_examples``. Each
predictor's calls in those runs become chat examples in that predictor's own prompt format
(``lmbridge.finetune.training_example``), and a trainer turns them into a fine-tuned LM: one call
per base LM when ``multitask`` (the predictors that share it learn together), else one per predictor.

The program returned is a new copy of the student whose trained predictors hold the fine-tuned LM,
keep their instructions, drop their demos (the model learned the task; demos would only lengthen a
prompt it was not trained on) and pin their prompt format. The messages they send at run time are
the prompts of their training examples. As with every optimizer, with a metric and a valset the
fine-tuned program is kept only when it beats the student beyond noise, and the student is never
changed. ``export`` writes the training set alone, as chat JSONL for a provider's fine-tuning API.

With a teacher other than the student, the teacher is scored on the same valset rows and compared
with the fine-tuned program by the same paired selection; the report shows it
(``report["finetune"]["teacher"]``), and a teacher that wins beyond noise is a warning naming
``BetterTogether``, which keeps the better stage. The selection on programs holding fine-tuned LMs is
in ``_weights_selection``, shared with BetterTogether.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lmbridge.finetune as finetune
from lmbridge.errors import ConfigurationError, EvaluationError
from lmbridge.evaluate import Metric, check_examples
from lmbridge.finetune import (
    ProviderFinetune,
    TrainingExample,
    TrainingProgress,
    WeightTrainer,
    check_chat,
    export_examples,
    training_example,
)
from lmbridge.formats import PromptFormat
from lmbridge.lm import LM, BaseLM
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer, price_per_call, with_selection
from lmbridge.optimizers._fewshot import Bootstrapper
from lmbridge.optimizers._support.budget import BudgetExhausted
from lmbridge.optimizers._support.checkpoint import Checkpoint, fingerprint, open_checkpoint
from lmbridge.optimizers._support.selection import decide
from lmbridge.optimizers._support.state import ProgramState, build, snapshot
from lmbridge.optimizers._weights_selection import WeightsRun, base_lm, judge, same_program, valset_scores
from lmbridge.programs import DEFAULT_FORMAT, Module, Predict, program_state
from lmbridge.settings import current
from lmbridge.tracing import Progress
from lmbridge.types import Example


class _StoreCheckpoint:
    """A trainer's ``TrainingCheckpoint`` kept under one key of the compile's checkpoint."""

    def __init__(self, store: Checkpoint, key: str) -> None:
        self.store, self.key = store, key

    def load(self) -> dict[str, Any] | None:
        value = self.store.get(self.key)
        return dict(value) if isinstance(value, dict) else None

    def save(self, state: dict[str, Any]) -> None:
        self.store.put(self.key, state)


class _TrainingDisplay:
    """A trainer's progress reports on the compile's progress display, and the last one for the report."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.last: TrainingProgress | None = None
        self._bar: Progress | None = None

    def __call__(self, progress: TrainingProgress) -> None:
        self.last = progress
        if self._bar is None or self._bar.total != progress.total:
            self.close()
            self._bar = Progress(self.label, progress.total, enabled=self.enabled, unit="steps")
        loss = f" | loss {progress.loss:.4f}" if progress.loss is not None else ""
        self._bar.advance(max(0, progress.step - self._bar.done), f"{progress.status}{loss}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def default_trainer(lm: BaseLM) -> WeightTrainer:
    """``LocalLoRA()`` for an embedded model, else the provider trainer."""
    if isinstance(lm, LM) and lm.is_local:
        local = getattr(finetune, "LocalLoRA", None)
        if local is None:
            raise ConfigurationError(f"{lm.model} is an embedded model, fine-tuned by lmbridge.finetune.LocalLoRA, "
                                     "which this lmbridge lacks: upgrade lmbridge, or pass trainer=...")
        trainer: WeightTrainer = local()
        return trainer
    return ProviderFinetune()


def _describe(value: Any) -> Any:
    """A stable, JSON-able description of a trainer for the checkpoint fingerprint (no addresses)."""
    fields = vars(value) if hasattr(value, "__dict__") else {}
    shown = {k: v for k, v in fields.items()
             if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str, list, dict)))}
    return {"type": type(value).__name__, **shown}


class BootstrapFinetune(Optimizer):
    """Fine-tune each predictor's LM on the teacher's passing traces (see the module docstring).

    ``trainer``: a ``WeightTrainer``; None picks ``LocalLoRA()`` for an embedded LM and
    ``ProviderFinetune()`` for any other. ``teacher``: the program whose runs are learned (default:
    the student). ``max_examples``: accepted runs to keep. ``format``: the prompt format of the
    fine-tuned predictors (default: each one's own). ``metric_threshold``: the score a run must
    reach (default: above 0).
    """

    def __init__(self, metric: Metric | None = None, *, trainer: WeightTrainer | None = None,
                 teacher: Module | None = None, max_examples: int = 500, multitask: bool = True,
                 metric_threshold: float | None = None, format: PromptFormat | None = None,
                 max_errors: int | None = None, seed: int = 0, num_threads: int | None = None,
                 max_lm_calls: int | None = None, max_cost: float | None = None,
                 display_progress: bool = True) -> None:
        super().__init__(seed=seed, num_threads=num_threads, max_lm_calls=max_lm_calls, max_cost=max_cost,
                         display_progress=display_progress)
        if max_examples < 1:
            raise ValueError(f"max_examples must be at least 1, not {max_examples}")
        self.metric = metric
        self.max_examples = max_examples
        self.multitask = multitask
        self.metric_threshold = metric_threshold
        self.format = format
        self.max_errors = max_errors
        self._trainer = trainer
        self._teacher = teacher

    def settings(self) -> dict[str, Any]:
        trainer = self._trainer
        return {**super().settings(), "trainer": "auto" if trainer is None else getattr(trainer, "name", "custom")}

    # -- compile -----------------------------------------------------------------------------------
    def compile(self, student: Module, *, trainset: Sequence[Example], valset: Sequence[Example] | None = None,
                teacher: Module | None = None, checkpoint: str | Path | None = None) -> Module:
        rows = check_examples(trainset, "trainset")
        teacher = teacher if teacher is not None else self._teacher
        shape = self._shape(student)
        groups = self._groups(student)  # every trainer's check runs here, before any LM call
        store = open_checkpoint(checkpoint, self._fingerprint(student, teacher, rows))
        tuned: dict[str, BaseLM] = {}
        with WeightsRun(self, student, rows, valset, total=len(rows), unit="examples") as run:
            run.notes["resumed"] = store.resumed
            run.store = store
            examples = self._bootstrap(run, student, shape, rows, teacher, store)
            trained = self._train(run, groups, examples, store)
            state = {n: s for n, s in shape.items() if n in trained}  # a predictor with no example stays as it was
            scored = valset_scores(run, self.metric, [student, _with_lms(build(student, state), trained)], valset)
            if judge(run, scored, valset):
                tuned, run.best_state = trained, state
            if teacher is not None:
                run.notes["finetune"]["teacher"] = self._teacher_note(run, student, teacher, scored, valset,
                                                                      kept=bool(tuned))
        result = run.finish()
        for name, p in result.named_predictors():
            if name in tuned:
                p.lm = tuned[name]
        return result

    def export(self, path: str | Path, student: Module, *, trainset: Sequence[Example],
               teacher: Module | None = None, checkpoint: str | Path | None = None) -> list[Path]:
        """Bootstrap the training set as ``compile`` does and write it, without training: a path ending
        in ``.jsonl`` gets one multitask file, any other path a folder with ``<predictor>.jsonl`` per
        predictor. Returns the files written."""
        rows = check_examples(trainset, "trainset")
        teacher = teacher if teacher is not None else self._teacher
        shape = self._shape(student)
        store = open_checkpoint(checkpoint, self._fingerprint(student, teacher, rows))
        with WeightsRun(self, student, rows, None, total=len(rows), unit="examples") as run:
            run.store = store
            examples = self._bootstrap(run, student, shape, rows, teacher, store)
        if run.stopped is not None and not any(examples.values()):
            raise EvaluationError(f"BootstrapFinetune.export stopped before any example passed: {run.stopped}")
        return export_examples(path, {name: found for name, found in examples.items() if found})

    def estimate(self, student: Module, *, trainset: Sequence[Example], valset: Sequence[Example] | None = None,
                 teacher: Module | None = None) -> Estimate:
        """The LM calls of ``compile``: the teacher's runs over the trainset, the selection's runs of the
        student and the fine-tuned program over the valset, and the teacher's own valset runs when it is
        another program than the student. Training calls no LM."""
        rows = list(trainset)
        calls = len(rows) * max(1, len(student.predictors()))
        price = price_per_call(student, rows[0] if rows else None)
        estimate = with_selection(self, student, valset, Estimate(
            calls, None if price is None else price * calls, {"bootstrap": calls, "training": 0}), price)
        teacher = teacher if teacher is not None else self._teacher
        if teacher is None or "selection" not in estimate.breakdown or same_program(teacher, student):
            return estimate
        extra = len(list(valset or [])) * max(1, len(teacher.predictors()))
        cost = None if estimate.cost is None or price is None else estimate.cost + price * extra
        return Estimate(estimate.lm_calls + extra, cost, {**estimate.breakdown, "teacher": extra})

    # -- the steps ---------------------------------------------------------------------------------
    def _shape(self, student: Module) -> ProgramState:
        """The fine-tuned predictors' prompt state: the student's instructions, no demos, the format
        pinned (``format``, else the one each renders with now). A raw-text format is refused."""
        shape = {name: state.with_demos(()).with_format(self.format or state.format or current().format
                                                        or DEFAULT_FORMAT)
                 for name, state in snapshot(student).items()}
        for name, p in build(student, shape).named_predictors():
            check_chat(name, p)
        return shape

    def _groups(self, student: Module) -> dict[str, tuple[BaseLM, WeightTrainer, list[str]]]:
        """Training calls by key: the base LM, the trainer, the predictors trained together."""
        groups: list[tuple[BaseLM, WeightTrainer, list[str]]] = []
        where: dict[int, int] = {}  # id of a base LM -> its (multitask) group
        trainers: dict[int, WeightTrainer] = {}
        for name, p in student.named_predictors():
            lm = base_lm(p)
            if id(lm) not in trainers:
                trainers[id(lm)] = self._trainer or default_trainer(lm)
                trainers[id(lm)].check(lm)
            if self.multitask and id(lm) in where:
                groups[where[id(lm)]][2].append(name)
            else:
                where[id(lm)] = len(groups)
                groups.append((lm, trainers[id(lm)], [name]))
        return {_train_key(lm, trainer, names): (lm, trainer, names) for lm, trainer, names in groups}

    def _fingerprint(self, student: Module, teacher: Module | None, rows: Sequence[Example]) -> str:
        """What decides the bootstrap (not the valset or the trainer: ``export`` and ``compile`` share a
        checkpoint, and each trainer's record is kept under a key naming its settings)."""
        shown = None
        if teacher is not None:
            shown = program_state(teacher)
            shown.pop("lmbridge_version", None)
            shown.pop("report", None)
        settings = {k: v for k, v in self.settings().items() if k not in ("trainer", "multitask")}
        return fingerprint("BootstrapFinetune", {**settings, "teacher": shown}, student, rows, None)

    def _bootstrap(self, run: CompileRun, student: Module, shape: ProgramState, rows: list[Example],
                   teacher: Module | None, store: Checkpoint) -> dict[str, list[TrainingExample]]:
        """The accepted runs of the teacher, as chat examples per predictor name."""
        program = (teacher or student).deepcopy()
        names = [n for n, _ in student.named_predictors()]
        if sorted(n for n, _ in program.named_predictors()) != sorted(names):
            raise ValueError(f"the teacher's predictors {[n for n, _ in program.named_predictors()]} are not the "
                             f"student's {names}: a teacher must be the same program (other prompts or LMs)")
        boot = Bootstrapper(run, self.metric, metric_threshold=self.metric_threshold, teacher_settings=None,
                            store=store, key="boot")
        latest: dict[str, list[Example]] = {}

        def progress(found: dict[str, list[Example]], used: set[int], attempted: int) -> None:
            latest.update({n: list(d) for n, d in found.items()})
            run.done = attempted - 1
            run.step(f"{len(used)}/{self.max_examples} passing runs")
            run.check_errors(self.max_errors)

        try:
            found, _ = boot.collect(program, rows, self.max_examples, 1, progress)
        except BudgetExhausted as exc:
            run.stopped, found = exc.reason, latest
            if not any(latest.values()):
                raise
        rendered = build(student, shape)
        predictors = dict(rendered.named_predictors())
        examples = {name: [_example(predictors[name], d) for d in found.get(name, [])] for name in names}
        run.notes["finetune"] = {"examples": {n: len(e) for n, e in examples.items()}, "demos_kept": False}
        if not any(examples.values()):
            failed = f" ({run.failures} runs failed; first errors: {run.errors})" if run.failures else ""
            raise EvaluationError(
                f"BootstrapFinetune: no run of the teacher passed the metric on the {len(rows)} training rows{failed}, "
                "so there is nothing to train on. Lower metric_threshold, give more training rows, or give a "
                "stronger teacher (teacher=a prompt-compiled program, or one on a bigger model)")
        return examples

    def _teacher_note(self, run: CompileRun, student: Module, teacher: Module, scored: list[list[float]] | str,
                      valset: Sequence[Example] | None, *, kept: bool) -> dict[str, Any]:
        """The teacher scored on the valset rows the fine-tuned program was, and the paired comparison of
        the two. A teacher that wins beyond noise is also a warning: the weights lost to a prompt."""
        if isinstance(scored, str):
            return {"score": None, "rows": 0, "beats_fine_tuned": None, "reason": f"not scored: {scored}"}
        same = same_program(teacher, student)
        found = [scored[0]] if same else valset_scores(run, self.metric, [teacher], valset)
        if isinstance(found, str):
            return {"score": None, "rows": 0, "beats_fine_tuned": None, "reason": f"not scored: {found}"}
        decision = decide(scored[1], found[0], seed=self.seed)
        beats = decision.kept == "winner"
        if beats and not same:
            returned = "the fine-tuned program is returned" if kept else "the student is returned"
            warnings.warn(
                f"BootstrapFinetune: the teacher scores {decision.winner:.1f} on the {decision.rows} valset rows, "
                f"beyond noise above the fine-tuned program's {decision.baseline:.1f} (difference "
                f"{decision.difference:+.1f} points, interval [{decision.interval[0]:+.1f}, "
                f"{decision.interval[1]:+.1f}]), and {returned}. Use the teacher, or compile with "
                "lmbridge.BetterTogether(prompt_optimizer, BootstrapFinetune(...)), which keeps the better stage",
                RuntimeWarning, stacklevel=3)
        return {"score": round(decision.winner, 2), "rows": decision.rows, "beats_fine_tuned": beats,
                "fine_tuned_score": round(decision.baseline, 2), "difference": round(decision.difference, 2),
                "interval": [round(x, 2) for x in decision.interval], "same_as_student": same}

    def _train(self, run: CompileRun, groups: Mapping[str, tuple[BaseLM, WeightTrainer, list[str]]],
               examples: Mapping[str, list[TrainingExample]], store: Checkpoint) -> dict[str, BaseLM]:
        """One trainer call per group; the fine-tuned LM of each predictor that had examples."""
        tuned: dict[str, BaseLM] = {}
        report: list[dict[str, Any]] = []
        for key, (lm, trainer, names) in groups.items():
            learned = [n for n in names if examples.get(n)]
            if not learned:
                continue
            chats = [e for n in learned for e in examples[n]]
            display = _TrainingDisplay(f"BootstrapFinetune training {', '.join(learned)} ({trainer.name})",
                                       self.display_progress)
            start = time.perf_counter()
            try:
                new_lm = trainer.train(lm, chats, seed=self.seed, checkpoint=_StoreCheckpoint(store, key),
                                       on_progress=display)
            finally:
                display.close()
            tuned.update(dict.fromkeys(learned, new_lm))
            last = display.last
            stepped = last is not None and last.status == "training"  # a provider reports job states, not steps
            report.append({"predictors": learned, "trainer": trainer.name, "base_model": lm.model,
                           "model": new_lm.model, "examples": len(chats),
                           "steps": last.total if stepped and last is not None else None,
                           "loss": last.loss if last is not None else None,
                           "wall_time": round(time.perf_counter() - start, 3)})
        run.notes["finetune"] = {**run.notes.get("finetune", {}), "training": report,
                                 "untrained": [n for _, _, names in groups.values() for n in names if n not in tuned]}
        return tuned


def _train_key(lm: BaseLM, trainer: WeightTrainer, names: list[str]) -> str:
    """The checkpoint key of one training call: its base model, trainer settings and predictors, so a
    changed trainer (other steps, another provider) never resumes the record of another."""
    blob = json.dumps([lm.model, _describe(trainer), names], sort_keys=True, default=str)
    return "train:" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def _example(predictor: Predict, demo: Example) -> TrainingExample:
    sig = predictor.signature
    inputs = {n: demo[n] for n in sig.input_fields}
    outputs = {n: demo[n] for n in sig.output_fields if n in demo}
    return training_example(predictor, inputs, outputs)


def _with_lms(program: Module, lms: Mapping[str, BaseLM]) -> Module:
    """``program`` (a fresh copy) with the named predictors on their fine-tuned LMs."""
    for name, p in program.named_predictors():
        if name in lms:
            p.lm = lms[name]
    return program
