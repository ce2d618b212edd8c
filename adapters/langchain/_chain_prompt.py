"""One prompt template of a user's chain as a learnable unit: what is learned, what is kept.

A template's learnable state is its instruction text and its demos; everything else (its
variables, roles, placeholders, partial variables, output contract) is kept. ``TemplateShape``
reads that split from a ``ChatPromptTemplate``, a ``PromptTemplate`` or a ``FewShotPromptTemplate``
and writes a new template of the same class for any instructions and demos:

* chat: the instruction is a leading system message with no variable in it (when there is none,
  a learned instruction becomes a new first system message); demos are example turns, the
  template's last human message written with the demo's values, then an AI message with its output,
  placed after the leading system messages;
* text: the instruction is the leading text up to the last blank line before the first variable;
  demos are example blocks, the rest of the template written with the demo's values, then the output;
* few-shot text: the instruction is the prefix (when it has no variable); demos are appended to the
  template's own examples, written by its own example prompt.

Instructions and demos equal to the original's give back the user's own template object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate, FewShotPromptTemplate, PromptTemplate
from langchain_core.prompts.chat import HumanMessagePromptTemplate, SystemMessagePromptTemplate

from lmbridge import ConfigurationError, Example
from lmbridge.adapters._templates import demo_block, plain, split_instruction

Kind = Literal["chat", "text", "fewshot"]
PROMPT_TYPES = (ChatPromptTemplate, PromptTemplate, FewShotPromptTemplate)


def _variables(part: Any) -> list[str]:
    return list(getattr(part, "input_variables", None) or [])


def _is_system(part: Any) -> bool:
    return isinstance(part, (SystemMessage, SystemMessagePromptTemplate))


def _system_text(part: Any) -> str | None:
    """The text of a system message with no variable in it, or None."""
    if isinstance(part, SystemMessage) and isinstance(part.content, str):
        return part.content
    if isinstance(part, SystemMessagePromptTemplate) and not _variables(part):
        prompt = part.prompt
        if isinstance(prompt, PromptTemplate) and prompt.template_format == "f-string":
            return prompt.format()
    return None


def _literal(text: str, template_format: str) -> str:
    """``text`` written so that the template engine reads it back unchanged."""
    if template_format == "f-string":
        return text.replace("{", "{{").replace("}", "}}")
    return f"{{% raw %}}{text}{{% endraw %}}" if any(t in text for t in ("{{", "{%", "{#")) else text


@dataclass(frozen=True)
class TemplateShape:
    """Where the learnable parts of one user template sit."""

    template: BasePromptTemplate[Any]
    kind: Kind
    instruction: str
    """The original instruction text ("" when the template has none)."""
    output: str
    """The output field's name: the demo key holding the model's reply."""

    @property
    def variables(self) -> list[str]:
        return list(self.template.input_variables)

    def compile(self, instructions: str, demos: Sequence[Example]) -> BasePromptTemplate[Any]:
        """The template with ``instructions`` and ``demos`` in the template's own shape."""
        if instructions == self.instruction and not demos:
            return self.template
        usable = [d for d in demos if self.output in d and all(v in d for v in self.variables)]
        if self.kind == "chat":
            return self._chat(instructions, usable)
        if self.kind == "text":
            return self._text(instructions, usable)
        return self._fewshot(instructions, usable)

    def _values(self, demo: Example) -> dict[str, Any]:
        return {**self.template.partial_variables, **{v: plain(demo[v]) for v in self.variables}}

    def _chat(self, instructions: str, demos: Sequence[Example]) -> BasePromptTemplate[Any]:
        assert isinstance(self.template, ChatPromptTemplate)
        parts: list[Any] = list(self.template.messages)
        if parts and _system_text(parts[0]) is not None and _system_text(parts[0]) == self.instruction \
                and self.instruction:
            parts = parts[1:]
        lead = 0
        while lead < len(parts) and _is_system(parts[lead]):
            lead += 1
        query = next((p for p in reversed(parts) if isinstance(p, (HumanMessagePromptTemplate, HumanMessage))), None)
        turns: list[BaseMessage] = []
        for demo in demos:
            if isinstance(query, HumanMessagePromptTemplate):
                values = self._values(demo)
                turns.append(query.format(**{v: values[v] for v in query.input_variables}))
            elif query is not None:
                turns.append(HumanMessage(content=query.content))
            turns.append(AIMessage(content=str(demo[self.output])))
        head: list[Any] = [SystemMessage(content=instructions)] if instructions else []
        return self.template.model_copy(update={"messages": [*head, *parts[:lead], *turns, *parts[lead:]]})

    def _text(self, instructions: str, demos: Sequence[Example]) -> BasePromptTemplate[Any]:
        assert isinstance(self.template, PromptTemplate)
        fmt = self.template.template_format
        _, body = split_instruction(self.template.template, fmt)
        body_template = PromptTemplate.from_template(body, template_format=fmt)
        blocks = []
        for demo in demos:
            values = self._values(demo)
            blocks.append(demo_block(body_template.format(**{v: values[v] for v in body_template.input_variables}),
                                str(demo[self.output])))
        head = "".join(_literal(text, fmt) + "\n\n" for text in [instructions, *blocks] if text)
        return self.template.model_copy(update={"template": head + body})

    def _fewshot(self, instructions: str, demos: Sequence[Example]) -> BasePromptTemplate[Any]:
        assert isinstance(self.template, FewShotPromptTemplate)
        names = self._example_names()
        extra = [{**{v: plain(d[v]) for v in self.variables}, names[1]: str(d[self.output])}
                 for d in demos]
        examples = [*(self.template.examples or []), *extra]
        prefix = _literal(instructions, self.template.template_format)
        if self.template.prefix and not self.instruction:  # a prefix with variables stays, after the instruction
            prefix = f"{prefix}\n\n{self.template.prefix}" if prefix else self.template.prefix
        return self.template.model_copy(update={"prefix": prefix, "examples": examples})

    def _example_names(self) -> tuple[list[str], str]:
        """The example prompt's variables that the suffix also has, and the one that holds the output."""
        assert isinstance(self.template, FewShotPromptTemplate)
        own = _variables(self.template.example_prompt)
        rest = [v for v in own if v not in self.variables]
        return [v for v in own if v in self.variables], rest[0]


def shape_of(template: BasePromptTemplate[Any], output: str, where: str) -> TemplateShape:
    """The learnable split of ``template``; ConfigurationError for a template it cannot learn in."""
    if isinstance(template, ChatPromptTemplate):
        first = template.messages[0] if template.messages else None
        return TemplateShape(template, "chat", _system_text(first) or "", output)
    if isinstance(template, PromptTemplate):
        if template.template_format not in ("f-string", "jinja2"):
            raise ConfigurationError(f"the prompt at {where} is a {template.template_format} template; lmbridge "
                                     "learns in f-string and jinja2 templates: use template_format='f-string'")
        instruction, _ = split_instruction(template.template, template.template_format)
        return TemplateShape(template, "text", instruction, output)
    if isinstance(template, FewShotPromptTemplate):
        own = _variables(template.example_prompt)
        rest = [v for v in own if v not in template.input_variables]
        if template.example_selector is not None or len(rest) != 1 or template.template_format != "f-string":
            raise ConfigurationError(
                f"the few-shot prompt at {where} cannot take learned demos: it needs a list of examples (not an "
                "example selector), an f-string format, and an example prompt with the suffix's variables plus "
                f"exactly one more, its answer (it has {own})")
        prefix = template.prefix
        instruction = prefix if prefix and "{" not in prefix else ""
        return TemplateShape(template, "fewshot", instruction, output)
    raise ConfigurationError(f"the prompt at {where} is a {type(template).__name__}; lmbridge learns in "
                             f"{', '.join(t.__name__ for t in PROMPT_TYPES)}")


def rendered(template: BasePromptTemplate[Any], values: Mapping[str, Any]) -> list[BaseMessage]:
    """The messages ``template`` renders for ``values``."""
    return template.invoke(dict(values)).to_messages()


__all__ = ["PROMPT_TYPES", "TemplateShape", "rendered", "shape_of"]
