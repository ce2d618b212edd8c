"""Typed values in and out of text: how a value is written into a prompt, and how a piece of a
completion becomes a value of a field's type.

A value is read only when the text states it unambiguously; anything else is a ``ParseError``
(which makes Predict re-ask once). The rules, each forgiving only where the reading is certain:

* ``str``: the text, stripped.
* ``Literal`` / ``Enum``: an exact option (case and surrounding punctuation ignored); otherwise the
  one option that appears as a whole token: not inside a word (``unpositive``), not inside a number
  (``10`` and ``2.5`` are not ``1`` or ``2``), and a one-letter option only in its own case (the
  article "a" is not option ``A``). When several appear, the first non-empty line decides if it
  names exactly one (a model that answers and then rambles on, echoing the options). An option
  glued to letters or digits is no option: ``positively`` is not ``positive``, ``neutralnone`` not
  ``neutral`` and ``Both`` not ``B``, since reading them would guess where the model's word ends.
  Zero or several options is a ParseError.
* ``bool``: a leading yes/no/true/false (also y/n/1/0) as a whole word, when the first line does not
  also hold the opposite word (``yes or no`` is refused).
* ``int`` / ``float``: the one numeric token of the text. A numeric token is a whole word in the
  locale-free forms Python and JSON accept (``-7``, ``3.5``, ``.5``, ``1e3``), with an optional
  leading currency sign (``$12``) and the Unicode minus (U+2212) read as ``-``. An ``int`` also takes
  thousands grouped by commas in threes (``1,234``), and any notation that states an integer
  exactly (``8.0``, ``1e3``); the number itself is read by ``_numbers`` (exact decimal arithmetic
  for integers, so ``3.0000000000000001`` is no integer).
  Words with letters in them (``12abc``, ``H2O``) are not numbers; a token of digits that is no
  number in these forms (``3,5``, ``4/5``, ``50%``, ``٣``) makes the text unreadable. ``nan`` and
  ``inf`` are never read, and neither is a number no float (or no int of at most 4,300 digits)
  can hold. Zero or several numbers is a ParseError.
* ``list``, ``dict``, ``tuple``, pydantic models: JSON, found by ``json_text.find_json`` (the whole
  text, else a fenced block, else the first value of the type's kind in prose: the first wins);
  a ``list[str]`` also reads one item per line or comma-separated text.
* ``Optional[X]``: empty, "none", "null" or "n/a" is None; otherwise X's rule.

JSON is read with ``NaN``, ``Infinity`` and overflowing numbers refused and nesting too deep for
Python turned into a ParseError. A value read from JSON is checked by pydantic in **strict** mode
(see ``validate``): ``true`` is not ``1``, ``4.0`` is not an ``int`` and ``null`` is not a string,
since each is a value the model did not write. Lax mode would turn them into values silently.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import re
import typing
from typing import Any, Literal

from lmbridge.signatures._json_text import find_json
from lmbridge.signatures._numbers import read_float, read_int
from lmbridge.signatures._validate import optional_inner, options_of, parse_error, type_adapter, validate

_NONE_WORDS = {"none", "null", "n/a", "na", "nothing"}
_TRUE = {"yes", "true", "y", "1", "correct"}
_FALSE = {"no", "false", "n", "0", "incorrect"}
_TRUE_WORDS = {"yes", "true", "correct"}  # the words that may lead a longer answer
_FALSE_WORDS = {"no", "false", "incorrect"}
_NUMBER_TOKEN = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_GROUPED_INT = re.compile(r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+")
_GROUPED_FLOAT = re.compile(r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+\.[0-9]+")
_TOKEN_SPLIT = re.compile(r"[\s{}()\[\]=<>|:;]+")
_LEAD = "\"'*_`$€£#"
_TRAIL = "\"'*_`.,;:!?"
_MINUS = "\u2212"


def render(value: Any) -> str:
    """Write a value into a prompt: text as is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def render_input(value: Any) -> str:
    """Write an input value: a list of strings becomes numbered lines, as passages usually are."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "\n".join(f"[{i}] {v}" for i, v in enumerate(value, 1))
    return render(value)


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of a value (pydantic models dumped, enums by value)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()  # datetime is a date: ISO 8601, which models read well
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def describe_type(annotation: Any) -> str:
    """What the model must write for a field, in words ("" for plain text)."""
    if annotation is str or annotation is Any:
        return ""
    options = options_of(annotation)
    if options is not None:
        return "exactly one of: " + ", ".join(str(o) for o in options)
    if annotation is bool:
        return "yes or no"
    if annotation is int:
        return "an integer number"
    if annotation is float:
        return "a number"
    inner = optional_inner(annotation)
    if inner is not None:
        d = describe_type(inner)
        return f"{d or 'text'}, or none" if d else ""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple):
        return "a JSON list"
    return "a JSON object"


def json_schema(annotation: Any) -> dict[str, Any]:
    return typing.cast(dict[str, Any], type_adapter(annotation).json_schema())


def coerce(text: str, annotation: Any, field: str = "") -> Any:
    """Turn the text written for a field into a value of the field's type (rules above)."""
    stripped = text.strip()
    if annotation is str or annotation is Any:
        return stripped
    return _read(stripped, annotation, field)


def _clean(text: str) -> str:
    """The text without surrounding markup and sentence punctuation (a leading ``.``, ``-`` or
    ``+`` is kept: it belongs to a number)."""
    return text.strip().lstrip(_LEAD + ",;:! \t\n([{").rstrip(_TRAIL + " \t\n)]}").strip()


def _read(text: str, annotation: Any, field: str) -> Any:
    if annotation is str or annotation is Any:
        return text
    options = options_of(annotation)
    if options is not None:
        option = _read_option(text, options, field)
        return option if typing.get_origin(annotation) is Literal else annotation(option)
    if annotation is bool:
        return _read_bool(text, field)
    if annotation is int or annotation is float:
        return _read_number(text, annotation, field)
    inner = optional_inner(annotation)
    if inner is not None:
        said_none = not text or _clean(text).lower() in _NONE_WORDS  # "{}" or "**" is not "none"
        return None if said_none else _read(text, inner, field)
    return validate(_read_structured(text, annotation, field), annotation, field, text)


def _read_bool(text: str, field: str) -> bool:
    cleaned = _clean(text).lower()
    if cleaned in _TRUE or cleaned in _FALSE:
        return cleaned in _TRUE
    first_line = next((line for line in text.lower().splitlines() if line.strip()), "")
    words = re.findall(r"[^\W_]+", first_line)
    lead = words[0] if words else ""
    if lead in _TRUE_WORDS or lead in _FALSE_WORDS:
        verdict = lead in _TRUE_WORDS
        if not set(words) & (_FALSE_WORDS if verdict else _TRUE_WORDS):
            return verdict
        raise parse_error(field, f"expected yes or no, got both in {text[:80]!r}", text)
    raise parse_error(field, f"expected yes or no, got {text[:80]!r}", text)


def _read_option(text: str, options: tuple[Any, ...], field: str) -> Any:
    cleaned = _clean(text).lower()
    for o in options:
        if cleaned == str(o).lower():
            return o
    found = _options_in(text, options)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        on_first_line = _options_in(first_line, options)
        if len(on_first_line) == 1:
            return on_first_line[0]
    shown = ", ".join(str(o) for o in options)
    why = "several of" if found else "none of"
    raise parse_error(field, f"expected exactly one of [{shown}], found {why} them in {text[:80]!r}", text)


def _options_in(text: str, options: tuple[Any, ...]) -> list[Any]:
    return [o for o, pattern in zip(options, _option_patterns(options)) if pattern.search(text)]


@functools.lru_cache(maxsize=256)
def _option_patterns(options: tuple[Any, ...]) -> list[re.Pattern[str]]:
    """Each option as a whole token: not inside a word or a number (``-2``, ``2.5``, ``10``), and a
    one-character option in its own case only (the article "a" is not option A)."""
    patterns = []
    for o in options:
        word = str(o)
        flags = re.I if len(word) > 1 else 0
        patterns.append(re.compile(rf"(?<![\w\-\u2212+])(?<![0-9][.,]){re.escape(word)}(?![\w\-]|[.,][0-9])",
                                   flags))
    return patterns


def _read_number(text: str, kind: type, field: str) -> Any:
    numbers: list[float | int] = []
    for raw in _TOKEN_SPLIT.split(text):
        token = raw.lstrip(_LEAD).rstrip(_TRAIL)
        if token.startswith(_MINUS):
            token = "-" + token[1:]
        if not token:
            continue
        written = _number_token(token, kind)
        if written is not None:
            try:
                numbers.append(read_int(written) if kind is int else read_float(written))
            except ValueError as exc:
                raise parse_error(field, str(exc), text) from exc
        elif any(c.isdigit() for c in token) and not any(c.isalpha() for c in token):
            raise parse_error(field, f"{raw[:40]!r} is not a number in a form that can be read", text)
    if len(numbers) == 1:
        return numbers[0]
    why = "several numbers" if numbers else "no number"
    wanted = "an integer" if kind is int else "a number"
    raise parse_error(field, f"expected {wanted}, found {why} in {text[:80]!r}", text)


def _number_token(token: str, kind: type) -> str | None:
    """The number a token writes in a locale-free form, as plain notation (grouping commas
    dropped) for the number reader, or None when the token writes no number."""
    if _NUMBER_TOKEN.fullmatch(token):
        return token
    grouped = _GROUPED_INT if kind is int else _GROUPED_FLOAT
    if grouped.fullmatch(token):
        return token.replace(",", "")
    return None


def _read_structured(text: str, annotation: Any, field: str) -> Any:
    try:
        return find_json(text, _json_kind(annotation))
    except ValueError:
        pass
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        if not args or args[0] is str:
            lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", ln).strip() for ln in text.splitlines()]
            items = [ln for ln in lines if ln]
            if len(items) == 1:
                items = [p.strip() for p in items[0].split(",") if p.strip()]
            return items
    raise parse_error(field, f"expected JSON ({describe_type(annotation)}), got {text[:80]!r}", text)


def _json_kind(annotation: Any) -> type[dict[Any, Any]] | type[list[Any]] | None:
    """The JSON kind a type is written as, which ``find_json`` looks for in prose (None: either)."""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple, set, frozenset):
        return list
    if (origin is dict or hasattr(annotation, "model_validate") or typing.is_typeddict(annotation)
            or dataclasses.is_dataclass(annotation)):
        return dict
    return None
