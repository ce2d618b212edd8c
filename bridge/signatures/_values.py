"""Typed values in and out of text: how a value is written into a prompt, and how a piece of a
completion becomes a value of a field's type.

A value is read only when the text states it unambiguously; anything else is a ``ParseError``
(which makes Predict re-ask once). The rules, each forgiving only where the reading is certain:

* ``str``: the text, stripped.
* ``Literal`` / ``Enum``: an exact option (case and surrounding punctuation ignored); otherwise the
  one option that appears as a whole token: not inside a word (``unpositive``), not inside a number
  (``10`` and ``2.5`` are not ``1`` or ``2``), and a one-letter option only in its own case (the
  article "a" is not option ``A``). When several appear, the first non-empty line decides if it
  names exactly one (a model that answers and then rambles on, echoing the options). With none as a
  whole token, an answer that begins with exactly one option of three or more letters glued to
  more letters counts as that option (a base model that runs on after the label:
  ``negativeattended``); this is never done for numbers or short options (``Both`` is not ``B``).
  Zero or several options is a ParseError.
* ``bool``: a leading yes/no/true/false (also y/n/1/0) as a whole word, when the first line does not
  also hold the opposite word (``yes or no`` is refused).
* ``int`` / ``float``: the one numeric token of the text. A numeric token is a whole word in the
  locale-free forms Python and JSON accept (``-7``, ``3.5``, ``.5``, ``1e3``), with an optional
  leading currency sign (``$12``) and the Unicode minus (U+2212) read as ``-``. An ``int`` also takes
  thousands grouped by commas in threes (``1,234``) and a float token with no fraction (``8.0``).
  Words with letters in them (``12abc``, ``H2O``) are not numbers; a token of digits that is no
  number in these forms (``3,5``, ``4/5``, ``50%``, ``٣``) makes the text unreadable. ``nan`` and
  ``inf`` are never read, and neither is an overflow to infinity. Zero or several numbers is a
  ParseError.
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
import math
import re
import typing
from typing import Any, Literal, Union

from lmbridge.errors import ParseError
from lmbridge.signatures._json_text import find_json

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
_adapters: dict[Any, Any] = {}


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
    options = _options(annotation)
    if options is not None:
        return "exactly one of: " + ", ".join(str(o) for o in options)
    if annotation is bool:
        return "yes or no"
    if annotation is int:
        return "an integer number"
    if annotation is float:
        return "a number"
    inner = _optional_inner(annotation)
    if inner is not None:
        d = describe_type(inner)
        return f"{d or 'text'}, or none" if d else ""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple):
        return "a JSON list"
    return "a JSON object"


def json_schema(annotation: Any) -> dict[str, Any]:
    return typing.cast(dict[str, Any], _adapter(annotation).json_schema())


def coerce(text: str, annotation: Any, field: str = "") -> Any:
    """Turn the text written for a field into a value of the field's type (rules above)."""
    stripped = text.strip()
    if annotation is str or annotation is Any:
        return stripped
    return _read(stripped, annotation, field)


def validate(value: Any, annotation: Any, field: str = "", text: str = "") -> Any:
    """Check a value read from JSON against the field's type, raising ParseError on mismatch.

    Strict: a JSON value is taken only as what it is (``true`` is no int, ``4.0`` no int, ``null``
    no string, ``1`` no bool). Literal and Enum options match by value and JSON type.
    """
    if annotation is Any or (annotation is str and isinstance(value, str)):
        return value
    if annotation is int and type(value) is int:
        return value
    if annotation is float and type(value) in (int, float) and math.isfinite(value):
        return float(value)
    if annotation is bool and type(value) is bool:
        return value
    inner = _optional_inner(annotation)
    if inner is not None:
        return None if value is None else validate(value, inner, field, text)
    options = _options(annotation)
    if options is not None:
        for o in options:
            if type(o) is type(value) and o == value:
                return o if typing.get_origin(annotation) is Literal else annotation(o)
        raise _error(field, f"expected exactly one of [{', '.join(map(str, options))}], got {value!r}"[:200], text)
    try:
        data = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _error(field, f"not a finite JSON value: {exc}", text) from exc
    try:
        return _adapter(annotation).validate_json(data, strict=True)
    except Exception as exc:  # pydantic.ValidationError (imported lazily), or its recursion guard
        lines = str(exc).splitlines()
        why = lines[2].strip() if len(lines) > 2 else str(exc)
        raise _error(field, why, text) from exc


def _error(field: str, why: str, text: str) -> ParseError:
    return ParseError(f"field {field!r}: {why}", completion=text, field=field)


def _adapter(annotation: Any) -> Any:
    try:
        return _adapters[annotation]
    except (KeyError, TypeError):
        pass
    from pydantic import TypeAdapter

    adapter = TypeAdapter(annotation)
    try:
        _adapters[annotation] = adapter
    except TypeError:
        pass
    return adapter


def _options(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(m.value for m in annotation)
    return None


def _optional_inner(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _clean(text: str) -> str:
    """The text without surrounding markup and sentence punctuation (a leading ``.``, ``-`` or
    ``+`` is kept: it belongs to a number)."""
    return text.strip().lstrip(_LEAD + ",;:! \t\n([{").rstrip(_TRAIL + " \t\n)]}").strip()


def _read(text: str, annotation: Any, field: str) -> Any:
    if annotation is str or annotation is Any:
        return text
    options = _options(annotation)
    if options is not None:
        option = _read_option(text, options, field)
        return option if typing.get_origin(annotation) is Literal else annotation(option)
    if annotation is bool:
        return _read_bool(text, field)
    if annotation is int or annotation is float:
        return _read_number(text, annotation, field)
    inner = _optional_inner(annotation)
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
        raise _error(field, f"expected yes or no, got both in {text[:80]!r}", text)
    raise _error(field, f"expected yes or no, got {text[:80]!r}", text)


def _read_option(text: str, options: tuple[Any, ...], field: str) -> Any:
    cleaned = _clean(text).lower()
    for o in options:
        if cleaned == str(o).lower():
            return o
    found = _options_in(text, options)
    if len(found) == 1:
        return found[0]
    if not found:
        # A base model running on after the label ("negativeattended"): only a word option of three
        # or more letters, glued to more letters, at the very start. Never a number or a letter
        # option, where a glued reading would be a guess ("10" is not 1, "Both" is not B).
        glued = [o for o in options if isinstance(o, str) and len(o) >= 3 and o[:1].isalpha()
                 and cleaned.startswith(o.lower()) and cleaned[len(o.lower()):][:1].isalpha()]
        if len(glued) == 1:
            return glued[0]
    if len(found) > 1:
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        on_first_line = _options_in(first_line, options)
        if len(on_first_line) == 1:
            return on_first_line[0]
    shown = ", ".join(str(o) for o in options)
    why = "several of" if found else "none of"
    raise _error(field, f"expected exactly one of [{shown}], found {why} them in {text[:80]!r}", text)


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
        number = _number_token(token, kind)
        if number is not None:
            if not math.isfinite(number):
                raise _error(field, f"{raw!r} is not a finite number", text)
            numbers.append(number)
        elif any(c.isdigit() for c in token) and not any(c.isalpha() for c in token):
            raise _error(field, f"{raw!r} is not a number in a form that can be read", text)
    if len(numbers) == 1:
        number = numbers[0]
        if kind is int and isinstance(number, float):
            if not number.is_integer():
                raise _error(field, f"expected an integer, got {number}", text)
            return int(number)
        return number
    why = "several numbers" if numbers else "no number"
    wanted = "an integer" if kind is int else "a number"
    raise _error(field, f"expected {wanted}, found {why} in {text[:80]!r}", text)


def _number_token(token: str, kind: type) -> float | int | None:
    """The number a token states in a locale-free form, or None."""
    try:
        if _NUMBER_TOKEN.fullmatch(token):
            if kind is int and token.lstrip("+-").isdigit():
                return int(token)
            value = float(token)
        elif kind is int and _GROUPED_INT.fullmatch(token):
            return int(token.replace(",", ""))
        elif kind is float and _GROUPED_FLOAT.fullmatch(token):
            value = float(token.replace(",", ""))
        else:
            return None
    except ValueError:  # an int longer than Python converts
        return None
    return value


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
    raise _error(field, f"expected JSON ({describe_type(annotation)}), got {text[:80]!r}", text)


def _json_kind(annotation: Any) -> type[dict[Any, Any]] | type[list[Any]] | None:
    """The JSON kind a type is written as, which ``find_json`` looks for in prose (None: either)."""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple, set, frozenset):
        return list
    if (origin is dict or hasattr(annotation, "model_validate") or typing.is_typeddict(annotation)
            or dataclasses.is_dataclass(annotation)):
        return dict
    return None
