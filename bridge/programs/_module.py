"""Module: the base of every program. A program is plain Python: a Module whose attributes are
Predicts and other Modules, with a ``forward`` that calls them.

The base class finds the predictors (``named_predictors``), copies a program (``deepcopy``),
saves and loads its state, and gives each call's Prediction the usage of everything it ran.
``Learnable`` marks the one learnable unit (Predict inherits it), so Module finds predictors
without importing Predict.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from lmbridge.programs._persistence import apply_state, load, program_state, save
from lmbridge.tracing import start_run, track_usage
from lmbridge.types import Prediction

if TYPE_CHECKING:
    from lmbridge.programs._predict import Predict


class Module:
    """Subclass it and write ``forward(self, **inputs) -> Prediction``; ``aforward`` for native async."""

    report: dict[str, Any] | None = None
    """The compile report, set by an optimizer on the program it returns, and saved with it."""
    state_section: ClassVar[str | None] = None
    """A module with settings of its own (Retrieve's ``k``) saves them, by path, in this section of
    the program file; None (the default) saves nothing beyond its predictors."""

    def own_state(self) -> dict[str, Any]:
        """This module's own settings to save in ``state_section`` (the base has none)."""
        return {}

    def check_own_state(self, name: str, entry: Any) -> Callable[[], None]:
        """Check ``entry`` (what ``own_state`` saved for the module at path ``name``), raising
        StateError when it does not fit; return what applies it, run only once every part of the
        file has been checked."""
        raise NotImplementedError(f"{type(self).__name__} saves no state of its own")

    def forward(self, **inputs: Any) -> Prediction:
        raise NotImplementedError(f"{type(self).__name__} must define forward(**inputs)")

    async def aforward(self, **inputs: Any) -> Prediction:
        """Default async path: ``forward`` on a worker thread (which sees this task's settings)."""
        return await asyncio.to_thread(self.forward, **inputs)

    # Sync and async differ only in the await. With no callback watching modules, ``start_run``
    # returns the no-op scope, so an untraced call costs one settings read.
    def __call__(self, **inputs: Any) -> Prediction:
        with start_run("module", type(self).__name__, inputs) as run, track_usage() as tracker:
            prediction = self.forward(**inputs)
            if isinstance(prediction, Prediction):
                prediction.usage = tracker.usage
            run.end(prediction)
        return prediction

    async def acall(self, **inputs: Any) -> Prediction:
        with start_run("module", type(self).__name__, inputs) as run, track_usage() as tracker:
            prediction = await self.aforward(**inputs)
            if isinstance(prediction, Prediction):
                prediction.usage = tracker.usage
            run.end(prediction)
        return prediction

    # -- structure -----------------------------------------------------------------------------
    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Every Predict in the program, with a dotted path name (``"generate.predict"``)."""
        found = [(path, cast("Predict", m)) for path, m in _walk(self, "", set(), False) if isinstance(m, Learnable)]
        if not found and isinstance(self, Learnable):
            found.append(("self", cast("Predict", self)))
        return found

    def named_modules(self) -> list[tuple[str, Module]]:
        """Every sub-module of the program (predictors, ``Retrieve`` and others), with a dotted path
        name, each once, parents before their children."""
        return list(_walk(self, "", set(), True))

    def predictors(self) -> list[Predict]:
        return [p for _, p in self.named_predictors()]

    def deepcopy(self) -> Module:
        """A full copy; LMs are shared, not copied."""
        return copy.deepcopy(self)

    def reset_copy(self) -> Module:
        """A copy with every predictor's demos cleared."""
        new = self.deepcopy()
        for p in new.predictors():
            p.demos = []
        return new

    # -- persistence ---------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        return program_state(self)

    def load_state(self, state: dict[str, Any]) -> Module:
        apply_state(self, state)
        return self

    def save(self, path: str | Path) -> None:
        """Write the program's state (instructions, demos, fields, report) to a JSON file."""
        save(self, path)

    def load(self, path: str | Path) -> Module:
        """Read state saved by ``save`` into this program. Never runs code."""
        load(self, path)
        return self


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Module):
        for name, child in vars(value).items():
            if not name.startswith("_"):
                yield name, child
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield str(i), child
    elif isinstance(value, dict):
        for key, child in value.items():
            yield str(key), child


class Learnable:
    """The mark of the one learnable unit: ``Predict`` inherits it, and ``named_predictors`` finds it."""


def _walk(value: Any, prefix: str, seen: set[int], into_learnables: bool) -> Iterator[tuple[str, Module]]:
    """The modules below ``value`` with their dotted paths, each once, parents first; with
    ``into_learnables`` false, what a learnable unit holds is not walked into."""
    for name, child in _children(value):
        if id(child) in seen or not isinstance(child, (Module, list, tuple, dict)):
            continue
        seen.add(id(child))
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, Module):
            yield path, child
        if into_learnables or not isinstance(child, Learnable):
            yield from _walk(child, path, seen, into_learnables)
