"""JSON in model text: the one place that finds and reads it, for every prompt format, for typed
values and for ReAct's tool arguments.

``find_json(text, kind)`` returns the JSON value a completion states. Models wrap JSON in prose and
code fences, so it looks in this order, and the first place that holds valid JSON wins:

1. the whole text (what a JSON-mode answer is);
2. each fenced code block (a fence marked ``json`` or unmarked), in order;
3. the value that begins at the first ``{`` (for ``kind=dict``), the first ``[`` (``kind=list``)
   or either (no kind, tried in the order they appear). The text after the value is ignored: that
   is a model running on, often into another example, so of several objects **the first wins**.

A whole text or a fenced block that is valid JSON is the model's statement even when it is of
another kind (``[1, 2]`` where an object was asked for): it is returned, for the caller's type check
to refuse; only prose is searched for a value of the wanted kind. Nothing is repaired: an object cut
off by the token limit, a missing quote or a trailing comma is no JSON, since closing or mending it
would make up what the model did not write. ``ValueError`` (with the reason) when there is none.

Final reads use the standard library's decoder, strictly, with numbers read by the one number
reader (``_numbers``): ``NaN``, ``Infinity``, floats that overflow to infinity or underflow to zero
and integers past Python's int-string limit are refused, and nesting too deep for Python is a
``ValueError`` like any other bad JSON. Its ``raw_decode`` reads one value and says where it ends,
which step 3 needs and ``pydantic_core.from_json`` does not offer (it also reads ``1e400`` as ``inf``).

Streaming is the one place an unfinished object is read: ``read_partial_object`` shows the object
so far with ``pydantic_core.from_json(allow_partial=...)``, and says whether it is closed. Its
values are shown as they arrive and are never parsed as an answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lmbridge.signatures._numbers import read_float, read_int

_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)```", re.S | re.I)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=read_float, parse_int=read_int)


def read_json(text: str) -> Any:
    """``json.loads`` for model output: ``NaN``, ``Infinity`` and numbers no float or int holds
    are refused, and nesting too deep for Python is a ValueError like any other bad JSON."""
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise ValueError("the JSON is nested too deeply") from exc


def read_json_prefix(text: str) -> tuple[Any, int]:
    """``read_json`` of the one JSON value at the start of ``text``; also returns where it ends."""
    try:
        return _DECODER.raw_decode(text)
    except RecursionError as exc:
        raise ValueError("the JSON is nested too deeply") from exc


def find_json(text: str, kind: type[dict[Any, Any]] | type[list[Any]] | None = None) -> Any:
    """The JSON value stated in model text (the rules are in the module docstring): the whole text,
    else a fenced block, else the value at the first opening bracket of ``kind``. ``ValueError``
    when there is none."""
    stripped = text.strip()
    reason: Exception | None = None
    if stripped[:1] in _JSON_STARTS or stripped in _JSON_WORDS:  # else no JSON: skip a failed parse
        try:
            return read_json(stripped)  # the common case: the answer is the JSON and nothing else
        except ValueError as exc:
            reason = exc
    if "```" in stripped:
        for match in _FENCE.finditer(stripped):
            try:
                return read_json(match.group(1))
            except ValueError:
                pass
    openers = "{" if kind is dict else "[" if kind is list else "{["
    starts = sorted(i for i in (stripped.find(o) for o in openers) if i >= 0)
    for start in starts:
        try:
            return read_json_prefix(stripped[start:])[0]
        except ValueError as exc:
            reason = exc
    why = f" ({reason})" if reason else ""
    raise ValueError(f"no JSON {_KIND_WORDS.get(kind, 'value')} in the text{why}")


_JSON_STARTS = frozenset('{["-0123456789')  # the first character of every JSON value but these words:
_JSON_WORDS = frozenset(("true", "false", "null"))
_KIND_WORDS: dict[Any, str] = {dict: "object", list: "list"}


def read_partial_object(text: str) -> tuple[dict[str, Any] | None, bool]:
    """Streaming: the JSON object begun at the first ``{`` of an unfinished completion, read as far
    as it goes, and whether it is closed. String values grow as they are written, and a number at
    the very end may still grow too, so a caller takes the last key as unfinished until the object
    closes (``partial.read_json_object`` does). ``(None, False)`` before an object has begun or
    when it cannot be read."""
    start = text.find("{")
    if start < 0:
        return None, False
    try:
        return read_json_prefix(text[start:])[0], True
    except ValueError:
        pass
    from pydantic_core import from_json

    try:
        obj = from_json(text[start:], allow_inf_nan=False, allow_partial="trailing-strings")
    except TypeError:  # pydantic-core before 2.23 knows only True: strings show once closed
        try:
            obj = from_json(text[start:], allow_inf_nan=False, allow_partial=True)
        except ValueError:
            return None, False
    except ValueError:
        return None, False
    return (obj, False) if isinstance(obj, dict) else (None, False)
