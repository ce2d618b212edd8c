"""Input slots in instructions: ``{name}`` in a signature's instructions, where ``name`` is one of its
input fields, is the place of that input's value in a sentence.

    The original query is as follows: {query_str}
    We have provided an existing answer: {existing_answer}

The formats write the instructions with each slot filled by the call's value (written as an input
is: ``render_input``), and leave that input out of the call's own ``Label: value`` lines, so the value
stands once, where the sentence puts it. Demos still show every input under its label (a demo's
values are not the call's), and come first: instructions holding the call's values stand with the
call's request, after the demos, as a few-shot template's examples come before its own text. An
optimizer that rewrites the instructions without a slot moves that input back under its label;
nothing is lost. Braces around any other text are not slots and are written as they stand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

from lmbridge.signatures import Signature, render_input

_found: WeakKeyDictionary[type[Signature], tuple[str, ...]] = WeakKeyDictionary()


def slots(signature: type[Signature]) -> tuple[str, ...]:
    """The input fields whose ``{name}`` stands in the instructions, in field order."""
    found = _found.get(signature)
    if found is None:
        text = signature.instructions
        found = _found[signature] = tuple(n for n in signature.input_fields if "{" + n + "}" in text)
    return found


def fill(text: str, signature: type[Signature], values: Mapping[str, Any]) -> str:
    """``text`` with each slot of ``signature`` whose value is given written with that value."""
    names = [n for n in slots(signature) if n in values]
    if not names:
        return text
    pattern = re.compile("|".join(re.escape("{" + n + "}") for n in names))
    return pattern.sub(lambda m: render_input(values[m.group(0)[1:-1]]), text)


def unslotted(signature: type[Signature], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values the instructions do not hold: the ones written under their labels."""
    held = slots(signature)
    return {n: v for n, v in values.items() if n not in held}


def late(signature: type[Signature], head: str) -> tuple[str, str]:
    """Where the instructions (``head``) go: ``(before the demos, with the call's request)``. With slots
    they hold the call's values, so they go with its request; otherwise they lead."""
    return ("", head) if slots(signature) else (head, "")
