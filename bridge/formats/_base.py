"""Prompt formats: a signature, demos and inputs become chat messages; completion text becomes typed
values. Pure functions of their arguments: no I/O, no model, testable in microseconds.

``ChatFormat`` (the default) writes fields as ``Label: value`` lines and ends the request with the
label of the first output field, so that a small model only has to continue the text. It was chosen
by measurement on SmolLM2-135M (see docs/formats.md): field-marker formats such as DSPy's
``[[ ## field ## ]]`` score near zero on such models.

``JSONFormat`` asks for one JSON object and requests the provider's JSON mode when the LM supports it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from weakref import WeakKeyDictionary

from lmbridge.errors import ParseError
from lmbridge.formats._constrain import Constraint, chat_grammar, extractive_grammar
from lmbridge.formats._partial import PartialOutputs, read_labelled
from lmbridge.formats._prior import Prior
from lmbridge.formats._slots import fill, late, unslotted
from lmbridge.signatures import (
    Field,
    Signature,
    coerce,
    describe_type,
    extractive_fields,
    passages_of,
    render,
    render_input,
)
from lmbridge.types import Message

Scoring = Literal["generate", "labels", "calibrated"]
SCORINGS: tuple[Scoring, ...] = ("generate", "labels", "calibrated")
DemoPlacement = Literal["turns", "inline"]
InstructionRole = Literal["user", "system"]
F = TypeVar("F", bound="PromptFormat")


class PromptFormat:
    """Base class of the formats. A subclass implements ``format``, ``parse`` and ``render_outputs``."""

    name: str = "base"

    def partial(self, signature: type[Signature], text: str) -> PartialOutputs:
        """The fields that the start of a completion holds so far (for streaming). A format that
        cannot read a partial answer returns nothing: its fields arrive when the answer ends."""
        return PartialOutputs({})

    def format(self, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, Any]) -> list[Message]:
        raise NotImplementedError

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        raise NotImplementedError

    def render_outputs(self, signature: type[Signature], values: Mapping[str, Any]) -> str:
        """The completion a well-behaved model would write for these output values."""
        raise NotImplementedError

    def repair(self, signature: type[Signature], error: ParseError) -> str:
        """The follow-up user message that shows the model why its answer did not parse."""
        names = ", ".join(f.label for f in signature.output_fields.values())
        return (f"Your answer could not be read: {error.message}. "
                f"Answer again with only: {names}.")

    def merge(self, signature: type[Signature], first: str, second: str, error: ParseError) -> str | None:
        """The text to parse when the answer to the re-ask does not parse on its own, or None.
        A format whose re-ask asks only for the missing field joins the two answers here."""
        return None

    def request_params(self, signature: type[Signature]) -> dict[str, Any]:
        """Extra request parameters this format asks of the LM (for example a JSON mode)."""
        return {}

    def endpoint_params(self, signature: type[Signature]) -> dict[str, Any]:
        """Request parameters every LM gets with this format (``TextFormat``: the raw completion
        endpoint and its stop sequences)."""
        return {}

    def constraint(self, signature: type[Signature]) -> Constraint | None:
        """What the answer must look like, for decoding constrained to the signature's types; None
        when the format decodes unconstrained (see ``lmbridge.constrain``)."""
        return None

    def constraint_for(self, signature: type[Signature], inputs: Mapping[str, Any]) -> Constraint | None:
        """The constraint of one call with ``inputs``: ``constraint``, and, in a format that writes a
        grammar, each extractive output limited to spans of this call's passages."""
        return self.constraint(signature)

    scoring: Scoring = "generate"
    """``"labels"``: a single Literal or bool output is chosen by the options' probabilities instead
    of sampled text; ``"calibrated"``: the same, with each probability divided by the model's prior."""
    prior: Prior | None = None
    """With ``scoring="calibrated"``: the prior estimated from real inputs (``lmbridge.calibrate``),
    saved with the format; None falls back to the content-free estimate (see ``lmbridge.labels``)."""

    def with_prior(self: F, prior: Prior | Mapping[str, Any] | None) -> F:
        """A copy of this format carrying ``prior`` (None: without one). Needs ``scoring="calibrated"``."""
        new = copy.copy(self)
        new.prior = _checked_prior(prior, self.scoring)
        return new

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_state() == self.to_state()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_state(), sort_keys=True))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.to_state().items() if k != "name")
        return f"{type(self).__name__}({opts})"


def _checked_prior(prior: Prior | Mapping[str, Any] | None, scoring: Scoring) -> Prior | None:
    found = None if prior is None else Prior.from_state(prior)
    if found is not None and scoring != "calibrated":
        raise ValueError(f"a prior goes with scoring='calibrated', not scoring={scoring!r}")
    return found


def _inputs_block(signature: type[Signature], values: Mapping[str, Any]) -> str:
    return "\n".join(f"{f.label}: {render_input(values[n])}"
                     for n, f in signature.input_fields.items() if n in values)


def _field_line(f: Field) -> str:
    kind = describe_type(f.annotation)
    detail = "; ".join(p for p in (f.desc, kind) if p)
    return f"{f.label}: {detail}" if detail else f.label


_guides: WeakKeyDictionary[type[Signature], str] = WeakKeyDictionary()
_patterns: WeakKeyDictionary[type[Signature], tuple[re.Pattern[str], dict[str, str]]] = WeakKeyDictionary()


def _chat_guide(signature: type[Signature]) -> str:
    guide = _guides.get(signature)
    if guide is None:
        guide = _guides[signature] = _build_chat_guide(signature)
    return guide


def _build_chat_guide(signature: type[Signature]) -> str:
    outs = list(signature.output_fields.values())
    parts = [signature.instructions.strip()]
    if len(outs) == 1:
        f = outs[0]
        kind = describe_type(f.annotation)
        detail = ". ".join(p for p in (f.desc, f"Answer with {kind}" if kind else "") if p)
        if detail:
            parts.append(detail + ".")
    else:
        lines = "\n".join(_field_line(f) for f in outs)
        parts.append("Reply with these fields in this order, each starting with its label:\n" + lines)
    return "\n\n".join(p for p in parts if p)


def _label_pattern(signature: type[Signature]) -> tuple[re.Pattern[str], dict[str, str]]:
    found = _patterns.get(signature)
    if found is None:
        found = _patterns[signature] = _build_label_pattern(signature)
    return found


def _label_name(names: dict[str, str], written: str) -> str:
    """The field a matched label names. The pattern matches case-insensitively, and Unicode case
    folding can match a label whose ``lower()`` is not the alias (``REASON\u0130NG``, long s ``\u017f`` for ``s``)."""
    found = names.get(written.lower())
    if found is not None:
        return found
    for alias, name in names.items():
        if re.fullmatch(re.escape(alias), written, re.I):
            return name
    raise ParseError(f"cannot tell which field the label {written!r} names")


def _build_label_pattern(signature: type[Signature]) -> tuple[re.Pattern[str], dict[str, str]]:
    names: dict[str, str] = {}
    for n, f in {**signature.output_fields, **signature.input_fields}.items():
        for alias in {f.label.lower(), n.lower(), n.replace("_", " ").lower()}:
            names.setdefault(alias, n)
    alts = "|".join(sorted((re.escape(a) for a in names), key=len, reverse=True))
    pattern = re.compile(rf"^[ \t]*(?:#+[ \t]*)?[*_]*({alts})[*_]*[ \t]*:[*_]*[ \t]*", re.I | re.M)
    return pattern, names


class _PlacedFormat(PromptFormat):
    """A format with the two placement choices the optimizers search: where demos and instructions go."""

    def __init__(self, demos: DemoPlacement, instructions: InstructionRole, constrained: bool = True,
                 scoring: Scoring = "generate", prior: Prior | Mapping[str, Any] | None = None) -> None:
        if demos not in ("turns", "inline"):
            raise ValueError(f"demos must be 'turns' or 'inline', not {demos!r}")
        if instructions not in ("user", "system"):
            raise ValueError(f"instructions must be 'user' or 'system', not {instructions!r}")
        if not isinstance(constrained, bool):
            raise ValueError(f"constrained must be True or False, not {constrained!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {list(SCORINGS)}, not {scoring!r}")
        self.demos: DemoPlacement = demos
        self.instructions: InstructionRole = instructions
        self.constrained = constrained
        self.scoring = scoring
        self.prior = _checked_prior(prior, scoring)

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name, "demos": self.demos, "instructions": self.instructions}
        return self._choices(state)

    def _choices(self, state: dict[str, Any]) -> dict[str, Any]:
        """The decoding choices, written only when they differ from the defaults (older saved
        programs keep loading, and compare equal)."""
        if not self.constrained:
            state["constrained"] = False
        if self.scoring != "generate":
            state["scoring"] = self.scoring
        if self.prior is not None:
            state["prior"] = self.prior.to_state()
        return state


class ChatFormat(_PlacedFormat):
    """``Label: value`` lines. ``demos`` puts demonstrations as user/assistant turns or inline in one
    message; ``instructions`` puts the instructions in the first user message or a system message."""

    name = "chat"

    def __init__(self, demos: DemoPlacement = "turns", instructions: InstructionRole = "user", *,
                 constrained: bool = True, scoring: Scoring = "generate",
                 prior: Prior | Mapping[str, Any] | None = None) -> None:
        super().__init__(demos, instructions, constrained, scoring, prior)

    def constraint(self, signature: type[Signature]) -> Constraint | None:
        return Constraint(gbnf=chat_grammar(signature)) if self.constrained else None

    def constraint_for(self, signature: type[Signature], inputs: Mapping[str, Any]) -> Constraint | None:
        fields = extractive_fields(signature)
        if not fields or not self.constrained:
            return self.constraint(signature)
        spans = {n: passages_of(signature, inputs, f) for n, f in fields.items()}
        return Constraint(gbnf=extractive_grammar(signature, spans))

    def _request(self, signature: type[Signature], values: Mapping[str, Any]) -> str:
        first = next(iter(signature.output_fields.values()))
        block = _inputs_block(signature, values)
        return f"{block}\n{first.label}:" if block else f"{first.label}:"

    def format(self, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, Any]) -> list[Message]:
        guide = fill(_chat_guide(signature), signature, inputs)
        request = self._request(signature, unslotted(signature, inputs))
        usable = [d for d in demos if all(n in d for n in signature.input_fields)]
        messages: list[Message] = []
        head = ""
        if self.instructions == "system":
            messages.append({"role": "system", "content": guide})
        else:
            head = guide + "\n\n"
        lead, last = late(signature, head)
        if self.demos == "inline" and usable:
            shown = "\n\n".join(
                f"{_inputs_block(signature, d)}\n{self._labelled_outputs(signature, d)}" for d in usable)
            messages.append({"role": "user", "content": f"{lead}{shown}\n\n{last}{request}"})
            return messages
        for d in usable:
            messages.append({"role": "user", "content": lead + self._request(signature, d)})
            messages.append({"role": "assistant", "content": self.render_outputs(signature, d)})
            lead = ""
        messages.append({"role": "user", "content": lead + last + request})
        return messages

    def _missing(self, signature: type[Signature], error: ParseError) -> Field | None:
        first = next(iter(signature.output_fields))
        if error.field in signature.output_fields and error.field != first and "has no" in error.message:
            return signature.output_fields[error.field]
        return None

    def repair(self, signature: type[Signature], error: ParseError) -> str:
        missing = self._missing(signature, error)
        if missing is None:
            return super().repair(signature, error)
        kind = describe_type(missing.annotation)
        detail = f" ({kind})" if kind else ""
        return f"Now give the {missing.label}{detail}.\n{missing.label}:"

    def merge(self, signature: type[Signature], first: str, second: str, error: ParseError) -> str | None:
        missing = self._missing(signature, error)
        if missing is None:
            return None
        return f"{first.rstrip()}\n{missing.label}: {second.strip()}"

    def _labelled_outputs(self, signature: type[Signature], values: Mapping[str, Any]) -> str:
        return "\n".join(f"{f.label}: {render(values[n])}"
                         for n, f in signature.output_fields.items() if n in values)

    def render_outputs(self, signature: type[Signature], values: Mapping[str, Any]) -> str:
        lines: list[str] = []
        for i, (n, f) in enumerate(signature.output_fields.items()):
            if n not in values:
                continue
            lines.append(render(values[n]) if i == 0 else f"{f.label}: {render(values[n])}")
        return "\n".join(lines)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        try:
            return self._read(signature, text, lead_wins=False)
        except ParseError as error:
            # The prompt ends with the first output label, so text before any label is that field's
            # value. A chatty model may write a preamble there and then the label with the answer
            # (read above); a base model may answer there and then start another example with the
            # same label (read here). The first reading's error is the one reported.
            try:
                return self._read(signature, text, lead_wins=True)
            except ParseError:
                raise error from None

    def partial(self, signature: type[Signature], text: str) -> PartialOutputs:
        pattern, names = _label_pattern(signature)
        return read_labelled(signature, text, pattern, names)

    def _read(self, signature: type[Signature], text: str, *, lead_wins: bool) -> dict[str, Any]:
        outputs = signature.output_fields
        pattern, names = _label_pattern(signature)
        sections: dict[str, str] = {}
        matches = list(pattern.finditer(text))
        first = next(iter(outputs))
        lead = text[: matches[0].start()] if matches else text  # the unlabelled first field
        for i, m in enumerate(matches):
            name = _label_name(names, m.group(1))
            if name in signature.input_fields or name in sections or (name == first and (i or lead_wins)
                                                                      and lead.strip()):
                break  # the model began another example: stop reading there
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            sections[name] = text[m.end():end]
        if first not in sections:
            sections[first] = lead
        values: dict[str, Any] = {}
        for n, f in outputs.items():
            if n not in sections:
                raise ParseError(f"the completion has no {f.label!r} field", completion=text, field=n)
            raw = sections[n]
            if not raw.strip() and f.annotation is not str:
                raise ParseError(f"field {n!r} is empty", completion=text, field=n)
            values[n] = coerce(raw, f.annotation, n)
        return values


FORMATS: dict[str, type[PromptFormat]] = {"chat": ChatFormat}
"""The formats ``format_from_state`` can rebuild, by name; ``format_json`` and ``format_text`` add theirs."""


def format_from_state(state: Mapping[str, Any]) -> PromptFormat:
    """Rebuild a format from ``to_state()`` output. Only the known formats can be named."""
    name = state.get("name")
    if name not in FORMATS:
        raise ValueError(f"unknown prompt format {name!r}; known: {sorted(FORMATS)}")
    options = {k: v for k, v in state.items() if k != "name"}
    return FORMATS[name](**options)
