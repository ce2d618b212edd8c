"""LangChain integration: tools in, programs out, prompts migrated, chat models reused.

* ``from_langchain_tool(tool)``: a LangChain ``BaseTool`` as a ``bridge.Tool`` with the same name,
  description and argument schema, for ``bridge.ReAct``.
* ``to_runnable(program)``: a bridge program (compiled or not) as a LangChain ``Runnable`` that
  takes a dict of input fields and returns a dict of output fields, so it composes with ``|``.
* ``from_prompt_template(template)``: a hand-written ``PromptTemplate`` or ``ChatPromptTemplate``
  turned into a ``bridge.Signature`` that an optimizer can then improve.
* ``LangChainLM(chat_model)``: any LangChain chat model as the LM of a bridge program.

``from_prompt_template`` lives in ``adapters.langchain_prompts`` and is re-exported here.
langchain-core is imported when one of these is used, never by ``import adapters``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from adapters.langchain_prompts import from_prompt_template, require_langchain
from bridge import (
    AuthenticationError,
    BaseLM,
    ContextWindowError,
    LMError,
    LMTimeoutError,
    Message,
    Module,
    Prediction,
    PromptFormat,
    RateLimitError,
    RawResult,
    Signature,
    Tool,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

    from bridge.cache import Cache


# -- tools ---------------------------------------------------------------------------------------

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                               "array": list, "object": dict}


def from_langchain_tool(tool: BaseTool, *, timeout: float | None = 30.0) -> Tool:
    """Wrap a LangChain tool as a ``bridge.Tool``.

    The bridge tool has the LangChain tool's name and description, and the arguments of its
    ``tool_call_schema`` (injected arguments left out) with their types, defaults and
    descriptions, so ``json_schema()`` shows what LangChain would show a model and arguments are
    validated before the call. A call goes through ``tool.invoke(args)``, or ``tool.ainvoke(args)``
    when the tool has a native coroutine; a failure comes out as ``bridge.ToolError``.
    """
    require_langchain()
    from langchain_core.tools import BaseTool as LCBaseTool

    if not isinstance(tool, LCBaseTool):
        raise TypeError(f"from_langchain_tool needs a langchain_core BaseTool, got {type(tool).__name__}")
    params, annotations = _tool_parameters(tool.tool_call_schema)

    def run(**kwargs: Any) -> Any:
        return tool.invoke(kwargs)

    async def arun(**kwargs: Any) -> Any:
        return await tool.ainvoke(kwargs)

    func: Callable[..., Any] = arun if getattr(tool, "coroutine", None) is not None else run
    func.__name__ = tool.name
    func.__doc__ = tool.description
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = annotations
    return Tool(func, name=tool.name, desc=tool.description or "", timeout=timeout)


def _tool_parameters(schema: Any) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """Keyword-only parameters whose defaults are pydantic FieldInfos, so that the bridge Tool's
    argument model keeps the LangChain schema's types, defaults, constraints and descriptions."""
    from pydantic.fields import FieldInfo

    keyword = inspect.Parameter.KEYWORD_ONLY
    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    if isinstance(schema, Mapping):  # a tool declared with a JSON-schema dict
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            kind = _JSON_TYPES.get(prop.get("type", ""), Any)
            desc = prop.get("description")
            info = FieldInfo(description=desc) if name in required else FieldInfo(
                default=prop.get("default"), description=desc)
            annotations[name] = kind
            params.append(inspect.Parameter(name, keyword, default=info, annotation=kind))
        return params, annotations
    for name, field in schema.model_fields.items():
        annotations[name] = field.annotation
        params.append(inspect.Parameter(name, keyword, default=field, annotation=field.annotation))
    return params, annotations


# -- programs as runnables ----------------------------------------------------------------------

def to_runnable(program: Module, *, input_key: str | None = None, output_key: str | None = None,
                name: str | None = None) -> Runnable[Any, Any]:
    """The program as a LangChain ``Runnable``, for LCEL chains.

    The runnable takes a dict of the program's input fields and returns a dict of its output
    fields; ``invoke``, ``ainvoke``, ``batch`` and ``|`` all work. With ``input_key``, a bare
    (non-dict) input is passed as that one field; with ``output_key``, only that output's value is
    returned (handy before a string parser). Bridge settings (``bridge.context``) reach the
    program, including in ``batch``, whose LangChain workers copy the caller's context.
    """
    require_langchain()
    from langchain_core.runnables import RunnableLambda

    if not isinstance(program, Module):
        raise TypeError(f"to_runnable needs a bridge Module, got {type(program).__name__}")

    def inputs_of(value: Any) -> dict[str, Any]:
        if isinstance(value, Mapping):
            return dict(value)
        if input_key is not None:
            return {input_key: value}
        raise TypeError(f"{type(program).__name__} takes a dict of input fields, got {type(value).__name__}; "
                        "pass input_key= to to_runnable to accept a bare value")

    def outputs_of(prediction: Any) -> Any:
        values = prediction.to_dict() if isinstance(prediction, Prediction) else prediction
        if output_key is None:
            return dict(values) if isinstance(values, Mapping) else values
        if not isinstance(values, Mapping) or output_key not in values:
            raise KeyError(f"{type(program).__name__} returned no output field {output_key!r}")
        return values[output_key]

    def call(value: Any) -> Any:
        return outputs_of(program(**inputs_of(value)))

    async def acall(value: Any) -> Any:
        return outputs_of(await program.acall(**inputs_of(value)))

    label = name or f"lmbridge.{type(program).__name__}"
    runnable: Runnable[Any, Any] = RunnableLambda(call, afunc=acall, name=label)
    return runnable


# -- LangChain chat models as bridge LMs ---------------------------------------------------------

class LangChainLM(BaseLM):
    """A bridge LM that sends through a LangChain chat model (``chat_model.invoke`` / ``ainvoke``).

    The cache key uses ``model`` (default ``"langchain/<Class>/<model name>"``) and the request
    parameters; a chat model's own settings (temperature, ...) are not in it, so pass
    ``cache=False`` or a distinct ``model`` when two differently configured models share a name.
    Retries are left to the chat model's own ``max_retries``; its failures come out as
    ``bridge.LMError`` subclasses, raised from the original exception. Token counts are read from
    ``AIMessage.usage_metadata`` when the model reports it.
    """

    def __init__(self, chat_model: BaseChatModel, *, model: str | None = None, cache: bool | Cache = True,
                 **params: Any) -> None:
        require_langchain()
        from langchain_core.language_models import BaseChatModel as LCChatModel

        if not isinstance(chat_model, LCChatModel):
            raise TypeError(f"LangChainLM needs a LangChain chat model, got {type(chat_model).__name__}")
        self.chat_model = chat_model
        super().__init__(model or f"langchain/{type(chat_model).__name__}/{_model_name(chat_model)}",
                         cache=cache, num_retries=0, **params)

    def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        try:
            reply = self.chat_model.invoke(_to_langchain(messages), **params)
        except Exception as exc:
            raise _lm_error(exc, self.model) from exc
        return _result(reply)

    async def _asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        try:
            reply = await self.chat_model.ainvoke(_to_langchain(messages), **params)
        except Exception as exc:
            raise _lm_error(exc, self.model) from exc
        return _result(reply)


def _model_name(chat_model: Any) -> str:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return "default"


def _to_langchain(messages: list[Message]) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds: dict[str, Any] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage,
                             "tool": HumanMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _result(reply: Any) -> RawResult:
    content = getattr(reply, "content", reply)
    if isinstance(content, str):
        text = content
    else:  # a list of content blocks
        text = "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                       if isinstance(b, str) or (isinstance(b, Mapping) and b.get("type") == "text"))
    usage = getattr(reply, "usage_metadata", None) or {}
    return RawResult(text, int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0))


def _lm_error(exc: Exception, model: str) -> LMError:
    """A bridge error for a chat-model failure, chosen by the provider's status code or class name."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    status = status if isinstance(status, int) else None
    kind = type(exc).__name__.lower()
    message = f"{model}: {type(exc).__name__}: {str(exc)[:500]}"
    if status == 429 or "ratelimit" in kind:
        return RateLimitError(message, status_code=429, model=model)
    if status in (401, 403) or "authentication" in kind or "permission" in kind:
        return AuthenticationError(message, status_code=status, model=model)
    if "timeout" in kind:
        return LMTimeoutError(message, status_code=status, model=model)
    if "context" in kind and ("window" in kind or "length" in kind):
        return ContextWindowError(message, status_code=status, model=model)
    return LMError(message, status_code=status, model=model)


__all__ = ["LangChainLM", "from_langchain_tool", "from_prompt_template", "to_runnable"]
