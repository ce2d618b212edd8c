"""Typed values in and out of text: how a value is written into a prompt, and how a piece of a
completion becomes a value of a field's type.

Reading is deliberately forgiving of what small models do, and every rule is stated here:

* ``str``: the text, stripped.
* ``Literal`` / ``Enum``: an exact option (case and surrounding punctuation ignored); otherwise the
  one option that appears as a whole word (bounded by anything but ASCII letters, digits, ``_`` and
  ``-``). When several appear, the first non-empty line decides if it names exactly one (a model
  that answers and then rambles on). With none as a whole word, an answer that begins with exactly
  one option glued to more letters counts as that option (a base model that runs on after the
  label: ``negativeattended``). Zero or several options is a ParseError.
* ``bool``: a leading yes/no/true/false.
* ``int`` / ``float``: the number itself; otherwise the single number in the text. Zero or several
  numbers is a ParseError.
* ``list``, ``dict``, ``tuple``, pydantic models: JSON (also inside a code fence); a ``list[str]``
  also reads one item per line or comma-separated text.
* ``Optional[X]``: empty, "none", "null" or "n/a" is None; otherwise X's rule.

Every value is then validated by pydantic against the field's type.
"""

from __future__ import annotations

import enum
import json
import re
import typing
from typing import Any, Literal, Union

from bridge.errors import ParseError

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_NONE_WORDS = {"", "none", "null", "n/a", "na", "nothing"}
_TRUE = {"yes", "true", "y", "1", "correct"}
_FALSE = {"no", "false", "n", "0", "incorrect"}
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
    value = _read(text.strip(), annotation, field)
    if annotation is str or annotation is Any:
        return value
    return validate(value, annotation, field, text)


def validate(value: Any, annotation: Any, field: str = "", text: str = "") -> Any:
    """Validate an already-read value with pydantic, raising ParseError on mismatch."""
    if annotation is str and isinstance(value, str):
        return value
    try:
        return _adapter(annotation).validate_python(value)
    except Exception as exc:  # pydantic.ValidationError; pydantic is imported lazily
        first = str(exc).splitlines()
        why = first[2].strip() if len(first) > 2 else str(exc)
        raise ParseError(f"field {field!r}: {why}", completion=text, field=field) from exc


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
    return text.strip().strip("*_`\"'.,;:!()[]{} \n\t").strip()


def _read(text: str, annotation: Any, field: str) -> Any:
    if annotation is str or annotation is Any:
        return text
    options = _options(annotation)
    if options is not None:
        return _read_option(text, options, field)
    if annotation is bool:
        words = re.findall(r"[a-z]+|\d", text.lower())
        if words and words[0] in _TRUE:
            return True
        if words and words[0] in _FALSE:
            return False
        raise ParseError(f"field {field!r}: expected yes or no, got {text[:80]!r}", completion=text, field=field)
    if annotation in (int, float):
        return _read_number(text, annotation, field)
    inner = _optional_inner(annotation)
    if inner is not None:
        return None if _clean(text).lower() in _NONE_WORDS else _read(text, inner, field)
    return _read_structured(text, annotation, field)


def _read_option(text: str, options: tuple[Any, ...], field: str) -> Any:
    cleaned = _clean(text).lower()
    for o in options:
        if cleaned == str(o).lower():
            return o
    found = _options_in(text, options)
    if len(found) == 1:
        return found[0]
    if not found:
        glued = [o for o in options if cleaned.startswith(str(o).lower())]
        if len(glued) == 1:
            return glued[0]
    if len(found) > 1:
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        on_first_line = _options_in(first_line, options)
        if len(on_first_line) == 1:
            return on_first_line[0]
    shown = ", ".join(str(o) for o in options)
    why = "several of" if found else "none of"
    raise ParseError(f"field {field!r}: expected exactly one of [{shown}], found {why} them in {text[:80]!r}",
                     completion=text, field=field)


def _options_in(text: str, options: tuple[Any, ...]) -> list[Any]:
    lowered = text.lower()
    return [o for o in options
            if re.search(r"(?<![a-z0-9_-])" + re.escape(str(o).lower()) + r"(?![a-z0-9_-])", lowered)]


def _read_number(text: str, kind: type, field: str) -> Any:
    cleaned = _clean(text).replace(",", "").lstrip("$")
    try:
        return kind(cleaned)
    except ValueError:
        pass
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1:
        raw = numbers[0].replace(",", "")
        number = float(raw)
        if kind is int:
            if not number.is_integer():
                raise ParseError(f"field {field!r}: expected an integer, got {raw}", completion=text, field=field)
            return int(number)
        return number
    why = "several numbers" if numbers else "no number"
    raise ParseError(f"field {field!r}: expected a {kind.__name__}, found {why} in {text[:80]!r}",
                     completion=text, field=field)


def _read_structured(text: str, annotation: Any, field: str) -> Any:
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            pass
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
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
    raise ParseError(f"field {field!r}: expected JSON ({describe_type(annotation)}), got {text[:80]!r}",
                     completion=text, field=field)
