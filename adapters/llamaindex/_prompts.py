"""LlamaIndex prompts, both ways.

* ``from_llamaindex_prompt(template, outputs=...)`` migrates a ``PromptTemplate``,
  ``ChatPromptTemplate``, ``RichPromptTemplate`` or ``SelectorPromptTemplate`` (its default) into a
  ``lmbridge.Signature``. The hand-written text is kept as the instructions, line for line, and a
  variable inside it stays where it stands, as an input slot ``{name}`` that the format writes with
  the call's value (see ``lmbridge.formats``: the value stands once, in its sentence). The closing
  run of lines that only present a variable (``Query: {query_str}``, ``{context_str}`` alone, or a
  lead-in sentence ``The table schema is: {schema}``) is dropped, because the format writes those
  inputs there, in the same place, under their labels, and the hand-written label (``Query``)
  becomes the field's label. A template that is its variables alone keeps them as its instructions.
  A trailing answer cue (``Answer:``, ``SQL: ``) becomes the first output field's label.
  ``context_str`` (by default) becomes a ``list[str]`` input, for retrieved passages.
  ``template_var_mappings`` are honoured (the field takes the name the caller passes);
  ``function_mappings`` are refused with a ``SignatureError``: a signature holds no code.
* ``to_llamaindex_prompt(predictor)`` exports a (compiled) predictor as a LlamaIndex
  ``ChatPromptTemplate`` that renders exactly the messages lmbridge sends, with an output parser
  that reads the completion back into the typed output fields. A template carries messages only, so
  the export refuses (``ConfigurationError``, naming what and what to choose instead) a predictor
  whose request carries more: label scoring, ``TextFormat``'s raw completion endpoint and stop
  sequences, a decoding constraint or JSON mode on the predictor's LM, or its own ``lm_params``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmbridge import (
    ChatFormat,
    ConfigurationError,
    Predict,
    PromptFormat,
    Signature,
    SignatureError,
    current,
    make_signature,
)
from lmbridge.adapters.llamaindex._nodes import require_llamaindex

if TYPE_CHECKING:
    from llama_index.core.prompts import BasePromptTemplate, ChatPromptTemplate

PASSAGE_VARS = ("context_str",)
"""Template variables migrated as ``list[str]`` passages by default."""

_MARK = "\x00"
_SLOT_LINE = re.compile(r"^\s*(?:([^\n\x00]{1,200}?)\s*:)?\s*\x00(\w+)\x00\s*$")
_CUE_LINE = re.compile(r"^\s*([^:\n\x00]{1,40}?)\s*:\s*$")
_VAR = re.compile(r"\{([^{}]+)\}")
_RICH_VAR = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_RICH_CHAT = re.compile(r"\{%\s*chat\s+role\s*=\s*[\"'](\w+)[\"']\s*%\}(.*?)\{%\s*endchat\s*%\}", re.S)


@dataclass
class _Migration:
    order: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    answer_label: str | None = None
    slotted: set[str] = field(default_factory=set)


def from_llamaindex_prompt(template: BasePromptTemplate, outputs: str = "answer: str", *,
                           instructions: str | None = None, passages: Sequence[str] = PASSAGE_VARS,
                           name: str = "PromptSignature") -> type[Signature]:
    """Migrate a LlamaIndex prompt template into a signature (see the module docstring).

    ``outputs`` is the right-hand side of a signature string (``"answer: str, score: int"``);
    ``passages`` names the variables that become ``list[str]`` inputs; ``instructions`` replaces
    the derived instructions.
    """
    require_llamaindex()
    if getattr(template, "function_mappings", None):
        names = sorted(template.function_mappings or {})
        raise SignatureError(f"the template computes {names} with function_mappings at format time; a signature "
                             "holds no code: compute them before the call and pass them as inputs "
                             "(remove the function_mappings), or pass instructions=")
    renames = {tv: kw for kw, tv in (getattr(template, "template_var_mappings", None) or {}).items()}
    partials = {k: v for k, v in (getattr(template, "kwargs", None) or {}).items()}
    state = _Migration()
    marked = []
    for role, text in _texts(template):
        if role == "assistant":
            raise SignatureError("the template has a fixed assistant turn; give it to Predict as a demo instead")
        marked.append(_marked(text, partials, _variables(template), rich=_is_rich(template)))
        _read(marked[-1], state)
    if state.kept and state.answer_label is None:
        last = state.kept[-1]
        cue = _CUE_LINE.match(last)
        if cue and last.rstrip().endswith(":"):
            state.answer_label = cue.group(1).strip()
            state.kept.pop()
    if not re.sub(rf"{_MARK}\w+{_MARK}", "", "".join(marked)).strip():  # no hand-written text: keep it as it is
        state = _Migration(order=state.order, labels=state.labels, kept="\n".join(marked).splitlines())
    derived = _slotted("\n".join(state.kept).strip("\n"), renames)
    fields = [renames.get(v, v) for v in state.order]
    if not fields:
        raise SignatureError("the template has no variables: a signature needs at least one input field")
    spec = ", ".join(f"{f}: list[str]" if v in passages else f"{f}: str" for f, v in zip(fields, state.order))
    signature = make_signature(f"{spec} -> {outputs}", instructions if instructions is not None else derived or None,
                               name=name)
    for var in state.order:  # LlamaIndex's "_str" suffix is a naming habit, not part of the label
        label = state.labels.get(var) or (var[:-4].replace("_", " ").title() if var.endswith("_str") else "")
        if label:
            signature = signature.with_updated_field(renames.get(var, var), prefix=label)
    if state.answer_label:
        first = next(iter(signature.output_fields))
        signature = signature.with_updated_field(first, prefix=state.answer_label)
    return signature


def lost_lines(template: BasePromptTemplate, signature: type[Signature]) -> list[str]:
    """The hand-written lines of ``template`` that ``signature`` does not keep, as an instruction
    line (variables inside a sentence written as references) or as a field label. Empty: the
    prompt migrated verbatim."""
    labels = {f.label for f in signature.fields().values()}
    instructions = set(signature.instructions.splitlines())
    partials = dict(getattr(template, "kwargs", None) or {})
    renames = {tv: kw for kw, tv in (getattr(template, "template_var_mappings", None) or {}).items()}
    lost = []
    for _role, text in _texts(template):
        lines = _marked(text, partials, _variables(template), rich=_is_rich(template)).splitlines()
        tail = _tail(lines)
        for i, line in enumerate(lines):
            if not line.strip() or _slotted(line, renames).rstrip() in instructions:
                continue
            slot = _slot(line, sentence=i >= tail)
            cue = _CUE_LINE.match(line)
            if slot is not None and (slot.group(1) is None or slot.group(1).strip() in labels):
                continue
            if cue is not None and cue.group(1).strip() in labels:
                continue
            lost.append(line)
    return lost


def _variables(template: Any) -> list[str]:
    found = getattr(template, "template_vars", None) or []
    if not found and hasattr(template, "default_template"):
        found = getattr(template.default_template, "template_vars", None) or []
    return [str(v) for v in found]


def _is_rich(template: Any) -> bool:
    return type(template).__name__ == "RichPromptTemplate"


def _texts(template: Any) -> list[tuple[str, str]]:
    """(role, text) of each part of a template, in order."""
    from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate, SelectorPromptTemplate

    if isinstance(template, SelectorPromptTemplate):
        return _texts(template.default_template)
    if isinstance(template, PromptTemplate):
        return [("user", template.template)]
    if isinstance(template, ChatPromptTemplate):
        pieces = []
        for message in template.message_templates:
            role = message.role.value if hasattr(message.role, "value") else str(message.role)
            pieces.append((role, message.content or ""))
        return pieces
    if _is_rich(template):
        text = str(template.template_str)
        chats = _RICH_CHAT.findall(text)
        rest = _RICH_CHAT.sub("", text)
        if "{%" in rest or "{#" in rest:
            raise SignatureError("this RichPromptTemplate has logic (jinja blocks) that a signature cannot hold; "
                                 "pass instructions= and keep the logic in code")
        return [(role, body.strip("\n")) for role, body in chats] if chats else [("user", text)]
    raise SignatureError(f"from_llamaindex_prompt takes a PromptTemplate, ChatPromptTemplate, RichPromptTemplate or "
                         f"SelectorPromptTemplate, got {type(template).__name__}")


def _marked(text: str, partials: Mapping[str, Any], variables: Sequence[str], *, rich: bool) -> str:
    """The text with each variable as ``\\x00name\\x00``, partial variables filled in. LlamaIndex
    fills ``{name}`` for known variables only and leaves every other brace as written; so does this."""
    known = set(variables) | set(partials)

    def mark(match: re.Match[str]) -> str:
        var = match.group(1).strip() if rich else match.group(1)
        if var not in known:
            return match.group(0)
        return str(partials[var]) if var in partials else f"{_MARK}{var}{_MARK}"

    return (_RICH_VAR if rich else _VAR).sub(mark, text)


def _slot(line: str, *, sentence: bool = False) -> re.Match[str] | None:
    """A line that presents a variable at its end, alone or after a short label (``Query:
    {query_str}``); with ``sentence``, after any lead-in sentence too (``The original query is as
    follows: {query_str}``)."""
    slot = _SLOT_LINE.match(line)
    if slot is None or slot.group(1) is None or sentence:
        return slot
    return slot if len(slot.group(1).split()) <= 4 else None


def _tail(lines: list[str]) -> int:
    """Where the closing run of variable lines starts: from there on, every line presents a
    variable (or is blank, or is the answer cue). A sentence lead-in there becomes the field's label,
    because the format writes the inputs last, in that same place, so the value stays in its sentence;
    a lead-in higher up stays an instruction, with the variable as a reference."""
    start = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line.strip() and _SLOT_LINE.match(line) is None and _CUE_LINE.match(line) is None:
            break
        start = i
    return start


def _read(text: str, state: _Migration) -> None:
    """Sort the lines of one part: the closing run of variable lines out (their labels kept as the
    fields' labels), every other line kept, its variables as slots."""
    lines = text.splitlines()
    tail = _tail(lines)
    for i, line in enumerate(lines):
        slot = _slot(line, sentence=i >= tail)
        if slot is not None and i >= tail and slot.group(2) not in state.slotted:
            label, var = slot.group(1), slot.group(2)
            if label is None and state.kept:
                cue = _CUE_LINE.match(state.kept[-1])
                if cue is not None and len(cue.group(1).split()) <= 4:
                    label = cue.group(1)
                    state.kept.pop()
            if var not in state.order:
                state.order.append(var)
            if label:
                state.labels.setdefault(var, label.strip())
            continue
        if slot is not None and slot.group(1):  # a labelled value above more text: stays, its label is the field's
            state.labels.setdefault(slot.group(2), slot.group(1).strip())
        for var in re.findall(rf"{_MARK}(\w+){_MARK}", line):
            state.slotted.add(var)
            if var not in state.order:
                state.order.append(var)
        state.kept.append(line.rstrip())


def _slotted(text: str, renames: Mapping[str, str]) -> str:
    """``text`` with each marked variable as the slot ``{field}`` of the field it becomes."""
    return re.sub(rf"{_MARK}(\w+){_MARK}", lambda m: "{" + renames.get(m.group(1), m.group(1)) + "}", text)


# -- out: a compiled predictor as a ChatPromptTemplate --------------------------------------------

def to_llamaindex_prompt(predictor: Predict) -> ChatPromptTemplate:
    """The predictor's prompt as a LlamaIndex ``ChatPromptTemplate``.

    ``format_messages(**inputs)`` gives exactly the messages ``predictor.messages(**inputs)`` gives:
    its instructions, demos and format, with the input fields as template variables. String inputs
    are substituted as they are; other inputs (lists of passages, numbers, objects) are rendered by
    the predictor's format through ``function_mappings``. The template's ``output_parser`` reads a
    completion back into a dict of the typed output fields (``ParseError`` when it cannot).

    The template carries the messages and nothing else; a predictor whose request carries more is
    refused with a ``ConfigurationError`` (see ``_refuse_uncarried``). The decoding constraint and JSON
    mode are checked on the predictor's LM, else the configured one.
    """
    require_llamaindex()
    from llama_index.core.llms import ChatMessage
    from llama_index.core.prompts import ChatPromptTemplate

    if not isinstance(predictor, Predict):
        raise TypeError(f"to_llamaindex_prompt needs a bridge Predict, got {type(predictor).__name__}")
    fmt = predictor.format or current().format or ChatFormat()
    _refuse_uncarried(predictor, fmt)
    signature = predictor.signature
    sentinels = {n: f"{_MARK}{n}{_MARK}" for n in signature.input_fields}
    shape = predictor.messages(**sentinels)
    messages = []
    for m in shape:
        clash = [n for n in sentinels if "{" + n + "}" in m["content"]]
        if clash:
            raise ValueError(f"the predictor's prompt writes {{{clash[0]}}} literally (in its instructions or "
                             "demos); a LlamaIndex template would fill it with the input: reword it to export")
        content = m["content"]
        for n, s in sentinels.items():
            content = content.replace(s, "{" + n + "}")
        messages.append(ChatMessage(role=m["role"], content=content))
    mappings = {n: _renderer(predictor, shape, sentinels, n) for n, f in signature.input_fields.items()
                if f.annotation is not str}
    return ChatPromptTemplate(message_templates=messages, output_parser=_parser(signature, fmt),
                              function_mappings=mappings or None)


def _refuse_uncarried(predictor: Predict, fmt: PromptFormat) -> None:
    """ConfigurationError when the predictor's request carries more than its messages, which is all a
    LlamaIndex template holds: label scoring, the raw completion endpoint, a decoding constraint, JSON
    mode or request parameters of its own. The message names what cannot be carried and what to choose."""
    instead = "or put the program itself in LlamaIndex with to_query_engine(program) or to_llamaindex_tool(program)"
    if fmt.scoring != "generate":
        raise ConfigurationError(
            f"cannot export {fmt.name} format with scoring={fmt.scoring!r} as a LlamaIndex prompt: the program picks "
            "the label from the model's option probabilities, and a LlamaIndex LLM samples text instead. Export a "
            f"predictor compiled with scoring='generate', {instead}")
    lm = predictor.lm or current().lm
    params = dict(predictor.request_params(lm)) if lm is not None else \
        {**fmt.endpoint_params(predictor.signature), **predictor.lm_params}
    params.pop("rollout_id", None)  # a cache-key salt, never sent
    on = f"on {lm.model}" if lm is not None else "on its LM"
    if params.get("endpoint") == "completion":
        raise ConfigurationError(
            f"cannot export {fmt.name} format as a LlamaIndex prompt: the program sends one raw prompt to the "
            f"text-completion endpoint, with stop sequences {params.get('stop')}, which a chat template and "
            f"LlamaIndex's rendering of it for a completion model do not carry. Compile with ChatFormat, {instead}")
    response_format = params.get("response_format")
    if "grammar" in params or (isinstance(response_format, dict) and response_format.get("type") == "json_schema"):
        raise ConfigurationError(
            f"cannot export {fmt.name} format as a LlamaIndex prompt: {on} the program decodes within the "
            "signature's types (a decoding constraint), which a prompt template cannot carry. Compile with "
            f"constrained=False in the format, {instead}")
    if response_format is not None:
        raise ConfigurationError(
            f"cannot export {fmt.name} format as a LlamaIndex prompt: {on} the program asks for JSON mode "
            f"(response_format={response_format}), which a prompt template cannot carry. Compile with ChatFormat, "
            f"{instead}")
    if params:
        raise ConfigurationError(
            f"cannot export the predictor as a LlamaIndex prompt: it sends its own request parameters "
            f"{sorted(params)}, which a prompt template cannot carry. Set them on the LM the LlamaIndex LLM wraps "
            "(BridgeLLM(lm=LM(..., temperature=...))) and leave them off the predictor, " + instead)


def _renderer(predictor: Predict, shape: list[Any], sentinels: dict[str, str], name: str) -> Any:
    """A function mapping that writes the value of input ``name`` as the predictor's format does:
    the messages are formatted with the value in place of the sentinel and the value's text is cut
    out between the sentinel's neighbours."""
    where = next(i for i, m in enumerate(shape) if sentinels[name] in m["content"])
    before, _, after = shape[where]["content"].partition(sentinels[name])

    def render(**kwargs: Any) -> str:
        content: str = predictor.messages(**{**sentinels, name: kwargs[name]})[where]["content"]
        return content[len(before):len(content) - len(after)]

    return render


def _parser(signature: type[Signature], fmt: PromptFormat) -> Any:
    from llama_index.core.types import BaseOutputParser

    class SignatureOutputParser(BaseOutputParser):  # type: ignore[misc, unused-ignore]
        """Reads a completion into the typed output fields of ``signature``."""

        def parse(self, output: str) -> Any:
            return fmt.parse(signature, output)

        def format(self, query: str) -> str:
            return query  # the instructions are in the messages already

    return SignatureOutputParser()


__all__ = ["PASSAGE_VARS", "from_llamaindex_prompt", "lost_lines", "to_llamaindex_prompt"]
