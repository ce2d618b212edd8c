"""LangChain prompt migration: a hand-written ``PromptTemplate`` or ``ChatPromptTemplate`` as a signature.

``from_prompt_template`` reads the template's text, turns its variables into input fields (keeping a
hand-written label as the field's prefix), drops the lines the prompt format writes itself, and keeps
the rest as instructions. It is re-exported by ``adapters.langchain``, which shares
``require_langchain``, the check that langchain-core is installed (with a pip hint when it is not).
langchain-core is imported when a function is called, never by importing this module.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bridge import MissingDependencyError, Signature, SignatureError, make_signature

if TYPE_CHECKING:
    from langchain_core.prompts import BasePromptTemplate


def require_langchain() -> None:
    """Raise MissingDependencyError, naming the ``langchain`` extra, when langchain-core is missing."""
    try:
        import langchain_core  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("langchain-core", "langchain") from exc


# -- prompt templates as signatures -------------------------------------------------------------

_MARK = "\x00"
_CUE = re.compile(r"^\s*([^:\n\x00]{1,60}?)\s*:\s*$")  # a bare label line such as "Answer:"
_SLOT = re.compile(r"^\s*(?:([^:\n\x00]{1,60}?)\s*:)?\s*[\"'`]*((?:\x00\w+\x00[\"'`]*\s*)+)$")
_DOUBLE_BRACE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def from_prompt_template(template: BasePromptTemplate[Any], *, output_fields: str = "answer: str",
                         instructions: str | None = None, name: str = "PromptSignature") -> type[Signature]:
    """Migrate a hand-written LangChain prompt into a signature.

    Each template variable becomes an input field, in the order it first appears. A line that only
    presents a variable (``"Question: {question}"``, or ``"Context:"`` followed by ``"{context}"``)
    is dropped, since the prompt format writes every input with its label; a label that differs
    from the field's default label is kept as the field's prefix. Variables used inside a sentence
    become field references (`` `name` ``). Trailing answer cues (``"Answer:"``) are dropped, as the
    format ends each request with the first output's label. What is left is the instructions,
    unless ``instructions`` is given. ``output_fields`` is the right-hand side of a signature
    string (``"answer: str, confidence: float"``).

    For a ``ChatPromptTemplate``, system and human messages contribute text; fixed AI turns are
    left out (give them as demos instead); a required ``MessagesPlaceholder`` becomes a
    ``list[str]`` input, an optional one is dropped. Partial variables are filled in.
    """
    require_langchain()
    from langchain_core.prompts import BasePromptTemplate as LCPromptTemplate

    if not isinstance(template, LCPromptTemplate):
        hint = (" (a LlamaIndex template: use adapters.llamaindex.from_llamaindex_prompt)"
                if type(template).__module__.startswith("llama_index") else "")
        raise SignatureError(f"from_prompt_template takes a LangChain prompt template, got "
                             f"{type(template).__name__}{hint}")
    partials = {k: (v() if callable(v) else v) for k, v in (template.partial_variables or {}).items()}
    order: list[str] = []
    labels: dict[str, str] = {}
    kept: list[str] = []
    placeholders: list[str] = []
    for text, fmt in _template_texts(template):
        if fmt == "messages":  # a MessagesPlaceholder: the text is its variable name
            placeholders.append(text)
            if text in template.input_variables and text not in order:
                order.append(text)
            continue
        kept.append(_strip_slots(_mark(text, fmt, partials), order, labels))
    for var in template.input_variables:
        if var not in order:
            order.append(var)
    required_lists = [p for p in placeholders if p in template.input_variables]
    derived = "\n\n".join(k for k in kept if k).strip()
    inputs = ", ".join(f"{v}: list[str]" if v in required_lists else v for v in order)
    signature = make_signature(f"{inputs} -> {output_fields}", instructions or derived or None, name=name)
    for var, label in labels.items():
        if var in signature.input_fields and label.lower() != signature.input_fields[var].label.lower():
            signature = signature.with_updated_field(var, prefix=label)
    for var in required_lists:
        signature = signature.with_updated_field(var, desc="the earlier messages of the conversation")
    return signature


def _template_texts(template: Any) -> list[tuple[str, str]]:
    """(text, template_format) of each part of a prompt, in order; a message placeholder comes as
    (variable name, "messages")."""
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.prompts import (
        AIMessagePromptTemplate,
        ChatPromptTemplate,
        MessagesPlaceholder,
        StringPromptTemplate,
    )

    if isinstance(template, StringPromptTemplate):
        return [(_template_string(template), getattr(template, "template_format", "f-string"))]
    if not isinstance(template, ChatPromptTemplate):
        raise SignatureError(f"from_prompt_template takes a PromptTemplate or a ChatPromptTemplate, "
                             f"got {type(template).__name__}")
    pieces: list[tuple[str, str]] = []
    for message in template.messages:
        if isinstance(message, MessagesPlaceholder):
            pieces.append((message.variable_name, "messages"))
        elif isinstance(message, (AIMessagePromptTemplate, AIMessage)):
            continue
        elif isinstance(message, BaseMessage):
            content = message.content
            if isinstance(content, str):
                pieces.append((content.replace("{", "{{").replace("}", "}}"), "f-string"))
        else:
            prompts = getattr(message, "prompt", None)
            for prompt in prompts if isinstance(prompts, list) else [prompts]:
                if isinstance(prompt, StringPromptTemplate):
                    pieces.append((_template_string(prompt), getattr(prompt, "template_format", "f-string")))
    return pieces


def _template_string(prompt: Any) -> str:
    text = getattr(prompt, "template", None)
    if not isinstance(text, str):
        raise SignatureError(f"cannot read the text of {type(prompt).__name__}; pass instructions= instead")
    return text


def _mark(text: str, fmt: str, partials: Mapping[str, Any]) -> str:
    """The template text with each variable as ``\\x00name\\x00`` and partials filled in."""
    if fmt == "f-string":
        out: list[str] = []
        for literal, field_name, _spec, _conv in string.Formatter().parse(text):
            out.append(literal)
            if field_name is None:
                continue
            base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
            out.append(str(partials[base]) if base in partials else f"{_MARK}{base}{_MARK}")
        return "".join(out)
    if "{%" in text or "{{#" in text or "{{^" in text:
        raise SignatureError("this template has logic (sections or control blocks) that a signature cannot "
                             "hold; pass instructions= and keep the logic in code")

    def fill(match: re.Match[str]) -> str:
        var = match.group(1)
        return str(partials[var]) if var in partials else f"{_MARK}{var}{_MARK}"

    return _DOUBLE_BRACE.sub(fill, text)


_SENTENCE_WORDS = frozenset({"the", "following", "below", "above", "this", "these", "given", "please",
                             "your"})


def _cue(line: str) -> str | None:
    """The label of a bare label line (``"Answer:"``, ``"Customer review:"``), or None. A line that
    reads like a sentence (``"Summarize the following text:"``) is an instruction, not a label."""
    match = _CUE.match(line)
    return match.group(1) if match and _is_label(match.group(1)) else None


def _is_label(text: str) -> bool:
    words = text.lower().split()
    return 0 < len(words) <= 4 and not _SENTENCE_WORDS.intersection(words)


def _strip_slots(text: str, order: list[str], labels: dict[str, str]) -> str:
    """Drop the lines that only present variables, record their labels, reference the rest."""
    kept: list[str] = []
    for line in text.splitlines():
        slot = _SLOT.match(line)
        if slot and (slot.group(1) is None or _is_label(slot.group(1))):
            names = re.findall(rf"{_MARK}(\w+){_MARK}", slot.group(2))
            label = slot.group(1)
            if label is None and kept and len(names) == 1 and _cue(kept[-1]) is not None:
                label = _cue(kept.pop())
            for var in names:
                if var not in order:
                    order.append(var)
            if label and len(names) == 1:
                labels.setdefault(names[0], label.strip())
            continue
        for var in re.findall(rf"{_MARK}(\w+){_MARK}", line):
            if var not in order:
                order.append(var)
        kept.append(re.sub(rf"{_MARK}(\w+){_MARK}", r"`\1`", line))
    while kept and (not kept[-1].strip() or _cue(kept[-1]) is not None):
        kept.pop()
    cleaned = [ln for ln in kept if not ln.strip() or any(ch.isalnum() for ch in ln)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(cleaned)).strip()
