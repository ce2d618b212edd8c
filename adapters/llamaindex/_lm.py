"""LlamaIndex LLMs as bridge LMs: ``LlamaIndexLM(llm)`` runs any bridge program on a LlamaIndex ``LLM``.

* Requests go through ``llm.chat`` / ``llm.achat``. A request that offers tools
  (``params["tools"]``, as native ReAct sends) goes through a ``FunctionCallingLLM``'s
  ``chat_with_tools``, and the tool calls are read back with ``get_tool_calls_from_response``.
* Provider errors become bridge errors, raised from the original: ``RateLimitError`` (429),
  ``AuthenticationError`` (401, 403), ``LMTimeoutError``, ``ContextWindowError`` (the prompt does
  not fit), else ``LMError``. Rate limits, timeouts, connection and server errors are retried with
  backoff (``num_retries``, default 3); set the LLM's own ``max_retries=0`` to avoid retrying twice.
* The cache key holds the LLM's configuration (its pydantic fields, without anything named like a
  key, token, secret, password, credential, auth or headers), so two differently configured LLMs
  never share entries.

Errors, retries, Retry-After and the secret filter are those of every adapter LM
(``lmbridge.adapters._foreign_lm``).
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
from lmbridge.adapters.llamaindex._nodes import require_llamaindex

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

    from lmbridge.lm import Cache

class LlamaIndexLM(ForeignLM):
    """A bridge LM that sends through a LlamaIndex LLM (see the module docstring).

    The LM's name is ``llamaindex/<LLMClass>/<metadata.model_name>@<config digest>`` unless
    ``model`` is given. Token counts are read from the response when the integration reports them.
    """

    def __init__(self, llm: LLM, *, model: str | None = None, cache: bool | Cache = True, num_retries: int = 3,
                 **params: Any) -> None:
        require_llamaindex()
        from llama_index.core.llms import LLM as LILLM

        if not isinstance(llm, LILLM):
            raise TypeError(f"LlamaIndexLM needs a llama_index LLM, got {type(llm).__name__}")
        self.llm = llm
        name = getattr(getattr(llm, "metadata", None), "model_name", None) or "default"
        default = f"llamaindex/{type(llm).__name__}/{name}@{config_digest(llm)}"
        super().__init__(model or default, cache=cache, num_retries=num_retries, **params)

    def supports_function_calling(self) -> bool:
        from llama_index.core.llms.function_calling import FunctionCallingLLM

        metadata = getattr(self.llm, "metadata", None)
        return isinstance(self.llm, FunctionCallingLLM) and bool(getattr(metadata, "is_function_calling_model", False))

    def send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
             fmt: PromptFormat | None) -> RawResult:
        rest, tools = _split_tools(params)
        with self.mapped_errors():
            if tools is None:
                return _result(self.llm.chat(to_chat_messages(messages), **rest))
            llm = self._function_calling()
            response = llm.chat_with_tools(tools, chat_history=to_chat_messages(messages), **rest)
            return _result(response, llm.get_tool_calls_from_response(response, error_on_no_tool_call=False))

    async def asend(self, messages: list[Message], params: dict[str, Any],
                    signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        rest, tools = _split_tools(params)
        with self.mapped_errors():
            if tools is None:
                return _result(await self.llm.achat(to_chat_messages(messages), **rest))
            llm = self._function_calling()
            response = await llm.achat_with_tools(tools, chat_history=to_chat_messages(messages), **rest)
            return _result(response, llm.get_tool_calls_from_response(response, error_on_no_tool_call=False))

    def send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                    fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        """Text deltas through ``stream_chat``, then the whole answer (a request with tools is not
        streamed: its answer comes as one chunk)."""
        if "tools" in params:
            yield from super().send_stream(messages, params, signature, fmt)
            return
        last: Any = None
        with self.mapped_errors():
            for last in self.llm.stream_chat(to_chat_messages(messages), **params):
                if last.delta:
                    yield last.delta
        yield _streamed_result(last)

    async def asend_stream(self, messages: list[Message], params: dict[str, Any],
                           signature: type[Signature] | None,
                           fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        """The async twin of ``send_stream``, through ``astream_chat``."""
        if "tools" in params:
            async for item in super().asend_stream(messages, params, signature, fmt):
                yield item
            return
        last: Any = None
        with self.mapped_errors():
            async for last in await self.llm.astream_chat(to_chat_messages(messages), **params):
                if last.delta:
                    yield last.delta
        yield _streamed_result(last)

    def _function_calling(self) -> Any:
        if not self.supports_function_calling():
            raise LMError(f"{self.model}: this LlamaIndex LLM does not call tools natively (it is not a "
                          "FunctionCallingLLM with is_function_calling_model); use ReAct(function_calling=False)",
                          model=self.model)
        return self.llm


def config_digest(llm: Any) -> str:
    """12 hex digits naming the LLM's configuration, secrets left out."""
    try:
        data = llm.model_dump(mode="json", exclude={"callback_manager"}, warnings=False)
    except Exception:
        data = {k: repr(v) for k, v in vars(llm).items() if not k.startswith("_")}
    return digest([type(llm).__qualname__, public(data) if isinstance(data, Mapping) else data])


def to_chat_messages(messages: list[Message]) -> list[Any]:
    """Bridge messages as LlamaIndex ``ChatMessage``s (a ``tool`` message goes as a user turn)."""
    from llama_index.core.llms import ChatMessage

    roles = {"system": "system", "user": "user", "assistant": "assistant", "tool": "user"}
    return [ChatMessage(role=roles[m["role"]], content=m["content"]) for m in messages]


def map_error(exc: Exception, model: str) -> Exception:
    """The bridge error for a LlamaIndex LLM failure (``TransientError`` around it when worth
    retrying); see ``lmbridge.adapters._foreign_lm``."""
    return foreign_error(exc, model)


def _split_tools(params: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    """The request parameters less ``tools``/``tool_choice``, and the tools as LlamaIndex tools."""
    if "tools" not in params:
        return params, None
    rest = {k: v for k, v in params.items() if k not in ("tools", "tool_choice")}
    if params.get("tool_choice") == "required":
        rest["tool_required"] = True
    return rest, [spec_tool(spec) for spec in params["tools"]]


def spec_tool(spec: Mapping[str, Any]) -> Any:
    """An OpenAI function spec as a LlamaIndex tool that only describes the function (the model
    chooses it; bridge runs the real tool)."""
    from llama_index.core.tools import FunctionTool, ToolMetadata

    function = spec.get("function", spec)
    name = str(function["name"])
    schema = dict(function.get("parameters") or {"type": "object", "properties": {}})

    def never_called(**kwargs: Any) -> Any:
        raise RuntimeError(f"{name} is run by lmbridge, not by LlamaIndex")

    metadata = ToolMetadata(name=name, description=str(function.get("description") or name),
                            fn_schema=_schema_model(name, schema))
    return FunctionTool(fn=never_called, metadata=metadata)


def _schema_model(name: str, schema: dict[str, Any]) -> Any:
    """A pydantic model class whose JSON schema is ``schema`` exactly (LlamaIndex reads a tool's
    parameters from ``fn_schema.model_json_schema()``)."""
    from pydantic import BaseModel

    def model_json_schema(cls: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return schema

    return type(f"{name}_args", (BaseModel,), {"model_json_schema": classmethod(model_json_schema)})


def _streamed_result(last: Any) -> RawResult:
    """The whole answer of a stream: its last response holds the full text (and the usage, where
    the integration reports it)."""
    if last is None:
        return RawResult("")
    return _result(last)


def _result(response: Any, selections: Any = None) -> RawResult:
    text = response.message.content or ""
    prompt_tokens, completion_tokens = _tokens(response)
    calls = tuple(ToolCall(s.tool_name, dict(s.tool_kwargs or {}), id=s.tool_id) for s in selections or ())
    return RawResult(text, prompt_tokens, completion_tokens, tool_calls=calls, finish_reason=_finish_reason(response))


def _finish_reason(response: Any) -> str | None:
    """The stop reason where an integration keeps the provider's answer in ``raw`` (OpenAI's shape)."""
    raw = getattr(response, "raw", None)
    choices = raw.get("choices") if isinstance(raw, Mapping) else getattr(raw, "choices", None)
    try:
        first = choices[0] if choices else None
    except (TypeError, KeyError, IndexError):
        return None
    reason = first.get("finish_reason") if isinstance(first, Mapping) else getattr(first, "finish_reason", None)
    return reason if isinstance(reason, str) and reason else None


def _tokens(response: Any) -> tuple[int, int]:
    """Token counts where an integration reports them: in ``additional_kwargs`` or in ``raw.usage``."""
    extra = getattr(response, "additional_kwargs", None) or {}
    if "prompt_tokens" in extra or "completion_tokens" in extra:
        return int(extra.get("prompt_tokens") or 0), int(extra.get("completion_tokens") or 0)
    raw = getattr(response, "raw", None)
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    if usage is None:
        return 0, 0

    def read(key: str) -> int:
        value = usage.get(key) if isinstance(usage, Mapping) else getattr(usage, key, None)
        return int(value) if isinstance(value, (int, float)) else 0

    return read("prompt_tokens") or read("input_tokens"), read("completion_tokens") or read("output_tokens")


__all__ = ["LlamaIndexLM", "config_digest", "map_error", "spec_tool", "to_chat_messages"]
