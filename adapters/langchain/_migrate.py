"""Prompt migration beyond one template: few-shot examples as demos, output parsers as typed
outputs, and the migrated signature written out as Python source (``lmbridge migrate``).

``migrate_prompt(template)`` returns a ``MigratedPrompt``: the signature (see
``from_prompt_template`` for how text becomes fields and instructions) and the demos taken from a
``FewShotPromptTemplate`` or a ``FewShotChatMessagePromptTemplate`` (also inside a chat prompt).
``signature_source(signature)`` writes the class a user pastes into their code.
langchain-core is imported when a function is called.
"""

from __future__ import annotations

import enum
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmbridge import ChatFormat, Example, Field, Predict, PromptFormat, Signature, SignatureError, make_signature
from lmbridge.adapters.langchain._prompts import require_langchain, template_signature, template_texts
from lmbridge.signatures import type_name

if TYPE_CHECKING:
    from langchain_core.prompts import BasePromptTemplate


@dataclass
class MigratedPrompt:
    """A migrated prompt: its signature and the demos its few-shot examples became."""

    signature: type[Signature]
    demos: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the migration decided that a reader should know (an output renamed, ...)."""
    partials: dict[str, Callable[[], Any]] = field(default_factory=dict)
    """The template's partial functions, by input field: called each time ``inputs`` is."""
    format: PromptFormat | None = None
    """The prompt format that keeps the template's roles: ``ChatFormat(instructions="system")`` when the
    template opened with a system message (its instructions stay a system message), else None (the default)."""

    def predictor(self, **options: Any) -> Predict:
        """A ``Predict`` of the migrated prompt: its signature, its demos and the format that keeps its
        roles (``options`` go to ``Predict``, ``format=`` among them)."""
        options.setdefault("format", self.format)
        predictor = Predict(self.signature, **options)
        predictor.demos = list(self.demos)
        return predictor

    def inputs(self, **values: Any) -> dict[str, Any]:
        """``values`` plus the value of each partial function not given, called now (as LangChain
        calls it each time the template is formatted)."""
        return {**{k: f() for k, f in self.partials.items() if k not in values}, **values}


def from_prompt_template(template: BasePromptTemplate[Any], *, output_fields: str | None = None,
                         instructions: str | None = None, name: str = "PromptSignature",
                         output_parser: Any = None, types: Mapping[str, Any] | None = None) -> type[Signature]:
    """Migrate a hand-written LangChain prompt into a signature.

    Each template variable becomes an input field, in the order it first appears. The closing run of
    lines that only present a variable (``"Question: {question}"``, or ``"Context:"`` followed by
    ``"{context}"``) is dropped, since the prompt format writes those inputs there, with their labels;
    a label that differs from the field's default label is kept as the field's prefix. A variable
    anywhere else stays where it stands, as an input slot ``{name}`` of the instructions, which the
    format fills with the value (see ``lmbridge.formats``). Every other hand-written line is kept as
    written (code fences, JSON braces, separators); a template that is its variables alone is kept
    whole. The template's own answer cue (``"SQL Query:"``) becomes the first output field's prefix,
    since the format ends each request with that label. What is left is the instructions, unless
    ``instructions`` is given.

    ``output_fields`` is the right-hand side of a signature string (``"answer: str, confidence:
    float"``); ``types`` names the pydantic models (or enums) it uses. Without it, an
    ``output_parser`` (given, or the template's own) decides the outputs: a Pydantic or JSON parser
    gives the model's fields, a list parser ``items: list[str]``, a regex parser its keys;
    otherwise one ``answer: str`` (``output`` when a variable is already called ``answer``).

    For a ``ChatPromptTemplate``, system and human messages contribute text; fixed AI turns are
    left out (give them as demos instead); a required ``MessagesPlaceholder`` becomes a
    ``list[str]`` input, an optional one is dropped. Fixed partial variables are filled in; a partial
    function becomes an input field, which ``migrate_prompt(...).inputs(...)`` fills by calling it
    at format time. A few-shot
    template's examples are demos: use ``migrate_prompt`` to get them
    (this function refuses such a template rather than drop them).
    """
    require_langchain()
    from langchain_core.prompts import BasePromptTemplate as LCPromptTemplate

    if not isinstance(template, LCPromptTemplate):
        hint = (" (a LlamaIndex template: use lmbridge.adapters.llamaindex.from_llamaindex_prompt)"
                if type(template).__module__.startswith("llama_index") else "")
        raise SignatureError(f"from_prompt_template takes a LangChain prompt template, got "
                             f"{type(template).__name__}{hint}")
    migrated = migrate_prompt(template, output_fields=output_fields, instructions=instructions, name=name,
                              output_parser=output_parser, types=types)
    if migrated.demos:
        raise SignatureError(f"this template carries {len(migrated.demos)} few-shot examples: use "
                             "lmbridge.adapters.langchain.migrate_prompt(template) to get them as demos")
    return migrated.signature



def migrate_prompt(template: Any, *, output_fields: str | None = None, instructions: str | None = None,
                   name: str = "PromptSignature", output_parser: Any = None,
                   types: Mapping[str, Any] | None = None) -> MigratedPrompt:
    """Migrate ``template`` (see ``lmbridge.adapters.langchain.from_prompt_template``) with its examples."""
    require_langchain()
    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

    notes: list[str] = []
    parser = output_parser if output_parser is not None else getattr(template, "output_parser", None)
    variables = set(template.input_variables)
    outputs = _outputs(output_fields, parser, types, variables, notes)
    examples: list[dict[str, Any]] = []
    pieces: list[tuple[str, str]] | None = None
    if isinstance(template, FewShotPromptTemplate):
        examples = _static_examples(template)
        text = template.example_separator.join(p for p in (template.prefix, template.suffix) if p)
        inner = PromptTemplate(template=text, input_variables=template.input_variables,
                               partial_variables=template.partial_variables,
                               template_format=template.template_format)
        signature = template_signature(inner, outputs, instructions=instructions, name=name)
        example_outputs = _example_outputs(template.example_prompt, examples, variables)
    else:
        pieces, examples, example_outputs = _chat_pieces(template, variables)
        signature = template_signature(template, outputs, instructions=instructions, name=name, pieces=pieces)
    demos = [_demo(ex, signature, example_outputs) for ex in examples]
    dynamic = {k: v for k, v in (template.partial_variables or {}).items()
               if callable(v) and k in signature.input_fields}
    if dynamic:
        notes.append(f"partial function(s) {sorted(dynamic)} are input fields: pass migrated.inputs(...) to fill them")
    return MigratedPrompt(signature, demos, notes, dynamic, _role_format(template))


def _role_format(template: Any) -> PromptFormat | None:
    """``ChatFormat(instructions="system")`` for a chat template whose first message is a system one."""
    from langchain_core.messages import SystemMessage
    from langchain_core.prompts import ChatPromptTemplate, SystemMessagePromptTemplate

    first = template.messages[0] if isinstance(template, ChatPromptTemplate) and template.messages else None
    if isinstance(first, (SystemMessage, SystemMessagePromptTemplate)):
        return ChatFormat(instructions="system")
    return None


# -- outputs ---------------------------------------------------------------------------------------

def _outputs(spec: str | None, parser: Any, types: Mapping[str, Any] | None, variables: set[str],
             notes: list[str]) -> dict[str, Field]:
    known = dict(types or {})
    model = getattr(parser, "pydantic_object", None)
    if isinstance(model, type):
        known.setdefault(model.__name__, model)
    if spec is not None:
        return dict(make_signature(f"migrated_input -> {spec}", custom_types=known).output_fields)
    from_parser = _parser_outputs(parser)
    if from_parser:
        return from_parser
    out = next(n for n in ("answer", "output", "result", "response") if n not in variables)
    if out != "answer":
        notes.append(f"a template variable is named 'answer', so the output field is {out!r}")
    return {out: Field(out, "output", str)}


def _parser_outputs(parser: Any) -> dict[str, Field] | None:
    """Typed output fields for a LangChain output parser, or None for a text parser."""
    if parser is None:
        return None
    kind = type(parser).__name__
    model = getattr(parser, "pydantic_object", None)
    if isinstance(model, type) and hasattr(model, "model_fields"):
        return {n: Field(n, "output", f.annotation, f.description or "") for n, f in model.model_fields.items()}
    if "Json" in kind:
        return {"output": Field("output", "output", dict[str, Any], "a JSON object")}
    if "List" in kind:
        return {"items": Field("items", "output", list[str])}
    if "Boolean" in kind:
        return {"answer": Field("answer", "output", bool)}
    keys = getattr(parser, "output_keys", None)
    if isinstance(keys, list) and keys:
        return {k: Field(k, "output", str) for k in keys}
    choices = getattr(parser, "enum", None)
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        return {"answer": Field("answer", "output", choices)}
    if kind in ("StrOutputParser", "NoOpOutputParser"):
        return None
    raise SignatureError(f"cannot tell the outputs of the output parser {kind}: pass output_fields=")


# -- few-shot examples -------------------------------------------------------------------------------

def _static_examples(template: Any) -> list[dict[str, Any]]:
    if template.examples is None:
        raise SignatureError(f"{type(template).__name__} picks its examples with an example selector at run time; "
                             "pass the examples themselves (examples=[...]) to migrate them as demos")
    return [dict(e) for e in template.examples]


def _example_outputs(example_prompt: Any, examples: Sequence[Mapping[str, Any]], variables: set[str]) -> list[str]:
    """The keys of the examples that an AI message writes (empty when the example prompt is text)."""
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.prompts.chat import AIMessagePromptTemplate

    if isinstance(example_prompt, ChatPromptTemplate):
        return [v for m in example_prompt.messages if isinstance(m, AIMessagePromptTemplate)
                for v in m.input_variables]
    return []


def _chat_pieces(template: Any, variables: set[str]) -> tuple[list[tuple[str, str]], list[dict[str, Any]], list[str]]:
    """The texts of a (chat) prompt without its few-shot blocks, and those blocks' examples."""
    from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

    if not isinstance(template, ChatPromptTemplate):
        return template_texts(template), [], []
    kept = [m for m in template.messages if not isinstance(m, FewShotChatMessagePromptTemplate)]
    blocks = [m for m in template.messages if isinstance(m, FewShotChatMessagePromptTemplate)]
    examples: list[dict[str, Any]] = []
    outputs: list[str] = []
    for block in blocks:
        found = _static_examples(block)
        examples += found
        outputs = outputs or _example_outputs(block.example_prompt, found, variables)
    pieces = template_texts(ChatPromptTemplate.from_messages(kept)) if blocks else template_texts(template)
    return pieces, examples, outputs


def _demo(example: Mapping[str, Any], signature: type[Signature], answers: list[str]) -> Example:
    """An example as a demo: its keys mapped to the signature's fields by name, else by position. The
    answer keys are those ``answers`` names, else those named like an output, else the last key."""
    inputs, outputs = list(signature.input_fields), list(signature.output_fields)
    answers = answers or [k for k in example if k in outputs] or list(example)[-1:]
    given_in = [k for k in example if k not in answers]
    given_out = [k for k in answers if k in example]
    values: dict[str, Any] = {}
    for names, keys in ((inputs, given_in), (outputs, given_out)):
        by_name = [k for k in keys if k in names]
        if len(by_name) == len(keys):
            values.update({k: example[k] for k in keys})
        elif len(keys) == len(names):
            values.update({n: example[k] for n, k in zip(names, keys)})
        else:
            raise SignatureError(f"cannot match the example keys {keys} to the fields {names}; "
                                 "rename the example keys after the template's variables")
    return Example(values).with_inputs(*[n for n in inputs if n in values])


# -- the signature as Python source ------------------------------------------------------------------

def signature_source(signature: type[Signature]) -> str:
    """The signature as a class, ready to paste (types written by name; import the models it uses)."""
    lines = [f"class {signature.__name__}(lmbridge.Signature):"]
    doc = signature.instructions.replace('"""', '\\"\\"\\"')
    lines.append(f'    """{doc}"""')  # continuation lines unindented: the instructions are the text as is
    lines.append("")
    for f in signature.fields().values():
        maker = "InputField" if f.kind == "input" else "OutputField"
        args = [f"desc={f.desc!r}"] if f.desc else []
        if f.prefix:
            args.append(f"prefix={f.prefix!r}")
        lines.append(f"    {f.name}: {_type_source(f.annotation)} = lmbridge.{maker}({', '.join(args)})")
    return "\n".join(lines) + "\n"


def _type_source(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    return type_name(annotation)


_TYPING_NAMES = ("Any", "Literal", "Optional", "Union")


def source_imports(signature: type[Signature]) -> str:
    """The import lines ``signature_source(signature)`` needs: ``lmbridge``, the ``typing`` names its
    types are written with, and the module of each class it names (an enum, a pydantic model). A class
    that cannot be imported (defined in ``__main__`` or in a function) gets a comment saying so."""
    written = " ".join(_type_source(f.annotation) for f in signature.fields().values())
    names = [n for n in _TYPING_NAMES if re.search(rf"\b{n}\b", written)]
    lines = [f"from typing import {', '.join(names)}", ""] if names else []
    lines.append("import lmbridge")
    found: dict[str, set[str]] = {}
    for f in signature.fields().values():
        for cls in _classes(f.annotation):
            found.setdefault(cls.__module__, set()).add(cls.__qualname__)
    for module, classes in sorted(found.items()):
        local = sorted(c for c in classes if module == "__main__" or "<locals>" in c)
        if local:
            lines.append(f"# define {', '.join(c.rpartition('.')[2] for c in local)} above this class")
        if len(local) < len(classes):
            lines.append(f"from {module} import {', '.join(sorted(set(classes) - set(local)))}")
    return "\n".join(lines)


def _classes(annotation: Any) -> list[type]:
    """The classes an annotation names, other than builtins and typing's own."""
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return [] if annotation.__module__ in ("builtins", "typing") else [annotation]
    return [c for arg in typing.get_args(annotation) if not isinstance(arg, str | int | float | bool | None)
            for c in _classes(arg)]


def demos_jsonl(demos: Sequence[Example]) -> str:
    """The demos as JSON Lines, one object per demo."""
    from lmbridge.signatures import to_jsonable

    return "".join(json.dumps(to_jsonable(d.to_dict()), ensure_ascii=False) + "\n" for d in demos)


def print_migration(source: str, template: Any, *, output_fields: str | None = None, name: str | None = None,
                    demos: str | None = None, template_format: str = "f-string") -> int:
    """``lmbridge migrate``: print the signature class of ``template`` (or of the prompt in the text
    file ``source``) with ``import lmbridge`` above it; write its demos as JSONL to ``demos``."""
    from pathlib import Path

    if template is None:
        from langchain_core.prompts import PromptTemplate

        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the prompt file {source}: {exc}") from exc
        template = PromptTemplate.from_template(text, template_format=template_format)  # type: ignore[arg-type]
    stem = source.rpartition(":")[2] if ":" in source else Path(source).stem
    label = name or "".join(part.title() for part in stem.replace("-", "_").split("_")) or "PromptSignature"
    if type(template).__module__.startswith("llama_index"):  # a LlamaIndex prompt: its own migration
        from lmbridge.adapters.llamaindex import from_llamaindex_prompt

        migrated = MigratedPrompt(from_llamaindex_prompt(template, output_fields or "answer: str", name=label))
    else:
        migrated = migrate_prompt(template, output_fields=output_fields, name=label)
    print(f"{source_imports(migrated.signature)}\n\n\n{signature_source(migrated.signature)}", end="")
    for note in migrated.notes:
        print(f"# note: {note}")
    if migrated.format is not None:  # the template's system message stays a system message
        print(f"# the template opens with a system message: keep it one with\n"
              f"#     lmbridge.Predict({migrated.signature.__name__}, "
              'format=lmbridge.ChatFormat(instructions="system"))')
    if demos:
        Path(demos).write_text(demos_jsonl(migrated.demos), encoding="utf-8")
        print(f"# {len(migrated.demos)} demos written to {demos}")
    elif migrated.demos:
        print(f"# the prompt has {len(migrated.demos)} few-shot examples: pass --demos FILE to write them")
    return 0


__all__ = ["MigratedPrompt", "demos_jsonl", "from_prompt_template", "migrate_prompt", "print_migration",
           "signature_source", "source_imports"]
