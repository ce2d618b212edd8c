"""Values read from JSON checked against a field's type: the strict check every format uses once
the JSON is found (``values.coerce`` finds it in text), and the type helpers the readers share.

Strict: a JSON value is taken only as what it is. ``true`` is no int, ``4.0`` no int, ``null`` no
string, ``1`` no bool: lax conversion would turn each into a value the model did not write. Numbers
go through the one number reader (``_numbers``): an integer too large for a float field is refused,
never ``inf``. A mismatch is a ``ParseError`` that names the field, where in the value it is, the
type expected and the value given.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from typing import Any, Literal, Union

from lmbridge.errors import ParseError
from lmbridge.signatures._numbers import as_float

_adapters: dict[Any, Any] = {}


def validate(value: Any, annotation: Any, field: str = "", text: str = "") -> Any:
    """Check a value read from JSON against the field's type, raising ParseError on mismatch.

    Strict: a JSON value is taken only as what it is (``true`` is no int, ``4.0`` no int, ``null``
    no string, ``1`` no bool). Literal and Enum options match by value and JSON type.
    """
    if annotation is Any or (annotation is str and isinstance(value, str)):
        return value
    if annotation is int and type(value) is int:
        return value
    if annotation is float and type(value) in (int, float):
        try:
            return as_float(value)
        except ValueError as exc:
            raise parse_error(field, str(exc), text) from exc
    if annotation is bool and type(value) is bool:
        return value
    if isinstance(annotation, type) and annotation in _SCALAR_WORDS:
        raise parse_error(field, f"expected {_SCALAR_WORDS[annotation]}, got {_shown(value)}", text)
    inner = optional_inner(annotation)
    if inner is not None:
        return None if value is None else validate(value, inner, field, text)
    options = options_of(annotation)
    if options is not None:
        for o in options:
            if type(o) is type(value) and o == value:
                return o if typing.get_origin(annotation) is Literal else annotation(o)
        raise parse_error(field, f"expected exactly one of [{', '.join(map(str, options))}], got {value!r}"[:200], text)
    return _validate_structured(value, annotation, field, text)


_SCALAR_WORDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_JSON_KINDS: dict[type, str] = {bool: "a JSON boolean", int: "a JSON integer", float: "a JSON number with a fraction",
                                str: "a JSON string", list: "a JSON list", dict: "a JSON object",
                                type(None): "JSON null"}


def _shown(value: Any) -> str:
    """A JSON value as the model wrote it, and its kind: ``true (a JSON boolean)``."""
    try:
        written = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        written = repr(value)
    kind = _JSON_KINDS.get(type(value), type(value).__name__)
    return f"{written[:60]} ({kind})"


def _validate_structured(value: Any, annotation: Any, field: str, text: str) -> Any:
    """A list, dict, tuple or model value checked by pydantic in strict mode; the error names where in
    the value the mismatch is, what was expected and what was given."""
    try:
        data = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise parse_error(field, f"not a finite JSON value: {exc}", text) from exc
    try:
        result = type_adapter(annotation).validate_json(data, strict=True)
    except Exception as exc:  # pydantic.ValidationError (imported lazily), or its recursion guard
        raise parse_error(field, _pydantic_reason(exc), text) from exc
    if not _all_finite(result):  # pydantic reads an integer too large for a float as inf
        raise parse_error(field, "a number in the value is too large for a float", text)
    return result


def _pydantic_reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    try:
        details = errors() if callable(errors) else []
    except Exception:
        details = []
    if not details:
        return str(exc).splitlines()[0][:200]
    parts = []
    for d in details[:3]:
        where = ".".join(str(p) for p in d.get("loc", ())) or "the value"
        parts.append(f"at {where}: {d.get('msg', 'invalid')}, got {_shown(d.get('input'))}")
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return "; ".join(parts) + more


def _all_finite(value: Any, depth: int = 0) -> bool:
    """Whether no float inside ``value`` (lists, dicts, models, dataclasses) is inf or nan."""
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 100 or isinstance(value, (str, bytes, int)):
        return True
    if isinstance(value, dict):
        return all(_all_finite(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_all_finite(v, depth + 1) for v in value)
    if hasattr(value, "__dict__"):
        return all(_all_finite(v, depth + 1) for v in vars(value).values())
    return True


def parse_error(field: str, why: str, text: str) -> ParseError:
    return ParseError(f"field {field!r}: {why}", completion=text, field=field)


def type_adapter(annotation: Any) -> Any:
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


def options_of(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(m.value for m in annotation)
    return None


def optional_inner(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None
