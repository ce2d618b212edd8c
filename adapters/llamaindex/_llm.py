"""A bridge LM as a LlamaIndex LLM: ``BridgeLLM(lm=lmbridge.LM("local/smollm2"))``.

The other way round from ``LlamaIndexLM``: any bridge LM (the embedded offline model, a LiteLLM
model, a ScriptedLM) becomes a LlamaIndex ``LLM``, so a query engine, a chat engine or an agent runs
on it (``Settings.llm = BridgeLLM(lm=...)``), with the LM's cache, retries and usage.

* ``chat`` / ``achat`` / ``stream_chat`` / ``astream_chat`` send the messages as they are;
  ``complete`` and its twins send the prompt as one user message, or, with ``raw_completion=True``
  (what a base model such as Gemma 3 270M continues best), to the raw completion endpoint; the LLM
  then says it is no chat model, so LlamaIndex renders chat prompts as text for it.
* Each call goes through LlamaIndex's ``llm_chat_callback`` / ``llm_completion_callback``, so the
  callback manager (``TokenCountingHandler``, ``LlamaDebugHandler``) and the instrumentation
  dispatcher (``LLMChatStartEvent``, ``LLMCompletionEndEvent``, ...) see it as any LlamaIndex LLM.
  Token counts are in ``raw["usage"]``.
* A failure is the bridge LM's documented error (``lmbridge.LMError`` and its subclasses).

This module subclasses LlamaIndex classes; ``lmbridge.adapters.llamaindex`` imports it on first use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from pydantic import ConfigDict, Field

from lmbridge import BaseLM, Completion, Message

_ROLES = {MessageRole.SYSTEM: "system", MessageRole.DEVELOPER: "system", MessageRole.USER: "user",
          MessageRole.ASSISTANT: "assistant", MessageRole.MODEL: "assistant", MessageRole.CHATBOT: "assistant",
          MessageRole.TOOL: "tool", MessageRole.FUNCTION: "tool"}

_SAMPLING = ("temperature", "max_tokens", "stop", "top_p", "seed")
"""The keyword arguments of a LlamaIndex call passed on to the bridge LM as sampling parameters."""


def to_bridge_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """LlamaIndex chat messages as bridge messages (their text)."""
    return [{"role": _ROLES.get(m.role, "user"), "content": m.content or ""}  # type: ignore[typeddict-item]
            for m in messages]


class BridgeLLM(LLM):
    """A LlamaIndex LLM that answers through a bridge LM (see the module docstring)."""

    lm: Any
    """The bridge LM (``lmbridge.LM(...)`` or any ``BaseLM``)."""
    raw_completion: bool = False
    """Send ``complete`` prompts to the raw completion endpoint (a base model), and say so in metadata."""
    context_window: int = Field(default=8192, gt=0)
    """The context window LlamaIndex plans prompts for (the embedded models take 8192 tokens)."""
    num_output: int = Field(default=256, gt=0)
    """The tokens LlamaIndex leaves for the answer when it packs context."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, lm: BaseLM, **kwargs: Any) -> None:
        if not isinstance(lm, BaseLM):
            raise TypeError(f"BridgeLLM needs a bridge LM (lmbridge.LM or a BaseLM), got {type(lm).__name__}")
        super().__init__(lm=lm, **kwargs)  # type: ignore[call-arg]  # pydantic fields, declared above

    @classmethod
    def class_name(cls) -> str:
        return "BridgeLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.num_output,
                           is_chat_model=not self.raw_completion, model_name=self.lm.model)

    # -- the one place a request is made ----------------------------------------------------------------
    def _params(self, kwargs: dict[str, Any], completion: bool) -> dict[str, Any]:
        params = {k: kwargs[k] for k in _SAMPLING if kwargs.get(k) is not None}
        if completion and self.raw_completion:
            params["endpoint"] = "completion"
        return params

    def _prompt(self, prompt: str, formatted: bool) -> list[Message]:
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        return [{"role": "user", "content": prompt}]

    # -- chat ------------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        done = self.lm.complete(to_bridge_messages(messages), self._params(kwargs, False))
        return _chat_response(done.text, done)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        done = await self.lm.acomplete(to_bridge_messages(messages), self._params(kwargs, False))
        return _chat_response(done.text, done)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        items = self.lm.stream(to_bridge_messages(messages), self._params(kwargs, False))
        return (_chat_response(text, done, delta) for text, delta, done in _accumulated(items))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        items = self.lm.astream(to_bridge_messages(messages), self._params(kwargs, False))
        return (_chat_response(text, done, delta) async for text, delta, done in _aaccumulated(items))

    # -- completion ------------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        done = self.lm.complete(self._prompt(prompt, formatted), self._params(kwargs, True))
        return _completion_response(done.text, done)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        done = await self.lm.acomplete(self._prompt(prompt, formatted), self._params(kwargs, True))
        return _completion_response(done.text, done)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        items = self.lm.stream(self._prompt(prompt, formatted), self._params(kwargs, True))
        return (_completion_response(text, done, delta) for text, delta, done in _accumulated(items))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        items = self.lm.astream(self._prompt(prompt, formatted), self._params(kwargs, True))
        return (_completion_response(text, done, delta) async for text, delta, done in _aaccumulated(items))


# -- responses -----------------------------------------------------------------------------------------

def _raw(done: Completion | None) -> dict[str, Any]:
    if done is None:
        return {}
    usage = done.usage
    return {"usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.total_tokens}, "cached": done.cached}


def _chat_response(text: str, done: Completion | None, delta: str | None = None) -> ChatResponse:
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta, raw=_raw(done))


def _completion_response(text: str, done: Completion | None, delta: str | None = None) -> CompletionResponse:
    return CompletionResponse(text=text, delta=delta, raw=_raw(done))


def _step(text: str, item: str | Completion) -> tuple[str, str, Completion | None]:
    """(text so far, delta, None) for a delta; (the whole text, "", the Completion) for the final item."""
    if isinstance(item, str):
        return text + item, item, None
    return item.text, "", item


def _accumulated(items: Iterator[str | Completion]) -> Iterator[tuple[str, str, Completion | None]]:
    text = ""
    for item in items:
        step = _step(text, item)
        text = step[0]
        yield step


async def _aaccumulated(items: AsyncIterator[str | Completion]) -> AsyncIterator[tuple[str, str, Completion | None]]:
    """The async twin of ``_accumulated``; the decision is ``_step``'s."""
    text = ""
    async for item in items:
        step = _step(text, item)
        text = step[0]
        yield step


__all__ = ["BridgeLLM", "to_bridge_messages"]
