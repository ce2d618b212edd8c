"""Reading an unfinished completion, for streaming: which output fields it has begun, their text so
far, and which are complete. Each prompt format reads its own layout (``PromptFormat.partial``);
the readers are here. Pure functions, tested without any model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lmbridge.signatures import Signature, read_partial_object


@dataclass(frozen=True)
class PartialOutputs:
    """What an unfinished completion says so far (``PromptFormat.partial``), for streaming."""

    texts: dict[str, str]
    """The text of each output field begun so far, by name, trimmed of surrounding whitespace.
    Only text that will not change is included (a line that may yet become a label is held back)."""
    complete: tuple[str, ...] = ()
    """The fields whose text is final: a later field has begun, or the answer is closed."""
    complete_text: str = ""
    """Text holding exactly the complete fields: ``parse`` on a signature with only those output
    fields reads their values from it."""


def read_labelled(signature: type[Signature], text: str, pattern: re.Pattern[str],
                  names: Mapping[str, str]) -> PartialOutputs:
    """``ChatFormat.partial``: the sections of ``Label: value`` text, found with the format's label
    ``pattern`` (``names`` maps each alias to its field), read the way ``ChatFormat.parse`` reads a
    whole answer: text before any label is the first output field."""
    first = next(iter(signature.output_fields))
    matches = list(pattern.finditer(text))
    lead_end = matches[0].start() if matches else len(text)
    begun: list[tuple[str, int, int]] = []  # (field, value start, label start), in the order written
    if text[:lead_end].strip() and not (matches and names[matches[0].group(1).lower()] == first):
        begun.append((first, 0, 0))
    cut, closed = len(text), False
    for m in matches:
        name = names[m.group(1).lower()]
        if name in signature.input_fields or any(b[0] == name for b in begun):
            cut, closed = m.start(), True  # the model began another example: the answer ends here
            break
        begun.append((name, m.end(), m.start()))
    texts: dict[str, str] = {}
    for i, (name, start, _) in enumerate(begun):
        end = begun[i + 1][2] if i + 1 < len(begun) else cut
        section = text[start:end]
        if i + 1 == len(begun) and not closed:
            section = _without_label_start(section, names)
        texts[name] = section.strip()
    if closed:
        return PartialOutputs(texts, tuple(texts), text[:cut])
    done = tuple(b[0] for b in begun[:-1])
    return PartialOutputs(texts, done, text[:begun[-1][2]] if begun else "")


def _without_label_start(section: str, names: Mapping[str, str]) -> str:
    """The section less its last line when that line may still grow into a field label."""
    head, newline, last = section.rpartition("\n")
    if not newline:
        return section
    stem = last.lstrip(" \t#*_").rstrip("*_").lower()
    if not stem or any(alias.startswith(stem) for alias in names):
        return head
    return section


def read_json_object(signature: type[Signature], text: str) -> PartialOutputs:
    """``JSONFormat.partial``: the object so far (``json_text.read_partial_object``). String values
    grow as they are written; other values are shown once complete."""
    obj, closed = read_partial_object(text)
    if obj is None:
        return PartialOutputs({})
    keys = _json_keys(signature)
    named = [(key, keys[key] if key in keys else keys.get(str(key).lower())) for key in obj]
    found = [(key, name) for key, name in named if name is not None]
    done = found if closed else [(k, n) for k, n in found if k != named[-1][0]]
    texts = {name: obj[key].strip() for key, name in found if isinstance(obj[key], str)}
    complete_text = json.dumps({key: obj[key] for key, _ in done}, ensure_ascii=False)
    return PartialOutputs(texts, tuple(name for _, name in done), complete_text)


def _json_keys(signature: type[Signature]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for n, f in signature.output_fields.items():
        for key in (n, n.lower(), f.label.lower()):
            keys.setdefault(key, n)
    return keys
