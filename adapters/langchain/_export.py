"""Compiled programs back to LangChain: a prompt, a chain and a tool.

* ``to_langchain_prompt(predictor)``: a ``ChatPromptTemplate`` that renders, for any inputs, exactly
  the messages the predictor sends: instructions, demos and format included. Messages with no input
  in them are fixed messages; the rest are templates whose slots write each value as lmbridge does
  (a ``list[str]`` as numbered lines, a ``bool`` as yes/no, through jinja2 where an f-string cannot).
  A field holding JSON (a dict, a list of numbers, a pydantic model) takes its JSON text.
* ``to_langchain_chain(predictor, chat_model)``: ``prompt | chat_model | parser``, LangChain
  runnables end to end (a first step writes JSON-typed inputs as JSON, with ``json.dumps``). The
  parser (``SignatureOutputParser``) reads the reply with the predictor's format and raises
  LangChain's ``OutputParserException`` when it cannot; the chain makes no re-ask.
* ``to_langchain_tool(program)``: a ``StructuredTool`` whose arguments are the signature's input
  fields. Its content is the main output's text (or all outputs as JSON), its artifact the output dict.
"""

from __future__ import annotations

import enum
import json
import typing
from functools import partial
from operator import itemgetter, methodcaller
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import BaseOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.prompts.chat import AIMessagePromptTemplate, HumanMessagePromptTemplate, SystemMessagePromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import ConfigDict

from lmbridge import ChatFormat, Module, ParseError, Predict, PromptFormat, Signature, current
from lmbridge.adapters.langchain._runnable import to_runnable, tool_name
from lmbridge.adapters.langchain._schema import input_model, program_signature
from lmbridge.signatures import render

SlotKind = Literal["text", "lines", "yes_no", "enum", "json"]
_MARK = "\x00"


def predictor_of(program: Module) -> Predict:
    """The one Predict of ``program`` (a Predict, a ChainOfThought, ...)."""
    if isinstance(program, Predict):
        return program
    found = program.named_predictors()
    if len(found) != 1:
        raise TypeError(f"{type(program).__name__} has {len(found)} predictors; export one of them "
                        f"({', '.join(n for n, _ in found)}) on its own")
    return found[0][1]


def slot_kind(annotation: Any) -> SlotKind:
    """How a value of this type is written in a prompt, as lmbridge writes it (``render_input``)."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "yes_no"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "enum"
    if annotation in (str, int, float, Any) or origin is Literal:
        return "text"
    if origin in (list, tuple) and all(a in (str, Ellipsis) for a in typing.get_args(annotation)):
        return "lines"
    return "json"


def _jinja_slot(name: str, kind: SlotKind) -> str:
    if kind == "lines":
        return (f"{{% if {name} %}}{{% for item in {name} %}}[{{{{ loop.index }}}}] {{{{ item }}}}"
                f"{{% if not loop.last %}}\n{{% endif %}}{{% endfor %}}{{% else %}}[]{{% endif %}}")
    if kind == "yes_no":
        return f"{{{{ 'yes' if {name} else 'no' }}}}"
    if kind == "enum":
        return f"{{{{ {name}.value }}}}"
    return f"{{{{ {name} }}}}"


def _template(content: str, kinds: dict[str, SlotKind]) -> tuple[str, str] | None:
    """(template, template_format) for one message, or None when no input appears in it."""
    pieces = content.split(_MARK)
    if len(pieces) == 1:
        return None
    literals, names = pieces[0::2], pieces[1::2]
    if all(kinds[n] in ("text", "json") for n in names):
        body = "".join(lit.replace("{", "{{").replace("}", "}}") + (f"{{{n}}}" if i < len(names) else "")
                       for i, (lit, n) in enumerate(zip(literals, [*names, ""])))
        return body, "f-string"
    out = []
    for i, lit in enumerate(literals):
        out.append(f"{{% raw %}}{lit}{{% endraw %}}" if any(t in lit for t in ("{{", "{%", "{#")) else lit)
        if i < len(names):
            out.append(_jinja_slot(names[i], kinds[names[i]]))
    return "".join(out), "jinja2"


_FIXED: dict[str, Any] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
_TEMPLATES: dict[str, Any] = {"system": SystemMessagePromptTemplate, "user": HumanMessagePromptTemplate,
                              "assistant": AIMessagePromptTemplate}


def _format_of(predictor: Predict) -> PromptFormat:
    return predictor.format or current().format or ChatFormat()


def to_langchain_prompt(program: Module) -> ChatPromptTemplate:
    """The predictor's messages as a ``ChatPromptTemplate`` whose variables are its input fields."""
    predictor = predictor_of(program)
    signature = predictor.signature
    kinds = {n: slot_kind(f.annotation) for n, f in signature.input_fields.items()}
    markers = {n: f"{_MARK}{n}{_MARK}" for n in signature.input_fields}
    parts: list[Any] = []
    for message in predictor.messages(**markers):
        found = _template(message["content"], kinds)
        if found is None:
            parts.append(_FIXED[message["role"]](content=message["content"]))
        else:
            text, template_format = found
            parts.append(_TEMPLATES[message["role"]].from_template(text, template_format=template_format))
    return ChatPromptTemplate.from_messages(parts)


class SignatureOutputParser(BaseOutputParser[dict[str, Any]]):
    """Reads a completion into the signature's typed output fields, with lmbridge's format."""

    signature: Any
    format: Any

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _type(self) -> str:
        return "lmbridge_signature"

    def parse(self, text: str) -> dict[str, Any]:
        try:
            return dict(self.format.parse(self.signature, text))
        except ParseError as error:
            raise OutputParserException(str(error), llm_output=text) from error

    def get_format_instructions(self) -> str:
        return ""


def _json_writer(name: str) -> Runnable[Any, Any]:
    dumps = partial(json.dumps, ensure_ascii=False, default=methodcaller("model_dump", mode="json"))
    return RunnableLambda(itemgetter(name)) | RunnableLambda(dumps)


def to_langchain_chain(program: Module, model: BaseLanguageModel[Any] | Runnable[Any, Any]) -> Runnable[Any, Any]:
    """``prompt | model | parser`` for the predictor, on a LangChain chat model; the predictor's own
    request parameters (``lm_params``, for example ``temperature``) are bound to the model."""
    predictor = predictor_of(program)
    signature = predictor.signature
    prompt = to_langchain_prompt(predictor)
    json_fields = [n for n, f in signature.input_fields.items() if slot_kind(f.annotation) == "json"]
    params = {k: v for k, v in predictor.lm_params.items() if k != "rollout_id"}
    bound = model.bind(**params) if params else model
    parser = SignatureOutputParser(signature=signature, format=_format_of(predictor))
    if json_fields:
        writer = RunnablePassthrough.assign(**{n: _json_writer(n) for n in json_fields})
        return writer | prompt | bound | parser
    return prompt | bound | parser


def to_langchain_tool(program: Module, *, name: str | None = None, description: str | None = None,
                      signature: type[Signature] | None = None, return_direct: bool = False) -> BaseTool:
    """The program as a LangChain ``StructuredTool`` taking the signature's input fields."""
    sig = program_signature(program, signature)
    runnable = to_runnable(program, signature=sig)
    label = name or tool_name(type(program).__name__ if sig is None else sig.__name__)
    schema = input_model(program, sig, "".join(ch for ch in label.title() if ch.isalnum()) + "Args")
    if schema is None:
        raise TypeError(f"cannot tell the inputs of {type(program).__name__}: pass signature= to to_langchain_tool")
    main = [n for n in (sig.output_fields if sig is not None else ()) if n != "reasoning"]

    def content(outputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        text = render(outputs[main[0]]) if len(main) == 1 and main[0] in outputs else \
            json.dumps({k: _plain(v) for k, v in outputs.items()}, ensure_ascii=False)
        return text, outputs

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        return content(runnable.invoke(kwargs))

    async def arun(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        return content(await runnable.ainvoke(kwargs))

    desc = description or (sig.instructions if sig is not None else "") or f"Run {label}."
    return StructuredTool.from_function(func=run, coroutine=arun, name=label, description=desc,
                                        args_schema=schema, return_direct=return_direct,
                                        response_format="content_and_artifact", infer_schema=False)


def _plain(value: Any) -> Any:
    from lmbridge.signatures import to_jsonable

    return to_jsonable(value)


__all__ = ["SignatureOutputParser", "predictor_of", "slot_kind", "to_langchain_chain", "to_langchain_prompt",
           "to_langchain_tool"]
