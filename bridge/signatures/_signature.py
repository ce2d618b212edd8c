"""Signatures: what a language-model step takes and returns, as typed fields plus instructions.

Two forms, accepted anywhere a signature is::

    class QA(lmbridge.Signature):
        \"\"\"Answer the question in a few words.\"\"\"
        question: str = lmbridge.InputField()
        answer: str = lmbridge.OutputField(desc="a short phrase")

    "context: list[str], question -> answer: int, confidence: float"

A signature is a class that is never instantiated. Transforms (``with_instructions``, ``prepend``,
``append``, ``delete``, ``with_updated_field``) return new classes and leave the original alone.
The string form is parsed in ``lmbridge.signature_spec``, which reads types with ``ast`` against a fixed
table of names: nothing is evaluated.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Union

from lmbridge.errors import SignatureError
from lmbridge.signatures._spec import Field as Field
from lmbridge.signatures._spec import FieldKind as FieldKind
from lmbridge.signatures._spec import check_type, parse_spec, type_name


class _FieldSpec:
    """What ``InputField()`` / ``OutputField()`` return: a placeholder until the class is built."""

    __slots__ = ("desc", "extract_from", "kind", "prefix")

    def __init__(self, kind: FieldKind, desc: str, prefix: str, extract_from: str | None = None) -> None:
        self.kind: FieldKind = kind
        self.desc = desc
        self.prefix = prefix
        self.extract_from = extract_from

    def __repr__(self) -> str:
        return f"{'InputField' if self.kind == 'input' else 'OutputField'}(desc={self.desc!r})"


def InputField(*, desc: str = "", prefix: str = "") -> Any:
    """Declare an input field of a class-form signature."""
    return _FieldSpec("input", desc, prefix)


def OutputField(*, desc: str = "", prefix: str = "", extract_from: str | None = None) -> Any:
    """Declare an output field of a class-form signature.

    ``extract_from="context"`` makes a ``str`` answer extractive: it must be a span, copied word for
    word, of the named input field (a text or a list of passages). The embedded model decodes it
    under a grammar built from that input on each call; any other LM's answer is checked, and an
    answer that is not a span is a ``ParseError`` (re-asked once, then counted as a failure)."""
    return _FieldSpec("output", desc, prefix, extract_from)


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
            spec = own.get(name)
            if name.startswith("_") or (name in RESERVED_NAMES and not isinstance(spec, _FieldSpec)):
                continue  # a class attribute such as ``instructions: ClassVar[str]``, not a field
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
            target[name] = Field(name, spec.kind, annotation, spec.desc, spec.prefix, spec.extract_from)
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
        new = Field(name, field.kind, annotation, field.desc, field.prefix, field.extract_from)
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


RESERVED_NAMES = ("instructions", "input_fields", "output_fields")
"""Names a field cannot have: the Signature class keeps its own data under them."""


def _validate(cls: type[Signature]) -> None:
    if not cls.output_fields:
        raise SignatureError(f"signature {cls.__name__} has no output field")
    for name, f in cls.fields().items():
        if not name.isidentifier() or name.startswith("_"):
            raise SignatureError(f"signature {cls.__name__}: {name!r} is not a usable field name")
        if name in RESERVED_NAMES:
            raise SignatureError(f"signature {cls.__name__}: a field cannot be named {name!r} (the signature "
                                 f"keeps its own data under that name); rename it, e.g. to 'task_{name}'")
        check_type(f.annotation, f"signature {cls.__name__}: field {name!r}")
        if f.extract_from is not None:
            _check_extractive(cls, f)


def _check_extractive(cls: type[Signature], f: Field) -> None:
    source = cls.input_fields.get(f.extract_from or "")
    where = f"signature {cls.__name__}: output {f.name!r} extracts from {f.extract_from!r}"
    if f.kind != "output" or f.annotation is not str:
        raise SignatureError(f"{where}, so it must be a str output field")
    if source is None:
        raise SignatureError(f"{where}, which is not one of its input fields {list(cls.input_fields)}")
    if source.annotation not in (str, list[str], typing.List[str]):  # noqa: UP006 - both spellings are accepted
        raise SignatureError(f"{where}, which must be a str or a list[str] (passages), not {source.annotation!r}")


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
