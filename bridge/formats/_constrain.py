"""Typed outputs constrained at decode time: what a format asks of the backend so that the answer
can only be written in the signature's types.

A format with ``constrained=True`` (the default of ``ChatFormat``, ``JSONFormat`` and
``TextFormat``) describes its answer as a ``Constraint``; the LM turns it into request parameters it
can honour (``BaseLM.constraint_params``):

- the embedded model (llama.cpp) gets a GBNF grammar: for ``ChatFormat``/``TextFormat`` the output
  field labels with a Literal's options, a yes/no, or a number's syntax in place (``chat_grammar``);
  for ``JSONFormat`` the grammar llama.cpp derives from the outputs' JSON schema;
- an API model gets the provider's structured output for ``JSONFormat`` (``response_format`` with
  the JSON schema, strict), where LiteLLM says the model supports it;
- any other backend gets nothing extra (unconstrained decoding).

An extractive output (``OutputField(extract_from="context")``) is constrained per call: its value in
the chat grammar is a rule that allows only spans of that call's passages (``span_rules``), so the
embedded model can write nothing the passages do not hold. Other backends answer unconstrained and
Predict checks the answer (``lmbridge.signatures.check_spans``).

A grammar the backend rejects, or a schema too complex to convert, falls back to unconstrained
decoding with a warning; each fallback is counted by reason (``constraint_fallbacks()``).
"""

from __future__ import annotations

import json
import re
import threading
import typing
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal
from weakref import WeakKeyDictionary

from lmbridge.signatures import Signature, json_schema, render

_TRUE_FALSE = ("yes", "no")


@dataclass(frozen=True)
class Constraint:
    """What an answer must look like: a GBNF grammar (llama.cpp) and/or a JSON schema."""

    gbnf: str | None = None
    schema: dict[str, Any] | None = None


_lock = threading.Lock()
_fallbacks: Counter[str] = Counter()
_warned: set[str] = set()


def note_fallback(reason: str, detail: str = "") -> None:
    """Count one request decoded without its constraint, and warn once per reason."""
    with _lock:
        _fallbacks[reason] += 1
        first = reason not in _warned
        _warned.add(reason)
    if first:
        warnings.warn(f"constrained decoding unavailable ({reason}{': ' + detail[:200] if detail else ''}); "
                      "decoding unconstrained. Counted in lmbridge.constraint_fallbacks().", RuntimeWarning,
                      stacklevel=3)


def constraint_fallbacks() -> dict[str, int]:
    """How many requests fell back to unconstrained decoding since the process started, by reason."""
    with _lock:
        return dict(_fallbacks)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def value_rule(annotation: Any) -> str:
    """A GBNF expression for one value written as ``render`` writes it (one line)."""
    if typing.get_origin(annotation) is Literal:
        options = typing.get_args(annotation)
        return "(" + " | ".join(_quote(render(o)) for o in options) + ")"
    if isinstance(annotation, type):
        import enum

        if issubclass(annotation, enum.Enum):
            return "(" + " | ".join(_quote(render(m.value)) for m in annotation) + ")"
        if annotation is bool:
            return "(" + " | ".join(_quote(o) for o in _TRUE_FALSE) + ")"
        if annotation is int:
            return '("-"? [0-9] [0-9]*)'
        if annotation is float:
            return '("-"? [0-9] [0-9]* ("." [0-9]+)?)'
    return "[^\\n]+"  # text, or a structure written on one line


_chat_grammars: WeakKeyDictionary[type[Signature], str] = WeakKeyDictionary()
_schemas: WeakKeyDictionary[type[Signature], dict[str, Any]] = WeakKeyDictionary()


def chat_grammar(signature: type[Signature]) -> str:
    """The GBNF grammar of a ``Label: value`` answer whose first label the prompt already wrote."""
    found = _chat_grammars.get(signature)
    if found is None:
        found = _chat_grammars[signature] = _build_chat_grammar(signature)
    return found


def _build_chat_grammar(signature: type[Signature],
                        spans: typing.Mapping[str, typing.Sequence[str]] | None = None) -> str:
    parts: list[str] = ['" "?']
    rules: list[str] = []
    for i, (name, f) in enumerate(signature.output_fields.items()):
        if i:
            parts.append(_quote(f"\n{f.label}: "))
        if spans is not None and name in spans:
            rule = f"span{len(rules)}"
            rules += span_rules(spans[name], rule)
            # The model may end the span as it ends any answer: with a stop, or (last field) a line break,
            # which a base model writes where it would stop; then the grammar is done and only EOS follows.
            last = i == len(signature.output_fields) - 1
            parts.append(f'{rule} ("." | "\\n")?' if last else f'{rule} "."?')
        else:
            parts.append(value_rule(f.annotation))
    return "\n".join(["root ::= " + " ".join(parts), *rules]) + "\n"


def extractive_grammar(signature: type[Signature], spans: typing.Mapping[str, typing.Sequence[str]]) -> str:
    """The chat grammar of one call whose extractive outputs (field name -> that call's passages)
    may only be spans of their passages. Built per call: the passages change with every question."""
    return _build_chat_grammar(signature, spans)


_WORD = re.compile(r"\w+")
MAX_SPAN_WORDS = 12
"""The longest span, in words, an extractive answer may copy (SQuAD's answers: 3 words on average)."""


def span_rules(texts: typing.Sequence[str], name: str, max_words: int = MAX_SPAN_WORDS) -> list[str]:
    """GBNF rules where ``name`` matches exactly the spans of ``texts`` that start and end on a word
    (a run of letters or digits), stay on one line and hold at most ``max_words`` words: a first word,
    then, one by one, the exact text that follows it in the passage (separator and next word),
    stopping anywhere. Rule ``name-p-j-d`` continues after word ``j`` of passage ``p`` with ``d``
    words left, so the grammar has about (words in the passages) x ``max_words`` small rules."""
    rules: list[str] = []
    starts: dict[str, set[str]] = {}
    for p, text in enumerate(texts):
        words = list(_WORD.finditer(text))
        links = [_link(text, words, j) for j in range(len(words))]  # the text that continues after word j
        for j, word in enumerate(words):
            if links[j] is not None:
                starts.setdefault(word.group(), set()).add(f"{name}-{p}-{j}-{max_words - 1}")
            else:
                starts.setdefault(word.group(), set())
            for d in range(1, max_words):
                link = links[j]
                if link is None:
                    continue
                after = f" {name}-{p}-{j + 1}-{d - 1}" if d > 1 and links[j + 1] is not None else ""
                rules.append(f"{name}-{p}-{j}-{d} ::= ({_quote(link)}{after})?")
    if not starts:
        raise ValueError("no word to copy: the passages hold no letters or digits")
    alts = [_quote(word) + (" (" + " | ".join(sorted(tails)) + ")" if tails else "")
            for word, tails in starts.items()]
    return [f"{name} ::= " + " | ".join(alts), *rules]


def _link(text: str, words: list[re.Match[str]], j: int) -> str | None:
    """What follows word ``j`` up to the end of the next word, or None at a passage's or line's end."""
    if j + 1 >= len(words):
        return None
    link = text[words[j].end():words[j + 1].end()]
    return None if "\n" in link or "\r" in link else link


def outputs_schema(signature: type[Signature]) -> dict[str, Any]:
    """The JSON schema of the object ``JSONFormat`` asks for: one key per output field, all required."""
    found = _schemas.get(signature)
    if found is not None:
        return found
    props = {n: json_schema(f.annotation) for n, f in signature.output_fields.items()}
    schema = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    _schemas[signature] = schema
    return schema


_gbnf_from_schema: dict[str, str | None] = {}


def schema_grammar(schema: dict[str, Any]) -> str | None:
    """The GBNF grammar llama.cpp derives from a JSON schema, or None (counted) when it cannot."""
    key = json.dumps(schema, sort_keys=True)
    if key in _gbnf_from_schema:
        found = _gbnf_from_schema[key]
        if found is None:
            note_fallback("json schema too complex for a grammar")
        return found
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        text: str | None = json_schema_to_gbnf(key)
    except ImportError:
        text = None
    except Exception as exc:  # llama-cpp-python's converter raises plain exceptions
        _gbnf_from_schema[key] = None
        note_fallback("json schema too complex for a grammar", f"{type(exc).__name__}: {exc}")
        return None
    _gbnf_from_schema[key] = text
    return text



def constrained_params(model: str, local: bool, constraint: Constraint,
                       supports_schema: typing.Callable[[], bool]) -> dict[str, Any]:
    """The request parameters that carry ``constraint`` to a backend: a grammar for the embedded
    model, the provider's structured output (JSON schema) for an API model that supports it."""
    if local:
        if constraint.gbnf:
            return {"grammar": constraint.gbnf}
        if constraint.schema is not None:
            text = schema_grammar(constraint.schema)
            return {"grammar": text} if text else {}
        return {}
    if constraint.schema is None:
        return {}  # API models get no grammar: ChatFormat/TextFormat answers stay unconstrained
    if not supports_schema():
        note_fallback("no structured output for this model", model)
        return {}
    return {"response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": constraint.schema, "strict": True}}}
