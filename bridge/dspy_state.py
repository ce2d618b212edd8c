"""DSPy's saved programs in: the instructions and demos of a file written by DSPy's ``program.save(path)``
(JSON) applied to the same program written with lmbridge.

    qa = lmbridge.from_dspy_state(MyRAG(), "dspy_rag.json")     # a new program; MyRAG() is untouched
    qa.save("rag.json")                                           # an lmbridge file from now on

A DSPy file holds, per predictor (``"generate_answer.predict"``, or ``"self"`` for a bare Predict),
``{"signature": {"instructions": ..., "fields": [...]}, "demos": [...], "lm": ..., ...}`` and a
``"metadata"`` entry with the versions that wrote it. lmbridge names its predictors the way DSPy
does, so each predictor takes the entry of its own name. What is carried: the instructions, and the
demos with the fields of the lmbridge signature (DSPy's bookkeeping keys such as ``augmented`` are
left out). What is not: DSPy's field prefixes and descriptions (the lmbridge signature keeps its
own), the LM, traces. A file that does not fit (a predictor missing on either side, a demo with none
of the predictor's fields) raises ``StateError`` naming the problem, and changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lmbridge.errors import StateError
from lmbridge.programs import Module, apply_state, program_state, read_state

DSPY_KEYS = ("signature", "demos")
"""The keys that make a predictor entry a DSPy one."""


def is_dspy_state(state: Any) -> bool:
    """Whether ``state`` (a parsed JSON file) was written by DSPy's ``save``: no lmbridge format marker,
    and DSPy's ``metadata`` or at least one predictor entry with a ``signature`` and ``demos``."""
    if not isinstance(state, Mapping) or "format" in state:
        return False
    versions = state.get("metadata", {}).get("dependency_versions", {}) if isinstance(state.get("metadata"),
                                                                                      Mapping) else {}
    return "dspy" in versions or any(isinstance(v, Mapping) and all(k in v for k in DSPY_KEYS) for v in state.values())


def convert_dspy_state(state: Mapping[str, Any], program: Module) -> dict[str, Any]:
    """The lmbridge state (``program.save``'s JSON) of ``program`` with the instructions and demos of
    the DSPy state ``state``. ``program`` gives the field names and types, and is not changed."""
    if not is_dspy_state(state):
        raise StateError("not a DSPy program file: expected DSPy's save() JSON, predictors with 'signature' "
                         "and 'demos'")
    entries = {name: entry for name, entry in state.items() if name != "metadata"}
    converted = program_state(program)
    mine = converted["predictors"]
    if set(entries) != set(mine):
        missing, extra = sorted(set(mine) - set(entries)), sorted(set(entries) - set(mine))
        raise StateError(f"the DSPy file does not fit {type(program).__name__}: it lacks predictors {missing} and "
                         f"has predictors {extra} the program does not (lmbridge names predictors as DSPy does: "
                         "the attribute path, '.predict' inside a ChainOfThought, 'self' for a bare Predict)")
    for name, entry in entries.items():
        mine[name]["instructions"] = _instructions(name, entry)
        mine[name]["demos"] = [_demo(name, i, d, mine[name]["fields"]) for i, d in enumerate(_demos(name, entry))]
    converted["report"] = None
    return converted


def from_dspy_state(program: Module, source: str | Path | Mapping[str, Any]) -> Module:
    """A copy of ``program`` with the instructions and demos of a DSPy-saved file (a path, or its
    parsed JSON). Raises ``StateError`` when the file does not fit."""
    state = read_state(source) if isinstance(source, str | Path) else source
    new = copy.deepcopy(program)
    apply_state(new, convert_dspy_state(state, program))
    return new


def _instructions(name: str, entry: Any) -> str:
    signature = entry.get("signature") if isinstance(entry, Mapping) else None
    instructions = signature.get("instructions") if isinstance(signature, Mapping) else None
    if not isinstance(instructions, str):
        raise StateError(f"DSPy predictor {name!r}: no 'signature.instructions' string")
    return instructions


def _demos(name: str, entry: Mapping[str, Any]) -> list[Any]:
    demos = entry.get("demos")
    if not isinstance(demos, list):
        raise StateError(f"DSPy predictor {name!r}: 'demos' is not a list")
    return demos


def _demo(name: str, index: int, demo: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(demo, Mapping):
        raise StateError(f"DSPy predictor {name!r}: demo {index} is not an object")
    kept = {k: v for k, v in demo.items() if k in fields}
    if not kept:
        raise StateError(f"DSPy predictor {name!r}: demo {index} has none of the fields {list(fields)} "
                         f"(it has {sorted(demo)}): the lmbridge signature's field names must be DSPy's")
    return kept


__all__ = ["DSPY_KEYS", "convert_dspy_state", "from_dspy_state", "is_dspy_state"]
