"""Extractive outputs: an answer that must be a span, copied word for word, of an input's passages.

An output field declared with ``OutputField(extract_from="context")`` names the input it copies
from (a text, or a list of passages). ``passages_of`` reads that input for one call, refusing an
empty one; ``check_spans`` checks parsed answers against it. The check never changes an answer: an
answer that is not a span is a ``ParseError`` (the model is asked once more, then the example
counts as failed), so a value the passages do not hold is never returned. The embedded model
decodes these fields under a grammar that allows only spans (``lmbridge.formats``), so the check
passes there by construction; it is what keeps other LMs honest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lmbridge.errors import InputError, ParseError
from lmbridge.signatures._spec import Field

_EDGE = re.compile(r"^[\s\"'`.,;:!?()\[\]]+|[\s\"'`.,;:!?()\[\]]+$")
_SPACE = re.compile(r"\s+")


def extractive_fields(signature: Any) -> dict[str, Field]:
    """The output fields of ``signature`` that copy from an input, by name."""
    return {n: f for n, f in signature.output_fields.items() if f.extract_from is not None}


def passages_of(signature: Any, inputs: Mapping[str, Any], field: Field) -> list[str]:
    """The passages ``field`` copies from, for these inputs; an InputError when there are none."""
    source = field.extract_from or ""
    value = inputs.get(source)
    texts = [value] if isinstance(value, str) else [str(v) for v in value or ()]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise InputError(f"{signature.__name__}: output {field.name!r} is copied from input {source!r}, "
                         "which holds no passage to copy from (retrieve at least one passage first)")
    return texts


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).casefold()


def is_span(answer: str, passages: list[str]) -> bool:
    """Whether ``answer`` (its surrounding quotes, punctuation and spaces aside, and whitespace and case
    read loosely) is written in one of ``passages``. An empty answer is not a span."""
    core = _norm(_EDGE.sub("", answer))
    return bool(core) and any(core in _norm(p) for p in passages)


def check_spans(signature: Any, inputs: Mapping[str, Any], values: Mapping[str, Any], completion: str) -> None:
    """Raise ParseError when an extractive output of ``values`` is not a span of its passages."""
    for name, field in extractive_fields(signature).items():
        answer = values.get(name)
        if not isinstance(answer, str) or not is_span(answer, passages_of(signature, inputs, field)):
            raise ParseError(f"{field.label} {answer!r} is not copied from the {field.extract_from}: answer with "
                             f"words written in the {field.extract_from}", completion=completion, field=name)
