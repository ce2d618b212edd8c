"""LangChain models as bridge LMs: ``LangChainLM(model)``.

The model may be a chat model, a text model (``BaseLLM``), or either one wrapped by ``bind``,
``bind_tools``, ``with_retry`` or ``with_fallbacks``. Requests that offer tools go through the
model's ``bind_tools`` and the calls come back from ``AIMessage.tool_calls``, so ``lmbridge.ReAct``
runs natively on any LangChain chat model that calls tools. Streaming (``lm.stream``,
``Predict.stream``) goes through the model's own ``stream`` / ``astream``. The cache key holds a
digest of the model's serialized configuration (class, model name, temperature and the other settings, never a
secret), so two differently configured models never share cache entries. Errors, retries and the
secret filter are those of every adapter LM (``lmbridge.adapters._foreign_lm``).
langchain-core is imported when a ``LangChainLM`` is built, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lmbridge import (
    LMError,
    Message,
    PromptFormat,
    RawResult,
    Signature,
    ToolCall,
)
from lmbridge.adapters._foreign_lm import ForeignLM, foreign_error, public
from lmbridge.adapters._foreign_lm import config_digest as digest
from lmbridge.adapters.langchain._messages import REPORTING_MODELS, to_langchain_messages, to_text_prompt
from lmbridge.adapters.langchain._prompts import require_langchain

if TYPE_CHECKING:
    from lmbridge.lm import Cache

"""The model names of the LangChainLMs made so far: their LangChain model reports its own run."""


class LangChainLM(ForeignLM):
    """A bridge LM that sends through a LangChain model (``invoke`` / ``ainvoke``).

    ``model`` (default ``"langchain/<Class>/<model name>@<config digest>"``) names it in the
    history and keys the cache. Its failures come out as ``lmbridge.LMError`` subclasses raised from
    the original exception; rate limits, timeouts, connection and server errors are retried
    ``num_retries`` times (set the LangChain model's own ``max_retries=0`` to avoid retrying twice).
    Token counts are read from ``AIMessage.usage_metadata``, the stop reason from ``response_metadata``.
    """

    def __init__(self, chat_model: Any, *, model: str | None = None, cache: bool | Cache = True,
                 num_retries: int = 3, **params: Any) -> None:
        require_langchain()
        base = base_model(chat_model)
        if base is None:
            raise TypeError("LangChainLM needs a LangChain chat model or text model (or one wrapped by bind, "
                            f"bind_tools, with_retry or with_fallbacks), got {type(chat_model).__name__}")
        self.chat_model = chat_model
        self.base_model = base
        self.is_chat = _is_chat(base)
        name = model or f"langchain/{type(base).__name__}/{_model_name(base)}@{config_digest(chat_model)}"
        super().__init__(name, cache=cache, num_retries=num_retries, **params)
        REPORTING_MODELS.add(name)

    def supports_function_calling(self) -> bool:
        """Whether the underlying chat model implements ``bind_tools``."""
        from langchain_core.language_models import BaseChatModel

        return self.is_chat and type(self.base_model).bind_tools is not BaseChatModel.bind_tools

    # -- sending ---------------------------------------------------------------------------------
    def _request(self, messages: list[Message], params: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """(runnable, input, invoke kwargs) for one request."""
        rest = dict(params)
        tools = rest.pop("tools", None)
        choice = rest.pop("tool_choice", None)
        runnable = self.chat_model
        if tools:
            if not self.supports_function_calling():
                raise LMError(f"{self.model}: this model cannot take tools (no bind_tools); "
                              "use ReAct(function_calling=False)", model=self.model)
            runnable = with_tools(runnable, tools, choice)
        payload = to_langchain_messages(messages) if self.is_chat else to_text_prompt(messages)
        return runnable, payload, rest

    def send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
             fmt: PromptFormat | None) -> RawResult:
        runnable, payload, kwargs = self._request(messages, params)
        with self.mapped_errors():
            return read_reply(runnable.invoke(payload, _run_config(), **kwargs))

    async def asend(self, messages: list[Message], params: dict[str, Any],
                    signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        runnable, payload, kwargs = self._request(messages, params)
        with self.mapped_errors():
            return read_reply(await runnable.ainvoke(payload, _run_config(), **kwargs))

    def send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                    fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        runnable, payload, kwargs = self._request(messages, params)
        total: Any = None
        with self.mapped_errors():
            for chunk in runnable.stream(payload, _run_config(), **kwargs):
                total = chunk if total is None else total + chunk
                if text := _chunk_text(chunk):
                    yield text
        yield read_reply(total if total is not None else "")

    async def asend_stream(self, messages: list[Message], params: dict[str, Any],
                           signature: type[Signature] | None,
                           fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        runnable, payload, kwargs = self._request(messages, params)
        total: Any = None
        with self.mapped_errors():
            async for chunk in runnable.astream(payload, _run_config(), **kwargs):
                total = chunk if total is None else total + chunk
                if text := _chunk_text(chunk):
                    yield text
        yield read_reply(total if total is not None else "")


def _run_config() -> Any:
    """Callbacks under the bridge run this call happens in, when a LangChain tracer is installed."""
    from lmbridge.adapters.langchain._trace import langchain_config  # imports langchain-core at its top

    return langchain_config()


def _chunk_text(chunk: Any) -> str:
    return chunk if isinstance(chunk, str) else _text(getattr(chunk, "content", ""))


# -- the model behind the wrappers ----------------------------------------------------------------

def base_model(model: Any) -> Any:
    """The chat or text model under ``bind`` / ``with_retry`` / ``with_fallbacks`` wrappers, or None."""
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.runnables.base import RunnableBindingBase
    from langchain_core.runnables.fallbacks import RunnableWithFallbacks

    while True:
        if isinstance(model, BaseLanguageModel):
            return model
        if isinstance(model, RunnableBindingBase):
            model = model.bound
        elif isinstance(model, RunnableWithFallbacks):
            model = model.runnable
        else:
            return None


def _is_chat(model: Any) -> bool:
    from langchain_core.language_models import BaseChatModel

    return isinstance(model, BaseChatModel)


def with_tools(model: Any, tools: list[dict[str, Any]], choice: Any) -> Any:
    """``model`` with ``tools`` bound through ``bind_tools``, keeping its wrappers around it."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables.base import RunnableBinding, RunnableBindingBase
    from langchain_core.runnables.fallbacks import RunnableWithFallbacks

    if isinstance(model, BaseChatModel):
        kwargs = {"tool_choice": choice} if choice not in (None, "auto") else {}
        return model.bind_tools(tools, **kwargs)
    if isinstance(model, RunnableBinding) and isinstance(model.bound, BaseChatModel):
        return with_tools(model.bound, tools, choice).bind(**{k: v for k, v in model.kwargs.items()
                                                              if k not in ("tools", "tool_choice")})
    if isinstance(model, RunnableBindingBase):
        return model.model_copy(update={"bound": with_tools(model.bound, tools, choice)})
    if isinstance(model, RunnableWithFallbacks):
        return model.model_copy(update={"runnable": with_tools(model.runnable, tools, choice),
                                        "fallbacks": [with_tools(f, tools, choice) for f in model.fallbacks]})
    raise LMError(f"cannot offer tools to {type(model).__name__}")


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return "default"


def config_digest(model: Any) -> str:
    """A short digest of the model's configuration (wrappers included), secrets left out."""
    return digest(_config(model))


def _config(model: Any) -> Any:
    from langchain_core.runnables.base import RunnableBindingBase
    from langchain_core.runnables.fallbacks import RunnableWithFallbacks

    if isinstance(model, RunnableBindingBase):
        return {"class": type(model).__name__, "bound": _config(model.bound), "kwargs": public(model.kwargs),
                "extra": public({k: v for k, v in model.__dict__.items()
                                  if k not in ("bound", "kwargs", "config", "custom_input_type",
                                               "custom_output_type", "config_factories")})}
    if isinstance(model, RunnableWithFallbacks):
        return {"class": "fallbacks", "runnable": _config(model.runnable),
                "fallbacks": [_config(f) for f in model.fallbacks]}
    settings = dict(getattr(model, "_identifying_params", {}) or {})
    fields = getattr(type(model), "model_fields", {})
    for name in fields:
        if name not in settings and name not in ("callbacks", "callback_manager", "cache", "metadata", "tags",
                                                 "verbose", "rate_limiter", "client", "async_client"):
            settings[name] = getattr(model, name, None)
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "settings": public(settings)}


# -- messages in, replies out ----------------------------------------------------------------------

def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                   if isinstance(b, str) or (isinstance(b, Mapping) and b.get("type") == "text"))


def read_reply(reply: Any) -> RawResult:
    """A LangChain reply (an AIMessage, or a string from a text model) as a bridge RawResult."""
    if isinstance(reply, str):
        return RawResult(reply)
    calls = [ToolCall(c["name"], dict(c.get("args") or {}), id=c.get("id"))
             for c in getattr(reply, "tool_calls", None) or ()]
    calls += [ToolCall.parse(str(c.get("name") or ""), c.get("args"), c.get("id"))
              for c in getattr(reply, "invalid_tool_calls", None) or () if c.get("name")]
    usage = getattr(reply, "usage_metadata", None) or {}
    metadata = getattr(reply, "response_metadata", None) or {}
    reason = next((metadata[k] for k in ("finish_reason", "stop_reason", "done_reason")
                   if isinstance(metadata.get(k), str)), None)
    return RawResult(_text(getattr(reply, "content", reply)), int(usage.get("input_tokens", 0) or 0),
                     int(usage.get("output_tokens", 0) or 0), tool_calls=tuple(calls), finish_reason=reason)


def lm_error(exc: Exception, model: str) -> Exception:
    """The bridge error for a LangChain model's failure (``TransientError`` around it when worth
    retrying); see ``lmbridge.adapters._foreign_lm``."""
    return foreign_error(exc, model)


__all__ = ["REPORTING_MODELS", "LangChainLM", "base_model", "config_digest", "lm_error", "read_reply",
           "to_langchain_messages", "to_text_prompt", "with_tools"]
