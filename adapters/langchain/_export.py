"""Compiled programs back to LangChain: a prompt, a chain and a tool.

* ``to_langchain_prompt(predictor)``: an f-string ``ChatPromptTemplate`` (so it deserializes with
  ``langchain_core.load``) that renders, for any inputs, exactly the messages the predictor sends:
  instructions, demos and format included. Messages with no input in them are fixed messages; the
  rest are templates with a slot per input. A field holding JSON (a dict, a list of numbers, a
  pydantic model) takes its JSON text. An input that lmbridge writes (a ``list[str]`` as numbered
  lines, a ``bool`` as yes/no, an enum as its value) is refused with a ``ConfigurationError``, unless
  ``written=True``: then every slot takes the value already written (``render_input``).
* ``to_langchain_chain(predictor, model)``: ``prompt | model | parser``, LangChain runnables end to
  end. A first step writes the inputs that are not plain text as lmbridge does (JSON with
  ``json.dumps``, lists as numbered lines, yes/no), so the chain's prompt is all f-string and
  deserializes with ``langchain_core.load``. The parser (``SignatureOutputParser``) reads the reply
  with the predictor's format (``bare=True``: the one output's value itself) and raises LangChain's
  ``OutputParserException`` when it cannot; the chain makes no re-ask. The model gets the request the
  program makes, or the export refuses with a ``ConfigurationError`` naming what cannot be carried:
  over ``BridgeChatModel`` every parameter (raw endpoint, stop, decoding constraint, JSON mode) is
  bound; a LangChain text model (``BaseLLM``) takes ``TextFormat``'s one raw prompt; a chat model
  cannot take the raw endpoint or a llama.cpp grammar; no model can take label scoring.
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

from lmbridge import ChatFormat, ConfigurationError, Module, ParseError, Predict, PromptFormat, Signature, current
from lmbridge.adapters.langchain._runnable import to_runnable, tool_name
from lmbridge.adapters.langchain._schema import input_model, program_signature
from lmbridge.signatures import render, render_input

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


def _template(content: str) -> str | None:
    """The f-string template of one message, or None when no input appears in it."""
    pieces = content.split(_MARK)
    if len(pieces) == 1:
        return None
    literals, names = pieces[0::2], [*pieces[1::2], ""]
    return "".join(lit.replace("{", "{{").replace("}", "}}") + (f"{{{n}}}" if n else "")
                   for lit, n in zip(literals, names))


_FIXED: dict[str, Any] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
_TEMPLATES: dict[str, Any] = {"system": SystemMessagePromptTemplate, "user": HumanMessagePromptTemplate,
                              "assistant": AIMessagePromptTemplate}


def _format_of(predictor: Predict) -> PromptFormat:
    return predictor.format or current().format or ChatFormat()


def to_langchain_prompt(program: Module, *, written: bool = False) -> ChatPromptTemplate:
    """The predictor's messages as an f-string ``ChatPromptTemplate`` whose variables are its input
    fields. ``written``: each variable takes the value as lmbridge writes it (``render_input``: numbered
    lines, yes/no, an enum's value; JSON text for the JSON kinds). Without it, an input that an
    f-string cannot write as lmbridge does (a list of strings, a bool, an enum) is refused."""
    predictor = predictor_of(program)
    if not written:
        _refuse_unwritten(predictor.signature)
    return _prompt(predictor)


def _refuse_unwritten(signature: type[Signature]) -> None:
    found = {n: slot_kind(f.annotation) for n, f in signature.input_fields.items()}
    unwritten = [n for n, kind in found.items() if kind in ("lines", "yes_no", "enum")]
    if unwritten:
        raise ConfigurationError(
            f"cannot export inputs {unwritten} in a prompt template that langchain_core.load deserializes: lmbridge "
            "writes them (numbered lines, yes/no, an enum's value) and an f-string template only substitutes text. "
            "Use to_langchain_chain(predictor, model), whose first step writes them, or "
            "to_langchain_prompt(predictor, written=True) and pass each value written "
            "(lmbridge.signatures.render_input(value))")


def _prompt(predictor: Predict) -> ChatPromptTemplate:
    """The prompt, every slot an f-string slot taking the value as written."""
    markers = {n: f"{_MARK}{n}{_MARK}" for n in predictor.signature.input_fields}
    parts: list[Any] = []
    for message in predictor.messages(**markers):
        text = _template(message["content"])
        if text is None:
            parts.append(_FIXED[message["role"]](content=message["content"]))
        else:
            parts.append(_TEMPLATES[message["role"]].from_template(text, template_format="f-string"))
    return ChatPromptTemplate.from_messages(parts)


class SignatureOutputParser(BaseOutputParser[dict[str, Any]]):
    """Reads a completion into the signature's typed output fields, with lmbridge's format."""

    signature: Any
    format: Any
    bare: bool = False
    """Return the one output field's value itself, not a dict."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _type(self) -> str:
        return "lmbridge_signature"

    def parse(self, text: str) -> dict[str, Any]:
        try:
            values = dict(self.format.parse(self.signature, text))
            return next(iter(values.values())) if self.bare else values
        except ParseError as error:
            raise OutputParserException(str(error), llm_output=text) from error

    def get_format_instructions(self) -> str:
        return ""


def _json_writer(name: str) -> Runnable[Any, Any]:
    dumps = partial(json.dumps, ensure_ascii=False, default=methodcaller("model_dump", mode="json"))
    return RunnableLambda(itemgetter(name)) | RunnableLambda(dumps)


def to_langchain_chain(program: Module, model: BaseLanguageModel[Any] | Runnable[Any, Any], *,
                       bare: bool = False) -> Runnable[Any, Any]:
    """``prompt | model | parser`` for the predictor, carrying the request the program makes (see
    ``_exported_request``); ``bare`` returns a one-output predictor's value itself."""
    predictor = predictor_of(program)
    signature = predictor.signature
    fmt = _format_of(predictor)
    if bare and len(signature.output_fields) != 1:
        raise ConfigurationError(f"bare=True returns the one output field's value; {signature.__name__} has "
                                 f"{list(signature.output_fields)}")
    params, raw = _exported_request(predictor, fmt, model)
    bound = model.bind(**params) if params else model
    parser = SignatureOutputParser(signature=signature, format=fmt, bare=bare)
    writers = {n: _json_writer(n) if slot_kind(f.annotation) == "json" else _text_writer(n)
               for n, f in signature.input_fields.items() if slot_kind(f.annotation) != "text"}
    prompt: Runnable[Any, Any] = _prompt(predictor)
    if raw:
        prompt = prompt | RunnableLambda(_raw_prompt)
    if writers:
        return RunnablePassthrough.assign(**writers) | prompt | bound | parser
    return prompt | bound | parser


def _text_writer(name: str) -> Runnable[Any, Any]:
    return RunnableLambda(itemgetter(name)) | RunnableLambda(render_input)


def _raw_prompt(value: Any) -> str:
    """The one prompt the raw completion endpoint takes: the messages' texts, a blank line apart."""
    return "\n\n".join(str(m.content) for m in value.to_messages() if m.content)


def _exported_request(predictor: Predict, fmt: PromptFormat,
                      model: Any) -> tuple[dict[str, Any], bool]:
    """The parameters to bind to ``model`` so that it gets the program's request, and whether the prompt
    goes as one raw text; ConfigurationError, naming what cannot be carried, when it cannot.

    Over ``BridgeChatModel``, every parameter the program sends on that LM is bound (raw endpoint,
    stop sequences, decoding constraint, JSON mode). A LangChain text model (``BaseLLM``) takes the raw
    endpoint's one prompt and its stop sequences. Label scoring cannot be carried to any model."""
    from langchain_core.language_models import BaseLLM

    from lmbridge import BaseLM
    from lmbridge.adapters.langchain._chat import BridgeChatModel
    from lmbridge.adapters.langchain._lm import base_model

    if fmt.scoring != "generate":
        raise ConfigurationError(
            f"cannot export {fmt.name} format with scoring={fmt.scoring!r}: the program picks the label from the "
            "model's option probabilities, and a LangChain chain samples text instead. Export a predictor compiled "
            "with scoring='generate', or put the program itself in the chain with to_runnable(program)")
    target = base_model(model)
    if isinstance(target, BridgeChatModel) and isinstance(target.lm, BaseLM):
        params = predictor.request_params(target.lm)
        return {k: v for k, v in params.items() if k != "rollout_id"}, False
    lm = predictor.lm or current().lm
    params = predictor.request_params(lm) if lm is not None else \
        {**fmt.endpoint_params(predictor.signature), **predictor.lm_params}
    params = {k: v for k, v in params.items() if k != "rollout_id"}
    raw = params.pop("endpoint", None) == "completion"
    kind = type(target).__name__ if target is not None else type(model).__name__
    if raw and not isinstance(target, BaseLLM):
        raise ConfigurationError(
            f"cannot export {fmt.name} format to {kind}: it sends one raw prompt to the text-completion endpoint, "
            "which a chat model does not have. Export with a LangChain text model (a BaseLLM), or with "
            "BridgeChatModel(lm=...) over the program's LM, or compile with ChatFormat")
    if "grammar" in params:
        raise ConfigurationError(
            f"cannot export to {kind}: on {getattr(lm, 'model', 'its LM')} the program decodes within a grammar of "
            "the signature's types, which a LangChain model cannot take. Export with BridgeChatModel(lm=...) over "
            "the program's LM, or compile with constrained=False in the format")
    return params, raw


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
