"""The space MIPROv2 searches, and the optuna study that holds a search.

A point in the space is one integer per dimension: per predictor an instruction index and a demo-set
index, and one prompt-format index for the whole program. Index 0 of each dimension is the
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
from collections.abc import Mapping, Sequence
from typing import Any

from lmbridge.errors import MissingDependencyError
from lmbridge.formats import ChatFormat, JSONFormat, PromptFormat, TextFormat
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


def usable_formats(formats: Sequence[PromptFormat | None], label_output: bool) -> list[PromptFormat | None]:
    """The formats that differ for this program: scoring choices only where an output is a label."""
    return [f for f in formats if label_output or f is None or f.scoring == "generate"]


class SearchSpace:
    """Instructions and demo sets per predictor, and prompt formats, as integer dimensions."""

    def __init__(self, base: ProgramState, instructions: Mapping[str, Sequence[str]],
                 demo_sets: Sequence[ProgramState], formats: Sequence[PromptFormat | None]) -> None:
        self.base = dict(base)
        self.instructions = {k: list(v) for k, v in instructions.items()}
        self.demo_sets = list(demo_sets)
        self.formats = list(formats) or [None]

    def dims(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for name in self.base:
            out.append((f"{name}.instruction", len(self.instructions.get(name, [""]))))
            out.append((f"{name}.demos", max(1, len(self.demo_sets))))
        out.append(("format", len(self.formats)))
        return [(d, n) for d, n in out if n > 1]

    def default(self) -> dict[str, int]:
        return {d: 0 for d, _ in self.dims()}

    def state(self, choice: Mapping[str, int]) -> ProgramState:
        out: ProgramState = {}
        fmt = self.formats[choice.get("format", 0)]
        for name, s in self.base.items():
            new: PredictorState = s
            options = self.instructions.get(name)
            if options:
                new = new.with_instructions(options[choice.get(f"{name}.instruction", 0)])
            if self.demo_sets:
                new = new.with_demos(self.demo_sets[choice.get(f"{name}.demos", 0)][name].demos)
            if fmt is not None:
                new = new.with_format(fmt)
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
        return out


def key(choice: Mapping[str, int]) -> str:
    return json.dumps(dict(choice), sort_keys=True)


def optuna_module() -> Any:
    try:
        import optuna
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
        import warnings

        from lmbridge.optimizers._support.shared_study import storage_options

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks the heartbeat experimental
            rdb = _storage(optuna, storage, {**kwargs, **storage_options(optuna)})
    try:
        study = optuna.create_study(storage=rdb, study_name=name, direction="maximize", load_if_exists=False)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=rdb)
        created = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=rdb is not None)
    return study, created


def _storage(optuna: Any, url: str, kwargs: dict[str, Any]) -> Any:
    """The RDB storage; two workers creating a new database at once may collide on its schema, so
    the loser tries again once the winner has made it."""
    import time

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception:
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")
