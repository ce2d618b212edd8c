"""``JSONFormat``: one JSON object with a key per output field.

The object is found in the completion by ``json_text.find_json`` (the first one wins; nothing is
mended), each value is checked against its field's type, and with ``constrained=True`` the answer
is constrained to the outputs' JSON schema (a llama.cpp grammar, or the provider's structured
output).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from lmbridge.errors import ParseError
from lmbridge.formats._base import FORMATS, DemoPlacement, InstructionRole, Scoring, _inputs_block, _PlacedFormat
from lmbridge.formats._constrain import Constraint, outputs_schema
from lmbridge.formats._partial import PartialOutputs, read_json_object
from lmbridge.formats._prior import Prior
from lmbridge.formats._slots import fill, late, unslotted
from lmbridge.signatures import Signature, coerce, describe_type, find_json, json_schema, to_jsonable, validate
from lmbridge.types import Message

_json_guides: WeakKeyDictionary[type[Signature], str] = WeakKeyDictionary()


class JSONFormat(_PlacedFormat):
    """One JSON object with a key per output field. Asks for the provider's JSON mode when the LM
    supports it (``response_format={"type": "json_object"}``)."""

    name = "json"

    def __init__(self, demos: DemoPlacement = "turns", instructions: InstructionRole = "system", *,
                 constrained: bool = True, scoring: Scoring = "generate",
                 prior: Prior | Mapping[str, Any] | None = None) -> None:
        super().__init__(demos, instructions, constrained, scoring, prior)

    def constraint(self, signature: type[Signature]) -> Constraint | None:
        return Constraint(schema=outputs_schema(signature)) if self.constrained else None

    def request_params(self, signature: type[Signature]) -> dict[str, Any]:
        return {"response_format": {"type": "json_object"}}

    def _guide(self, signature: type[Signature]) -> str:
        return _json_guide(signature)

    def format(self, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, Any]) -> list[Message]:
        guide = fill(self._guide(signature), signature, inputs)
        request = _inputs_block(signature, unslotted(signature, inputs))
        usable = [d for d in demos if all(n in d for n in signature.input_fields)]
        messages: list[Message] = []
        head = ""
        if self.instructions == "system":
            messages.append({"role": "system", "content": guide})
            request = request or _inputs_block(signature, inputs)  # a user message is never empty
        else:
            head = guide + "\n\n" if request else guide
        lead, last = late(signature, head)
        if self.demos == "inline" and usable:
            shown = "\n\n".join(f"{_inputs_block(signature, d)}\n{self.render_outputs(signature, d)}"
                                for d in usable)
            messages.append({"role": "user", "content": f"{lead}{shown}\n\n{last}{request}"})
            return messages
        for d in usable:
            messages.append({"role": "user", "content": lead + _inputs_block(signature, d)})
            messages.append({"role": "assistant", "content": self.render_outputs(signature, d)})
            lead = ""
        messages.append({"role": "user", "content": lead + last + request})
        return messages

    def partial(self, signature: type[Signature], text: str) -> PartialOutputs:
        return read_json_object(signature, text)

    def render_outputs(self, signature: type[Signature], values: Mapping[str, Any]) -> str:
        return json.dumps({n: to_jsonable(values[n]) for n in signature.output_fields if n in values},
                          ensure_ascii=False)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        obj = _find_object(text)
        lowered = {str(k).lower(): v for k, v in obj.items()}
        values: dict[str, Any] = {}
        for n, f in signature.output_fields.items():
            key = n if n in obj else n.lower() if n.lower() in lowered else f.label.lower()
            if key not in obj and key not in lowered:
                raise ParseError(f"the JSON object has no key {n!r}", completion=text, field=n)
            raw = obj[key] if key in obj else lowered[key]
            if isinstance(raw, str) and f.annotation is not str:
                values[n] = coerce(raw, f.annotation, n)
            elif f.annotation is str and not isinstance(raw, str):
                values[n] = _as_text(raw, n, text)
            else:
                values[n] = validate(raw, f.annotation, n, text)
        return values


def _as_text(raw: Any, field: str, text: str) -> str:
    """A JSON value other than a string given for a text field: the JSON the model wrote (``12``,
    ``true``, ``["a"]``). ``null`` states no text, so it is a ParseError, not the string "null"."""
    if raw is None:
        raise ParseError(f"field {field!r}: expected text, got null", completion=text, field=field)
    return json.dumps(raw, ensure_ascii=False)


def _json_guide(signature: type[Signature]) -> str:
    guide = _json_guides.get(signature)
    if guide is None:
        guide = _json_guides[signature] = _build_json_guide(signature)
    return guide


def _build_json_guide(signature: type[Signature]) -> str:
    lines = []
    for n, f in signature.output_fields.items():
        kind = describe_type(f.annotation)
        if kind.startswith("a JSON"):
            kind += " matching " + json.dumps(json_schema(f.annotation), separators=(",", ":"))
        detail = "; ".join(p for p in (f.desc, kind or "a string") if p)
        lines.append(f'- "{n}": {detail}')
    return (f"{signature.instructions.strip()}\n\nReply with one JSON object and nothing else, "
            "with these keys:\n" + "\n".join(lines))


def _find_object(text: str) -> dict[str, Any]:
    """The JSON object the completion states (``json_text.find_json``: the first wins)."""
    try:
        obj = find_json(text, dict)
    except ValueError as exc:
        raise ParseError(f"the completion holds no JSON object: {exc}", completion=text) from exc
    if not isinstance(obj, dict):
        raise ParseError(f"the completion holds a JSON {type(obj).__name__}, not an object", completion=text)
    return obj


FORMATS["json"] = JSONFormat
