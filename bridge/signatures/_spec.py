"""Signature specs: ``"question -> answer: int"`` turned into fields, and field types checked and named.

``Field`` (one named, typed field) lives here so that the string form can build fields without
importing ``_signature.py``. ``parse_spec`` reads the string form; types in it are read with
``ast`` against a fixed table of names, so nothing is evaluated. ``check_type`` says whether a
field type is one lmbridge can prompt for and validate, and ``type_name`` gives the short name
prompts and ``Signature.spec()`` show.
"""

from __future__ import annotations

import ast
import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from lmbridge.errors import SignatureError

FieldKind = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class Field:
    """One named, typed field of a signature."""

    name: str
    kind: FieldKind
    annotation: Any = str
    """The Python type of the value: str, int, Literal[...], list[...], a pydantic model, ..."""
    desc: str = ""
    """What the field holds, shown to the model."""
    prefix: str = ""
    """The label the prompt uses for the field; derived from the name when empty."""
    extract_from: str | None = None
    """For a ``str`` output: the input field (text or a list of passages) the answer must be copied
    from, word for word. Decoded under a span grammar where the LM can; checked after parsing, a
    ParseError when the answer is not a span (see ``lmbridge.signatures.check_spans``)."""

    @property
    def label(self) -> str:
        return self.prefix or label_for(self.name)


def label_for(name: str) -> str:
    """``"question_text"`` -> ``"Question Text"``: the label a field gets in prompts."""
    words = [w for w in name.replace("_", " ").split(" ") if w]
    return " ".join(w[:1].upper() + w[1:] for w in words) or name


# -- the string form --------------------------------------------------------------------------------

_TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "tuple": tuple,
    "List": list, "Dict": dict, "Tuple": tuple, "Any": Any, "Optional": typing.Optional,
    "Union": Union, "Literal": Literal,
}


def parse_spec(spec: str, custom_types: Mapping[str, Any] | None = None) -> dict[str, Field]:
    if not isinstance(spec, str):
        raise SignatureError(f"a signature string was expected, got {type(spec).__name__}")
    if spec.count("->") != 1:
        raise SignatureError(f"signature {spec!r} must contain exactly one '->' between inputs and outputs")
    left, right = spec.split("->")
    table = {**_TYPES, **(custom_types or {})}
    inputs = _parse_side(left, "input", table, spec)
    outputs = _parse_side(right, "output", table, spec)
    if not outputs:
        raise SignatureError(f"signature {spec!r} has no output field after '->'")
    dup = set(inputs) & set(outputs)
    if dup:
        raise SignatureError(f"signature {spec!r}: field {sorted(dup)[0]!r} is both an input and an output")
    return {**inputs, **outputs}


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _parse_side(text: str, kind: FieldKind, table: Mapping[str, Any], spec: str) -> dict[str, Field]:
    out: dict[str, Field] = {}
    if not text.strip():
        return out
    for part in _split_top(text):
        part = part.strip()
        if not part:
            raise SignatureError(f"signature {spec!r}: empty field name (a stray comma?)")
        name, _, type_text = part.partition(":")
        name = name.strip()
        if not name.isidentifier() or name.startswith("_"):
            raise SignatureError(f"signature {spec!r}: {name!r} is not a valid field name")
        if name in out:
            raise SignatureError(f"signature {spec!r}: field {name!r} is declared twice")
        annotation = parse_type(type_text.strip(), table, spec) if type_text.strip() else str
        check_type(annotation, f"signature {spec!r}: field {name!r}")
        out[name] = Field(name, kind, annotation)
    return out


def parse_type(text: str, table: Mapping[str, Any], spec: str = "") -> Any:
    """Read a type expression such as ``list[str]`` or ``Literal['a', 'b']`` without evaluating it."""
    where = f"signature {spec!r}: " if spec else ""
    try:
        node = ast.parse(text, mode="eval").body
        return _type_from_node(node, table, where, text, 0)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: a NUL byte
        if isinstance(exc, SignatureError):
            raise
        raise SignatureError(f"{where}cannot read the type {text[:200]!r}") from exc


def _union_members(node: ast.BinOp) -> list[ast.expr]:
    """The operands of ``a | b | c``, read without recursion (the tree leans left, one level per ``|``)."""
    members: list[ast.expr] = []
    current: ast.expr = node
    while isinstance(current, ast.BinOp) and isinstance(current.op, ast.BitOr):
        members.append(current.right)
        current = current.left
    members.append(current)
    return members[::-1]


def _type_from_node(node: ast.expr, table: Mapping[str, Any], where: str, text: str, depth: int) -> Any:
    if depth > MAX_TYPE_DEPTH:
        raise SignatureError(f"{where}the type {text[:80]!r} is nested more than {MAX_TYPE_DEPTH} deep")
    if isinstance(node, ast.Name):
        if node.id not in table:
            raise SignatureError(f"{where}unknown type {node.id!r} in {text!r}; "
                                 f"known: {', '.join(sorted(table))} (pass custom_types= for others)")
        return table[node.id]
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        members = tuple(_type_from_node(m, table, where, text, depth + 1) for m in _union_members(node))
        return Union[members]
    if isinstance(node, ast.Subscript):
        origin = _type_from_node(node.value, table, where, text, depth + 1)
        args_node = node.slice
        arg_nodes = list(args_node.elts) if isinstance(args_node, ast.Tuple) else [args_node]
        if origin is Literal:
            values = []
            for a in arg_nodes:
                if not isinstance(a, ast.Constant) or not isinstance(a.value, (str, int, bool)):
                    raise SignatureError(f"{where}Literal takes strings, numbers or booleans, in {text!r}")
                values.append(a.value)
            return Literal[tuple(values)]
        args = tuple(_type_from_node(a, table, where, text, depth + 1) for a in arg_nodes)
        try:
            return origin[args if len(args) > 1 else args[0]]
        except Exception as exc:  # TypeError mostly: int[str], Optional[int, str]
            raise SignatureError(f"{where}{text!r} is not a valid type: {exc}") from exc
    raise SignatureError(f"{where}cannot read the type {text!r}")


# -- type checks and names ------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))
MAX_TYPE_DEPTH = 20
"""How deeply a field type may nest (``list[list[...]]``); deeper types are a SignatureError."""
_ARITY = {list: (1,), dict: (2,)}  # how many arguments a parametrised container takes


def check_type(annotation: Any, where: str, depth: int = 0) -> None:
    """Raise SignatureError when a field type is not one lmbridge can prompt for and validate.

    Bare ``Literal``, ``Optional`` and ``Union`` (no arguments), ``dict[str]`` and other containers
    with the wrong number of arguments, and types nested deeper than ``MAX_TYPE_DEPTH`` are refused
    here, when the signature is made, rather than failing at call time.
    """
    if depth > MAX_TYPE_DEPTH:
        raise SignatureError(f"{where}: the field type is nested more than {MAX_TYPE_DEPTH} deep")
    if annotation in _SCALARS or annotation is Any:
        return
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum) or _is_model(annotation) or annotation in (list, dict, tuple):
            return
        raise SignatureError(f"{where}: unsupported field type {annotation.__name__!r}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        if not args or any(not isinstance(a, (str, int, bool, enum.Enum, type(None))) for a in args):
            raise SignatureError(f"{where}: Literal takes strings, numbers or booleans, got {annotation!r}")
        return
    if origin is typing.Annotated:
        check_type(args[0], where, depth + 1)
        return
    if origin in _ARITY and len(args) not in _ARITY[origin]:
        raise SignatureError(f"{where}: {type_name(origin)}[...] takes {_ARITY[origin][0]} type argument(s), "
                             f"got {annotation!r}")
    if origin in (list, dict, tuple, Union) or _is_union_type(annotation):
        for arg in args:
            if arg is not Ellipsis:
                check_type(arg, where, depth + 1)
        return
    shown = getattr(annotation, "_name", None) or repr(annotation)
    raise SignatureError(f"{where}: unsupported field type {shown!r} (a bare Literal, Optional or Union "
                         "needs its arguments, e.g. Optional[int])")


def _is_union_type(annotation: Any) -> bool:
    import types as _t
    return isinstance(annotation, _t.UnionType)


def _is_model(tp: type) -> bool:
    return any(c.__name__ == "BaseModel" and c.__module__.startswith("pydantic") for c in tp.__mro__)


def type_name(annotation: Any) -> str:
    """A short readable name for a type, as shown in prompts and in ``spec()``."""
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    if origin is Union or _is_union_type(annotation):
        args = typing.get_args(annotation)
        if len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            return f"Optional[{type_name(inner)}]"
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        args = typing.get_args(annotation)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(a) for a in args)}]" if args else base
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)
