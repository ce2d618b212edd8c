"""What a program takes and returns, seen from LangChain: its signature, its fields as pydantic
models, and LangChain values (prompt values, messages, Documents) turned into input fields.

``program_signature`` finds the signature a program answers to; ``input_model`` and
``output_model`` are the pydantic models LangChain shows as the Runnable's or the tool's schema, and
``read_inputs`` turns whatever an LCEL step hands over into validated input fields, raising
``lmbridge.InputError`` (naming the field and the problem) before any model is called.
langchain-core is imported when a function that needs it is called.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from lmbridge import InputError, Module, Signature
from lmbridge.signatures import render_input

DocumentFormatter = Callable[[Any], str]
"""Writes one LangChain ``Document`` as the text of a passage."""


def program_signature(program: Module, given: type[Signature] | None = None) -> type[Signature] | None:
    """The signature ``program`` answers to, or None when it cannot be known.

    In order: ``given``; the program's own ``signature`` attribute (Predict, ReAct and modules that
    keep one); the signature of its only predictor when ``forward`` takes ``**inputs`` (as
    ChainOfThought does, whose outputs then include ``reasoning``). A module whose ``forward``
    names its parameters gets a signature from those names only when one of the ways above agrees.
    """
    if given is not None:
        return given
    own = getattr(program, "signature", None)
    if isinstance(own, type) and issubclass(own, Signature):
        return own
    predictors = program.named_predictors()
    named = forward_inputs(program)
    if len(predictors) == 1:
        sig = predictors[0][1].signature
        if named is None or list(named) == list(sig.input_fields):
            return sig
    return None


def forward_inputs(program: Module) -> dict[str, Any] | None:
    """The named parameters of ``program.forward`` with their annotations, or None for ``**inputs``."""
    try:
        params = inspect.signature(program.forward).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    try:
        hints = typing.get_type_hints(program.forward)
    except Exception:
        hints = {}
    return {n: hints.get(n, Any) for n, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def _model(name: str, fields: Mapping[str, tuple[Any, str]], *, extra: str) -> type[Any]:
    from pydantic import ConfigDict, create_model
    from pydantic import Field as PydanticField

    definitions: dict[str, Any] = {
        n: (annotation, PydanticField(description=desc or None)) for n, (annotation, desc) in fields.items()}
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)  # type: ignore[typeddict-item]
    return typing.cast(type[Any], create_model(name, __config__=config, **definitions))


def input_model(program: Module, signature: type[Signature] | None, name: str) -> type[Any] | None:
    """A pydantic model of the program's input fields (unknown keys forbidden), or None when the
    program's inputs are not known."""
    if signature is not None:
        fields = {n: (f.annotation, f.desc) for n, f in signature.input_fields.items()}
    else:
        named = forward_inputs(program)
        if named is None:
            return None
        fields = {n: (annotation, "") for n, annotation in named.items()}
    return _model(f"{name}Input", fields, extra="forbid")


def output_model(signature: type[Signature] | None, name: str, *, usage: bool) -> type[Any] | None:
    """A pydantic model of the output fields; other keys a module adds (ReAct's trajectory) allowed."""
    if signature is None:
        return None
    fields: dict[str, tuple[Any, str]] = {n: (f.annotation, f.desc) for n, f in signature.output_fields.items()}
    if usage:
        fields["usage"] = (dict[str, Any], "what the call cost: LM calls, cache hits, tokens, cost")
    return _model(f"{name}Output", fields, extra="allow")


# -- LangChain values as input fields -----------------------------------------------------------

def default_document_text(document: Any) -> str:
    """A Document as passage text: its content, then its short scalar metadata in parentheses."""
    meta = [f"{k}: {v}" for k, v in (getattr(document, "metadata", None) or {}).items()
            if isinstance(v, (str, int, float, bool)) and len(str(v)) <= 120]
    text = str(document.page_content)
    return f"{text} ({'; '.join(meta)})" if meta else text


def _documents(value: Any, write: DocumentFormatter) -> Any:
    """Documents (alone or in a list) as passage texts; anything else unchanged."""
    from langchain_core.documents import Document

    if isinstance(value, Document):
        return write(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Document) for v in value):
        return [write(v) for v in value]
    return value


def _for_field(value: Any, annotation: Any) -> Any:
    """Passage texts given to a plain ``str`` field become numbered lines, as a list input reads."""
    if annotation is str and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return render_input(value)
    return value


def bare_value(value: Any) -> Any:
    """The text of a prompt value or a message; any other value unchanged."""
    from langchain_core.messages import BaseMessage, get_buffer_string
    from langchain_core.prompt_values import ChatPromptValue, PromptValue

    if isinstance(value, ChatPromptValue):
        messages = value.to_messages()
        if len(messages) == 1 and isinstance(messages[0].content, str):
            return messages[0].content
        return get_buffer_string(messages)
    if isinstance(value, PromptValue):
        return value.to_string()
    if isinstance(value, BaseMessage):
        return value.text if isinstance(value.text, str) else str(value.content)
    return value


def read_inputs(value: Any, *, where: str, fields: Mapping[str, Any] | None, model: type[Any] | None,
                input_key: str | None, write_document: DocumentFormatter) -> dict[str, Any]:
    """The input fields for one call, validated against ``model`` when it is known.

    A mapping gives the fields by name. Anything else (a string, a prompt value, a message, a
    Document or a list of Documents) is the value of ``input_key``, or of the only input field.
    """
    if isinstance(value, Mapping):
        data = {str(k): v for k, v in value.items()}
    else:
        key = input_key or (next(iter(fields)) if fields is not None and len(fields) == 1 else None)
        if key is None:
            names = list(fields) if fields is not None else "unknown"
            raise InputError(f"{where} takes a dict of its input fields {names}, got {type(value).__name__}; "
                             "pass input_key= to to_runnable to take a bare value as one field")
        data = {key: bare_value(value)}
    data = {k: _documents(v, write_document) for k, v in data.items()}
    if fields is not None:
        data = {k: _for_field(v, fields.get(k)) for k, v in data.items()}
    if model is None:
        return data
    from pydantic import ValidationError

    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{where}: invalid input: {_problems(exc)}") from exc
    return {n: getattr(validated, n) for n in model.model_fields}


def _problems(exc: Any) -> str:
    parts = []
    for err in exc.errors()[:4]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "input"
        kind = err.get("type")
        message = "unknown field" if kind == "extra_forbidden" else \
            "missing field" if kind == "missing" else err.get("msg", "invalid")
        got = "" if kind == "missing" else f" (got {str(err.get('input'))[:60]!r})"
        parts.append(f"{where}: {message}{got}")
    return "; ".join(parts)


__all__ = ["DocumentFormatter", "bare_value", "default_document_text", "forward_inputs", "input_model",
           "output_model", "program_signature", "read_inputs"]
