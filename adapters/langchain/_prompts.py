"""LangChain prompt migration: a hand-written ``PromptTemplate`` or ``ChatPromptTemplate`` as a signature.

``from_prompt_template`` reads the template's text, turns its variables into input fields (keeping a
hand-written label as the field's prefix), drops the closing lines the prompt format writes itself,
and keeps the rest as instructions, a variable inside them as an input slot ``{name}``. It is
re-exported by ``lmbridge.adapters.langchain``, which shares ``require_langchain``, the check that
langchain-core is installed (with a pip hint when it is not).
langchain-core is imported when a function is called, never by importing this module.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lmbridge import Field, MissingDependencyError, Signature, SignatureError, make_signature
from lmbridge.signatures import label_for

if TYPE_CHECKING:
    pass


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


def template_signature(template: Any, outputs: Mapping[str, Field], *, instructions: str | None, name: str,
                       pieces: list[tuple[str, str]] | None = None) -> type[Signature]:
    """The signature of ``template`` with ``outputs`` as its output fields (see ``from_prompt_template``).
    ``pieces`` are the template's texts when the caller already has them."""
    # a fixed partial is filled in; a partial function stays a slot (an input field), called at format time
    partials = {k: v for k, v in (template.partial_variables or {}).items() if not callable(v)}
    order: list[str] = []
    labels: dict[str, str] = {}
    kept: list[str] = []
    placeholders: list[str] = []
    cues: list[str] = []
    lists: set[str] = set()
    slotted: set[str] = set()
    marked: list[str] = []
    for text, fmt in pieces if pieces is not None else template_texts(template):
        if fmt == "messages":  # a MessagesPlaceholder: the text is its variable name
            placeholders.append(text)
            if text in template.input_variables and text not in order:
                order.append(text)
            continue
        found: list[str] = []
        marked.append(_mark(text, fmt, partials, lists))
        kept.append(_strip_slots(marked[-1], order, labels, found, slotted))
        cues = found or cues
    if not placeholders and not re.sub(rf"{_MARK}\w+{_MARK}", "", "".join(marked)).strip():
        kept = [re.sub(rf"{_MARK}(\w+){_MARK}", r"{\1}", t).strip() for t in marked]  # variables alone: as written
    for var in template.input_variables:
        if var not in order:
            order.append(var)
    required_lists = [p for p in placeholders if p in template.input_variables]
    derived = "\n\n".join(k for k in kept if k).strip()
    fields: dict[str, Field] = {}
    for var in order:
        desc = "the earlier messages of the conversation" if var in required_lists else ""
        if var in lists:
            required_lists.append(var)
        label = labels.get(var, "")
        prefix = label if label and label.lower() != label_for(var).lower() else ""
        fields[var] = Field(var, "input", list[str] if var in required_lists else str, desc, prefix)
    clash = [n for n in outputs if n in fields]
    if clash:
        raise SignatureError(f"the template has input variable(s) {clash} named like the output field(s); "
                             "name the outputs differently with output_fields=")
    first = next(iter(outputs))
    for n, f in outputs.items():
        cue = cues[0] if cues and n == first and not f.prefix else ""
        fields[n] = Field(n, "output", f.annotation, f.desc, cue if cue.lower() != label_for(n).lower() else f.prefix)
    return make_signature(fields, instructions or derived or None, name=name)


def template_texts(template: Any) -> list[tuple[str, str]]:
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


_JINJA_LOOP = re.compile(r"\{%-?\s*for\s+(\w+)\s+in\s+(\w+)\s*-?%\}(.*?)\{%-?\s*endfor\s*-?%\}", re.S)
_MUSTACHE_LOOP = re.compile(r"\{\{#\s*(\w+)\s*\}\}(.*?)\{\{/\s*\1\s*\}\}", re.S)
_JINJA_VAR = re.compile(r"\{\{-?\s*([A-Za-z_]\w*)(?:\.\w+)*\s*(?:\|[^}]*)?-?\}\}")
_ITEM_ONLY = re.compile(r"^[\s\-*•\d.)\[\]:]*$")


def _mark(text: str, fmt: str, partials: Mapping[str, Any], lists: set[str] | None = None) -> str:
    """The template text with each variable as ``\\x00name\\x00`` and partials filled in.

    A jinja2 or mustache loop that only writes each item of a variable (``{% for d in docs %}- {{ d }}
    {% endfor %}``, ``{{#docs}}{{.}}{{/docs}}``) stands for that variable as a list input (added to
    ``lists``); any other control construct is a SignatureError naming it.
    """
    if fmt == "f-string":
        out: list[str] = []
        for literal, field_name, _spec, _conv in string.Formatter().parse(text):
            out.append(literal)
            if field_name is None:
                continue
            base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
            out.append(str(partials[base]) if base in partials else f"{_MARK}{base}{_MARK}")
        return "".join(out)
    found = lists if lists is not None else set()

    def loop(match: re.Match[str]) -> str:
        item, var, body = match.group(1), match.group(2), match.group(3)
        rest = re.sub(rf"\{{\{{-?\s*{item}(?:\.\w+)*\s*-?\}}\}}", "", body)
        if not _ITEM_ONLY.match(rest):
            raise SignatureError(f"the jinja2 loop {match.group(0)[:60]!r} writes more than each item of {var!r}; "
                                 "a signature cannot hold that: pass instructions= and build the text in code")
        found.add(var)
        return f"{_MARK}{var}{_MARK}" + ("\n" if body.endswith("\n") else "")

    def section(match: re.Match[str]) -> str:
        var, body = match.group(1), match.group(2)
        if not _ITEM_ONLY.match(re.sub(r"\{\{\s*\.\s*\}\}", "", body)):
            raise SignatureError(f"the mustache section {match.group(0)[:60]!r} does more than list {var!r}; "
                                 "a signature cannot hold that: pass instructions= and build the text in code")
        found.add(var)
        return f"{_MARK}{var}{_MARK}" + ("\n" if body.endswith("\n") else "")

    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S) if fmt == "jinja2" else text
    text = _JINJA_LOOP.sub(loop, text) if fmt == "jinja2" else _MUSTACHE_LOOP.sub(section, text)
    construct = re.search(r"\{%.*?%\}", text) if fmt == "jinja2" else re.search(r"\{\{[#^/>!&].*?\}\}", text)
    if construct is not None:
        kind = "jinja2 block" if fmt == "jinja2" else "mustache tag"
        raise SignatureError(f"the {kind} {construct.group(0)!r} is logic a signature cannot hold: pass "
                             "instructions= and keep the logic in code (or fill it before migrating)")

    def fill(match: re.Match[str]) -> str:
        var = match.group(1)
        return str(partials[var]) if var in partials else f"{_MARK}{var}{_MARK}"

    return (_JINJA_VAR if fmt == "jinja2" else _DOUBLE_BRACE).sub(fill, text)


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


def _strip_slots(text: str, order: list[str], labels: dict[str, str], cues: list[str] | None = None,
                 slotted: set[str] | None = None) -> str:
    """Drop the closing run of lines that only present variables (the format writes those inputs there,
    under their labels) and record their labels; keep every other line, its variables as input slots
    ``{name}`` (the format writes the value in place; see ``lmbridge.formats``), and record them in
    ``slotted``. The trailing answer cue (``"SQL Query:"``) is dropped too and recorded in ``cues``."""
    held = slotted if slotted is not None else set()
    kept: list[str] = []
    lines = text.splitlines()
    tail = _tail(lines)
    for i, line in enumerate(lines):
        slot = _slot_line(line)
        names = re.findall(rf"{_MARK}(\w+){_MARK}", line)
        if slot is not None and i >= tail and not held.intersection(names):
            label = slot.group(1)
            if label is None and kept and len(names) == 1 and _cue(kept[-1]) is not None:
                label = _cue(kept.pop())
            for var in names:
                if var not in order:
                    order.append(var)
            if label and len(names) == 1:
                labels.setdefault(names[0], label.strip())
            continue
        if slot is not None and slot.group(1) and len(names) == 1:  # a labelled value above more text
            labels.setdefault(names[0], slot.group(1).strip())
        for var in names:
            held.add(var)
            if var not in order:
                order.append(var)
        kept.append(re.sub(rf"{_MARK}(\w+){_MARK}", r"{\1}", line))
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and _cue(kept[-1]) is not None:  # the last line only: a cue above it is hand-written text
        cue = _cue(kept.pop())
        if cue is not None and cues is not None:
            cues.append(cue.strip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _slot_line(line: str) -> re.Match[str] | None:
    """A line that only presents variables, alone or after a short label (``Question: {question}``)."""
    slot = _SLOT.match(line)
    return slot if slot and (slot.group(1) is None or _is_label(slot.group(1))) else None


def _tail(lines: list[str]) -> int:
    """Where the closing run of variable lines starts: from there on every line presents variables, is
    a bare label (``Context:``, the answer cue) or is blank. The format writes its inputs last, in that
    same place; a variable line above more text stays in the text, its value in place."""
    start = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() and _slot_line(lines[i]) is None and _cue(lines[i]) is None:
            break
        start = i
    return start
