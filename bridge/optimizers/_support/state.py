"""Candidate programs as plain state: per predictor, its signature (instructions), demos and format.

An optimizer searches over states, not over live programs. ``build`` turns a state into a new
program by copying the student and setting each predictor's state, so the program an optimizer
returns never carries the metered LMs used during the search, and the student is never touched.
Demos and formats also convert to and from JSON, for checkpoints.

A module with searchable settings of its own (``Tunable``: a RAG module's ``k``, retriever and query
rewrite) has them carried in the state of its first predictor (``PredictorState.settings``), so every
optimizer passes them along unchanged and a search can vary them like any other dimension; one with
no predictor of its own (the retriever ``k`` of a compiled chain or engine) by the program's first
predictor that carries no other module's settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

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
    settings: tuple[tuple[str, Any], ...] = ()
    """The settings of the ``Tunable`` module this predictor is the first predictor of, as (name,
    value) pairs in the module's order; empty for every other predictor."""

    def with_settings(self, values: Mapping[str, Any]) -> PredictorState:
        """The same state with some of its module's settings changed."""
        merged = {**dict(self.settings), **values}
        return replace(self, settings=tuple(merged.items()))

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


@runtime_checkable
class Tunable(Protocol):
    """A module with settings an optimizer may search (``lmbridge.RAG``)."""

    def settings(self) -> dict[str, Any]: ...

    def setting_options(self) -> dict[str, list[Any]]: ...

    def apply_settings(self, values: Mapping[str, Any]) -> None: ...


def tunables(program: Module) -> dict[str, Tunable]:
    """The predictor path that carries each tunable module's settings -> that module."""
    modules: list[tuple[str, Any]] = [("", program), *program.named_modules()]
    names = [name for name, _ in program.named_predictors()]
    out: dict[str, Tunable] = {}
    loose: list[Tunable] = []
    for path, module in modules:
        if isinstance(module, Tunable) and not isinstance(module, type):
            first = next((n for n in names if not path or n.startswith(path + ".")), None)
            if first is not None and first not in out:
                out[first] = module
            elif first is None:
                loose.append(module)
    for module in loose:  # no predictor of its own (an adapter's retriever k): the first free predictor carries it
        free = next((n for n in names if n not in out), None)
        if free is not None:
            out[free] = module
    return out


def setting_options(program: Module) -> dict[str, dict[str, list[Any]]]:
    """Per carrying predictor, the values each searched setting may take (the current one first)."""
    return {name: opts for name, m in tunables(program).items() if (opts := m.setting_options())}


def snapshot(program: Module) -> ProgramState:
    """The current state of every predictor of ``program``."""
    owners = tunables(program)
    return {name: PredictorState(p.signature, tuple(p.demos), p.format,
                                 tuple(owners[name].settings().items()) if name in owners else ())
            for name, p in program.named_predictors()}


def build(student: Module, state: Mapping[str, PredictorState]) -> Module:
    """A copy of ``student`` with ``state`` applied to its predictors (and their modules' settings)."""
    program = student.deepcopy()
    program.report = None
    owners = tunables(program)
    for name, p in program.named_predictors():
        s = state.get(name)
        if s is None:
            continue
        p.signature = s.signature
        p.demos = [d.copy() for d in s.demos]
        p.format = s.format
        if s.settings and name in owners:
            owners[name].apply_settings(dict(s.settings))
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
                   "format": format_to_json(s.format), "labels": s.labels(),
                   **({"settings": dict(s.settings)} if s.settings else {})} for name, s in state.items()}
