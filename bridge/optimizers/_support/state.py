"""Candidate programs as plain state: per predictor, its signature (instructions), demos and format.

An optimizer searches over states, not over live programs. ``build`` turns a state into a new
program by copying the student and setting each predictor's state, so the program an optimizer
returns never carries the metered LMs used during the search, and the student is never touched.
Demos and formats also convert to and from JSON, for checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lmbridge.formats import PromptFormat, format_from_state
from lmbridge.programs import Module
from lmbridge.signatures import Signature, to_jsonable
from lmbridge.types import Example


@dataclass(frozen=True)
class PredictorState:
    """What an optimizer may change in one Predict."""

    signature: type[Signature]
    """The predictor's signature; the instructions live on it."""
    demos: tuple[Example, ...] = ()
    format: PromptFormat | None = None
    """The prompt format; None keeps the settings' format."""

    def with_demos(self, demos: Sequence[Example]) -> PredictorState:
        return replace(self, demos=tuple(demos))

    def with_instructions(self, text: str) -> PredictorState:
        return replace(self, signature=self.signature.with_instructions(text))

    def with_format(self, fmt: PromptFormat | None) -> PredictorState:
        return replace(self, format=fmt)

    def with_labels(self, labels: Mapping[str, str]) -> PredictorState:
        """The same state with the prompt labels of the named fields changed (others left as they are)."""
        signature = self.signature
        for name, label in labels.items():
            if name in signature.fields():
                signature = signature.with_updated_field(name, prefix=label)
        return self if signature is self.signature else replace(self, signature=signature)

    def labels(self) -> dict[str, str]:
        """The label each field is written with in the prompt."""
        return {name: f.label for name, f in self.signature.fields().items()}


ProgramState = dict[str, PredictorState]


def snapshot(program: Module) -> ProgramState:
    """The current state of every predictor of ``program``."""
    return {name: PredictorState(p.signature, tuple(p.demos), p.format)
            for name, p in program.named_predictors()}


def build(student: Module, state: Mapping[str, PredictorState]) -> Module:
    """A copy of ``student`` with ``state`` applied to its predictors."""
    program = student.deepcopy()
    program.report = None
    for name, p in program.named_predictors():
        s = state.get(name)
        if s is None:
            continue
        p.signature = s.signature
        p.demos = [d.copy() for d in s.demos]
        p.format = s.format
    return program


def demos_to_json(demos: Sequence[Example]) -> list[dict[str, Any]]:
    out = []
    for d in demos:
        row: dict[str, Any] = {k: to_jsonable(v) for k, v in d.items()}
        if d.input_keys is not None:
            row["__inputs__"] = list(d.input_keys)
        out.append(row)
    return out


def demos_from_json(rows: Sequence[Mapping[str, Any]]) -> list[Example]:
    out = []
    for row in rows:
        keys = row.get("__inputs__")
        example = Example({k: v for k, v in row.items() if k != "__inputs__"})
        out.append(example.with_inputs(*keys) if isinstance(keys, list) else example)
    return out


def format_to_json(fmt: PromptFormat | None) -> dict[str, Any] | None:
    return None if fmt is None else fmt.to_state()


def format_from_json(state: Mapping[str, Any] | None) -> PromptFormat | None:
    return None if state is None else format_from_state(state)


def describe_state(state: Mapping[str, PredictorState]) -> dict[str, Any]:
    """A short JSON-able summary of a candidate, for reports."""
    return {name: {"instructions": s.signature.instructions[:200], "demos": len(s.demos),
                   "format": format_to_json(s.format), "labels": s.labels()} for name, s in state.items()}
