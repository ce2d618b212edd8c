"""Signatures: typed input and output fields, the "a, b: list[str] -> c: int" parser, and typed values read from
and written as text.
"""

from lmbridge.signatures._json_text import find_json, read_partial_object
from lmbridge.signatures._signature import (
    Field,
    InputField,
    OutputField,
    Signature,
    SignatureLike,
    ensure_signature,
    make_signature,
)
from lmbridge.signatures._spans import check_spans, extractive_fields, is_span, passages_of
from lmbridge.signatures._spec import label_for, type_name
from lmbridge.signatures._validate import validate
from lmbridge.signatures._values import coerce, describe_type, json_schema, render, render_input, to_jsonable

__all__ = [
    "Field",
    "InputField",
    "OutputField",
    "Signature",
    "SignatureLike",
    "check_spans",
    "coerce",
    "describe_type",
    "ensure_signature",
    "extractive_fields",
    "find_json",
    "is_span",
    "json_schema",
    "label_for",
    "make_signature",
    "passages_of",
    "read_partial_object",
    "render",
    "render_input",
    "to_jsonable",
    "type_name",
    "validate",
]
