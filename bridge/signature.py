"""Signatures: what a language-model step takes and returns, as typed fields plus instructions.

Two forms, accepted anywhere a signature is::

    class QA(bridge.Signature):
        \"\"\"Answer the question in a few words.\"\"\"
        question: str = bridge.InputField()
        answer: str = bridge.OutputField(desc="a short phrase")

    "context: list[str], question -> answer: int, confidence: float"

A signature is a class that is never instantiated. Transforms (``with_instructions``, ``prepend``,
``append``, ``delete``, ``with_updated_field``) return new classes and leave the original alone.
Types in the string form are read with ``ast`` against a fixed table of names: nothing is evaluated.
"""

from __future__ import annotations

import ast
import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Union

from bridge.errors import SignatureError

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

    @property
    def label(self) -> str:
        return self.prefix or label_for(self.name)


class _FieldSpec:
    """What ``InputField()`` / ``OutputField()`` return: a placeholder until the class is built."""

    __slots__ = ("desc", "kind", "prefix")

    def __init__(self, kind: FieldKind, desc: str, prefix: str) -> None:
        self.kind: FieldKind = kind
        self.desc = desc
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"{'InputField' if self.kind == 'input' else 'OutputField'}(desc={self.desc!r})"


def InputField(*, desc: str = "", prefix: str = "") -> Any:
    """Declare an input field of a class-form signature."""
    return _FieldSpec("input", desc, prefix)


def OutputField(*, desc: str = "", prefix: str = "") -> Any:
    """Declare an output field of a class-form signature."""
    return _FieldSpec("output", desc, prefix)


def label_for(name: str) -> str:
    """``"question_text"`` -> ``"Question Text"``: the label a field gets in prompts."""
    words = [w for w in name.replace("_", " ").split(" ") if w]
    return " ".join(w[:1].upper() + w[1:] for w in words) or name


class Signature:
    """Base class of every signature. Subclass it, or pass a string where a signature is taken."""

    instructions: ClassVar[str] = ""
    input_fields: ClassVar[dict[str, Field]] = {}
    output_fields: ClassVar[dict[str, Field]] = {}

    def __init__(self) -> None:
        raise TypeError("a Signature is a class that describes a step; it is never instantiated")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "input_fields" in own and "output_fields" in own:
            return  # built by make_signature: fields already set
        inputs: dict[str, Field] = {}
        outputs: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            if isinstance(base, type) and issubclass(base, Signature) and base is not Signature:
                inputs.update(base.input_fields)
                outputs.update(base.output_fields)
        raw = own.get("__annotations__", {})
        try:
            hints = typing.get_type_hints(cls, include_extras=True) if raw else {}
        except Exception as exc:
            if any(isinstance(a, str) for a in raw.values()):
                raise SignatureError(f"signature {cls.__name__}: cannot resolve a field type: {exc}") from exc
            hints = dict(raw)  # real types, in a module get_type_hints cannot see (exec, notebooks)
        for name in raw:
            if name.startswith("_") or name in ("instructions", "input_fields", "output_fields"):
                continue
            spec = own.get(name)
            if not isinstance(spec, _FieldSpec):
                raise SignatureError(
                    f"signature {cls.__name__}: field {name!r} must be declared with InputField() or OutputField()"
                )
            annotation = hints.get(name, str)
            check_type(annotation, f"{cls.__name__}.{name}")
            target = inputs if spec.kind == "input" else outputs
            if name in inputs or name in outputs:
                inputs.pop(name, None)
                outputs.pop(name, None)
            target[name] = Field(name, spec.kind, annotation, spec.desc, spec.prefix)
            delattr(cls, name)
        for name, value in own.items():
            if isinstance(value, _FieldSpec) and name not in raw:
                raise SignatureError(f"signature {cls.__name__}: field {name!r} needs a type annotation")
        cls.input_fields = inputs
        cls.output_fields = outputs
        doc = own.get("__doc__")
        cls.instructions = typing.cast(str, doc).strip() if doc else default_instructions(inputs, outputs)
        _validate(cls)

    # -- views ----------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> dict[str, Field]:
        return {**cls.input_fields, **cls.output_fields}

    @classmethod
    def spec(cls) -> str:
        """The string form, with types: ``"question: str -> answer: int"``."""
        def side(fs: dict[str, Field]) -> str:
            return ", ".join(f"{f.name}: {type_name(f.annotation)}" for f in fs.values())
        return f"{side(cls.input_fields)} -> {side(cls.output_fields)}"

    # -- transforms: each returns a new class ------------------------------------------------------
    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        return make_signature(cls.fields(), instructions, name=cls.__name__)

    @classmethod
    def with_updated_field(cls, name: str, *, desc: str | None = None, prefix: str | None = None,
                           annotation: Any = None) -> type[Signature]:
        fs = cls.fields()
        if name not in fs:
            raise SignatureError(f"signature {cls.__name__} has no field {name!r}")
        f = fs[name]
        fs[name] = replace(
            f,
            desc=f.desc if desc is None else desc,
            prefix=f.prefix if prefix is None else prefix,
            annotation=f.annotation if annotation is None else annotation,
        )
        return make_signature(fs, cls.instructions, name=cls.__name__)

    @classmethod
    def prepend(cls, name: str, field: Any, annotation: Any = str) -> type[Signature]:
        return cls._insert(0, name, field, annotation)

    @classmethod
    def append(cls, name: str, field: Any, annotation: Any = str) -> type[Signature]:
        return cls._insert(-1, name, field, annotation)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        fs = cls.fields()
        if name not in fs:
            raise SignatureError(f"signature {cls.__name__} has no field {name!r} to delete")
        del fs[name]
        return make_signature(fs, cls.instructions, name=cls.__name__)

    @classmethod
    def _insert(cls, where: int, name: str, field: Any, annotation: Any) -> type[Signature]:
        if not isinstance(field, _FieldSpec):
            raise SignatureError(f"{name!r}: pass InputField() or OutputField() to prepend/append")
        if name in cls.input_fields or name in cls.output_fields:
            raise SignatureError(f"signature {cls.__name__} already has a field {name!r}")
        check_type(annotation, name)
        new = Field(name, field.kind, annotation, field.desc, field.prefix)
        side = dict(cls.input_fields if field.kind == "input" else cls.output_fields)
        items = list(side.items())
        items.insert(len(items) if where == -1 else where, (name, new))
        side = dict(items)
        inputs = side if field.kind == "input" else dict(cls.input_fields)
        outputs = side if field.kind == "output" else dict(cls.output_fields)
        return make_signature({**inputs, **outputs}, cls.instructions, name=cls.__name__)


SignatureLike = Union[str, type[Signature]]


def default_instructions(inputs: Mapping[str, Field], outputs: Mapping[str, Field]) -> str:
    ins = ", ".join(f"`{n}`" for n in inputs)
    outs = ", ".join(f"`{n}`" for n in outputs)
    return f"Given {ins}, produce {outs}." if ins else f"Produce {outs}."


def _validate(cls: type[Signature]) -> None:
    if not cls.output_fields:
        raise SignatureError(f"signature {cls.__name__} has no output field")
    for name in cls.fields():
        if not name.isidentifier() or name.startswith("_"):
            raise SignatureError(f"signature {cls.__name__}: {name!r} is not a usable field name")


def make_signature(
    fields: str | Mapping[str, Field],
    instructions: str | None = None,
    *,
    name: str = "StringSignature",
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature class from its string form or from a mapping of ``Field`` objects."""
    if isinstance(fields, str):
        fs = parse_spec(fields, custom_types)
    else:
        fs = dict(fields)
    inputs = {n: f for n, f in fs.items() if f.kind == "input"}
    outputs = {n: f for n, f in fs.items() if f.kind == "output"}
    body: dict[str, Any] = {
        "input_fields": inputs,
        "output_fields": outputs,
        "instructions": instructions if instructions is not None else default_instructions(inputs, outputs),
        "__doc__": instructions,
    }
    cls = typing.cast(type[Signature], type(name, (Signature,), body))
    _validate(cls)
    return cls


def ensure_signature(sig: SignatureLike, instructions: str | None = None) -> type[Signature]:
    """Turn a string or a Signature class into a Signature class."""
    if isinstance(sig, str):
        return make_signature(sig, instructions)
    if isinstance(sig, type) and issubclass(sig, Signature) and sig is not Signature:
        return sig if instructions is None else sig.with_instructions(instructions)
    raise SignatureError(f"expected a signature string or a Signature subclass, got {sig!r}")


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
        out[name] = Field(name, kind, annotation)
    return out


def parse_type(text: str, table: Mapping[str, Any], spec: str = "") -> Any:
    """Read a type expression such as ``list[str]`` or ``Literal['a', 'b']`` without evaluating it."""
    where = f"signature {spec!r}: " if spec else ""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise SignatureError(f"{where}cannot read the type {text!r}") from exc
    return _type_from_node(node, table, where, text)


def _type_from_node(node: ast.expr, table: Mapping[str, Any], where: str, text: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in table:
            raise SignatureError(f"{where}unknown type {node.id!r} in {text!r}; "
                                 f"known: {', '.join(sorted(table))} (pass custom_types= for others)")
        return table[node.id]
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left = _type_from_node(node.left, table, where, text)
        right = _type_from_node(node.right, table, where, text)
        return Union[left, right]
    if isinstance(node, ast.Subscript):
        origin = _type_from_node(node.value, table, where, text)
        args_node = node.slice
        arg_nodes = list(args_node.elts) if isinstance(args_node, ast.Tuple) else [args_node]
        if origin is Literal:
            values = []
            for a in arg_nodes:
                if not isinstance(a, ast.Constant) or not isinstance(a.value, (str, int, bool)):
                    raise SignatureError(f"{where}Literal takes strings, numbers or booleans, in {text!r}")
                values.append(a.value)
            return Literal[tuple(values)]
        args = tuple(_type_from_node(a, table, where, text) for a in arg_nodes)
        try:
            return origin[args if len(args) > 1 else args[0]]
        except TypeError as exc:
            raise SignatureError(f"{where}{text!r} is not a valid type: {exc}") from exc
    raise SignatureError(f"{where}cannot read the type {text!r}")


# -- type checks and names ------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))


def check_type(annotation: Any, where: str) -> None:
    """Raise SignatureError when a field type is not one lmbridge can prompt for and validate."""
    if annotation in _SCALARS or annotation is Any:
        return
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum) or _is_model(annotation) or annotation in (list, dict, tuple):
            return
        raise SignatureError(f"{where}: unsupported field type {annotation.__name__!r}")
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return
    if origin is typing.Annotated:
        check_type(typing.get_args(annotation)[0], where)
        return
    if origin in (list, dict, tuple, Union) or _is_union_type(annotation):
        for arg in typing.get_args(annotation):
            if arg is not Ellipsis:
                check_type(arg, where)
        return
    raise SignatureError(f"{where}: unsupported field type {annotation!r}")


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
