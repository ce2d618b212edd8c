"""Ensemble: several programs behind one, their answers combined by a reduce function.

``Ensemble(reduce_fn=majority).compile([p1, p2, p3])`` returns a program that runs each program
(or ``size`` of them, drawn at random per call, or with a fixed seed when ``deterministic``) and
passes the list of predictions to ``reduce_fn``. Without ``reduce_fn`` the program returns the list.
``majority`` keeps the prediction whose value of one field is most common.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lmbridge.metrics import normalize_text
from lmbridge.programs import Module
from lmbridge.types import Prediction

Reduce = Callable[[list[Prediction]], Any]


def majority(predictions: Sequence[Prediction], field: str | None = None) -> Prediction:
    """The prediction whose ``field`` (by default the last field) is the most common value after
    normalisation; ties go to the earliest. The vote counts go in the ``usage`` of none: a plain
    copy of the winner is returned."""
    if not predictions:
        raise ValueError("majority() needs at least one prediction")
    name = field or list(predictions[0])[-1]
    votes = Counter(normalize_text(str(p.get(name, ""))) for p in predictions)
    top = max(votes.values())
    for p in predictions:
        if votes[normalize_text(str(p.get(name, "")))] == top:
            return p.copy()
    raise AssertionError("unreachable")


class EnsembledProgram(Module):
    def __init__(self, programs: Sequence[Module], reduce_fn: Reduce | None, size: int | None,
                 deterministic: bool, seed: int) -> None:
        self.programs = list(programs)
        self._reduce_fn = reduce_fn
        self._size = size
        self._rng = random.Random(seed) if deterministic else random.Random()
        self._deterministic = deterministic
        self._seed = seed

    def _chosen(self) -> list[Module]:
        if self._size is None or self._size >= len(self.programs):
            return self.programs
        rng = random.Random(self._seed) if self._deterministic else self._rng
        return rng.sample(self.programs, self._size)

    def forward(self, **inputs: Any) -> Any:
        outputs = [program(**inputs) for program in self._chosen()]
        return self._reduce_fn(outputs) if self._reduce_fn is not None else outputs


class Ensemble:
    """Combine programs into one (see the module docstring). It calls no model to compile."""

    def __init__(self, *, reduce_fn: Reduce | None = None, size: int | None = None,
                 deterministic: bool = False, seed: int = 0) -> None:
        if size is not None and size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.reduce_fn = reduce_fn
        self.size = size
        self.deterministic = deterministic
        self.seed = seed

    def compile(self, programs: Sequence[Module]) -> EnsembledProgram:
        if not programs:
            raise ValueError("Ensemble.compile needs at least one program")
        program = EnsembledProgram([p.deepcopy() for p in programs], self.reduce_fn, self.size,
                                   self.deterministic, self.seed)
        program.report = {"optimizer": "Ensemble", "programs": len(programs), "size": self.size,
                          "reduce_fn": getattr(self.reduce_fn, "__name__", None), "lm_calls": 0,
                          "wall_time": 0.0, "stopped_early": None}
        return program
