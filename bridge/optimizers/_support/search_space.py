"""The space MIPROv2 searches, and the optuna study that holds a search.

A point in the space is one integer per dimension: per predictor an instruction index and a
demo-set index, and for the whole program one prompt-format index and one field-label index (the
labels the prompt writes before each field, "Text / Label" or "Question / Type", proposed by
``field_labels``), and one per searched setting of a tunable module (a RAG module's ``k``, retriever
and query rewrite, ``"<predictor>.<setting>"``). Index 0 of each dimension is the
student as it is (original instruction, no demos, its own format), so the default point is the
baseline.

``StudyCheckpoint`` keeps a compile's finished setup work (bootstrapped demo sets, proposals, full
evaluations) in the study's user attributes, next to the trials, so one database holds everything
a restarted or a second worker process needs.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from lmbridge.errors import MissingDependencyError
from lmbridge.formats import ChatFormat, JSONFormat, PromptFormat, TextFormat
from lmbridge.optimizers._support.shared_study import storage_options
from lmbridge.optimizers._support.state import PredictorState, ProgramState

WORKER = f"{socket.gethostname()}:{os.getpid()}"
"""This process, as recorded on the trials it runs."""


def default_formats() -> list[PromptFormat]:
    """Prompt forms worth trying on small models: demos as turns or inline, instructions as a user or
    a system message, JSON, the raw completion endpoint with demos as plain text blocks (what base
    models need), and, for a Literal/bool output, label scoring with contextual calibration on the
    chat and the raw endpoints (MIPROv2 drops those two for other outputs). Constrained decoding is
    on in all of them (``ChatFormat(constrained=False)`` is the unconstrained choice)."""
    return [ChatFormat(), ChatFormat(demos="inline"), ChatFormat(instructions="system"), JSONFormat(),
            TextFormat(), ChatFormat(scoring="calibrated"), TextFormat(scoring="calibrated")]


_INPUT_NOUNS = ("question", "review", "sentence", "message", "email", "document", "passage", "tweet", "utterance",
                "query", "comment", "headline", "article")
_OUTPUT_NOUNS = (("sentiment", "Sentiment"), ("topic", "Topic"), ("categor", "Category"), ("intent", "Intent"),
                 ("kind", "Type"), ("type", "Type"), ("class", "Class"), ("label", "Label"))


def field_labels(base: Mapping[str, PredictorState], rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Field-label sets worth trying (field name -> label), the labels as given first (``{}``).

    For each predictor with one input and one output field: the input is named by a noun of the
    task's instruction ("review", "question", ...), else "Question" when most training inputs end
    with "?", else "Input"; the output by a noun of the instruction ("sentiment", "kind" -> "Type",
    ...) and, as a second set, "Answer". A set equal to the labels as given is left out."""
    derived: dict[str, str] = {}
    answer: dict[str, str] = {}
    for s in base.values():
        sig = s.signature
        if len(sig.input_fields) != 1 or len(sig.output_fields) != 1:
            continue
        (iname, ifield), (oname, ofield) = next(iter(sig.input_fields.items())), next(iter(sig.output_fields.items()))
        task = sig.instructions.lower()
        values = [str(r[iname]).rstrip() for r in rows if iname in r]
        asks = bool(values) and 2 * sum(v.endswith("?") for v in values) >= len(values)
        noun = next((w.capitalize() for w in _INPUT_NOUNS if w in task), "Question" if asks else "Input")
        out = next((label for w, label in _OUTPUT_NOUNS if w in task), "Answer")
        current = {iname: ifield.label, oname: ofield.label}
        for target, labels in ((derived, {iname: noun, oname: out}), (answer, {iname: noun, oname: "Answer"})):
            if labels != current:
                target.update(labels)
    sets: list[dict[str, str]] = [{}]
    for labels in (derived, answer):
        if labels and labels not in sets:
            sets.append(labels)
    return sets


def usable_formats(formats: Sequence[PromptFormat | None], label_output: bool) -> list[PromptFormat | None]:
    """The formats that differ for this program: scoring choices only where an output is a label."""
    return [f for f in formats if label_output or f is None or f.scoring == "generate"]


class SearchSpace:
    """Instructions and demo sets per predictor, and prompt formats, as integer dimensions."""

    def __init__(self, base: ProgramState, instructions: Mapping[str, Sequence[str]],
                 demo_sets: Sequence[ProgramState], formats: Sequence[PromptFormat | None],
                 labels: Sequence[Mapping[str, str]] = (),
                 settings: Mapping[str, Mapping[str, Sequence[Any]]] | None = None) -> None:
        self.base = dict(base)
        self.settings = {n: {k: list(v) for k, v in opts.items()} for n, opts in (settings or {}).items()}
        """Per predictor that carries a tunable module's settings: each searched setting's values."""
        self.instructions = {k: list(v) for k, v in instructions.items()}
        self.demo_sets = list(demo_sets)
        self.formats = list(formats) or [None]
        self.labels = [dict(x) for x in labels] or [{}]
        self.balanced: int | None = None
        """The index of the class-balanced labelled demo set, when the space has one (seeded recipes)."""
        self.extractive: dict[str, int] | None = None
        """The seeded recipe for an extractive answer, when the program has one (see ``MIPROv2``)."""

    def dims(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for name in self.base:
            out.append((f"{name}.instruction", len(self.instructions.get(name, [""]))))
            out.append((f"{name}.demos", max(1, len(self.demo_sets))))
        out.append(("format", len(self.formats)))
        out.append(("labels", len(self.labels)))
        out += [(f"{name}.{setting}", len(values)) for name, opts in self.settings.items()
                for setting, values in opts.items()]
        return [(d, n) for d, n in out if n > 1]

    def _settings(self, name: str, choice: Mapping[str, int]) -> dict[str, Any]:
        return {setting: values[choice.get(f"{name}.{setting}", 0)]
                for setting, values in self.settings.get(name, {}).items()}

    def default(self) -> dict[str, int]:
        return {d: 0 for d, _ in self.dims()}

    def state(self, choice: Mapping[str, int]) -> ProgramState:
        out: ProgramState = {}
        fmt = self.formats[choice.get("format", 0)]
        labels = self.labels[choice.get("labels", 0)]
        for name, s in self.base.items():
            new: PredictorState = s.with_labels(labels)
            options = self.instructions.get(name)
            if options:
                new = new.with_instructions(options[choice.get(f"{name}.instruction", 0)])
            if self.demo_sets:
                new = new.with_demos(self.demo_sets[choice.get(f"{name}.demos", 0)][name].demos)
            if fmt is not None:
                new = new.with_format(fmt)
            if name in self.settings:
                new = new.with_settings(self._settings(name, choice))
            out[name] = new
        return out

    def describe(self, choice: Mapping[str, int]) -> dict[str, Any]:
        """The choice with its meaning, for the report."""
        out: dict[str, Any] = {"choice": dict(choice)}
        for name in self.base:
            options = self.instructions.get(name)
            if options:
                out[f"{name}.instruction"] = options[choice.get(f"{name}.instruction", 0)][:200]
            if self.demo_sets:
                out[f"{name}.demos"] = len(self.demo_sets[choice.get(f"{name}.demos", 0)][name].demos)
        fmt = self.formats[choice.get("format", 0)]
        out["format"] = "as given" if fmt is None else fmt.to_state()
        if len(self.labels) > 1:
            out["labels"] = self.labels[choice.get("labels", 0)] or "as given"
        for name in self.settings:
            out[f"{name}.settings"] = self._settings(name, choice)
        return out


def key(choice: Mapping[str, int]) -> str:
    return json.dumps(dict(choice), sort_keys=True)


def optuna_module() -> Any:
    try:
        import optuna  # optional and heavy (lmbridge[optuna]): imported only when a search runs
    except ImportError as exc:
        raise MissingDependencyError("optuna", "optuna") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class StudyCheckpoint:
    """``get`` / ``put`` of JSON values in an optuna study's user attributes."""

    def __init__(self, study: Any) -> None:
        self.study = study
        self._seen: dict[str, Any] = dict(study.user_attrs)
        self.resumed = any(k.startswith(("demos:", "proposer:", "full:")) for k in self._seen)

    def get(self, name: str) -> Any:
        if name not in self._seen:
            self._seen = dict(self.study.user_attrs)
        return self._seen.get(name)

    def refresh(self) -> dict[str, Any]:
        self._seen = dict(self.study.user_attrs)
        return dict(self._seen)

    def put(self, name: str, value: Any) -> None:
        self.study.set_user_attr(name, value)
        self._seen[name] = value


def open_study(storage: str | None, name: str, seed: int) -> tuple[Any, bool]:
    """The study ``name`` in ``storage`` (an RDB URL, or None for memory), and whether this process
    created it. The TPE sampler's seed moves past the trials already in the study, so a resumed
    search does not propose the same points again."""
    optuna = optuna_module()
    rdb = None
    if storage is not None:
        kwargs: dict[str, Any] = {}
        if storage.startswith("sqlite"):
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks the heartbeat experimental
            rdb = _storage(optuna, storage, {**kwargs, **storage_options(optuna)})
    try:
        study = optuna.create_study(storage=rdb, study_name=name, direction="maximize", load_if_exists=False)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=rdb)
        created = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=rdb is not None)
    return study, created


def _storage(optuna: Any, url: str, kwargs: dict[str, Any]) -> Any:
    """The RDB storage; two workers creating a new database at once may collide on its schema, so
    the loser tries again once the winner has made it."""
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception:
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")
