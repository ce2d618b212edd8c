"""A bridge LM as a LangChain chat model: ``BridgeChatModel(lm=lmbridge.LM("local/smollm2"))``.

The other way round from ``LangChainLM``: any bridge LM (the embedded offline model, a LiteLLM
model, a ScriptedLM) becomes a ``BaseChatModel`` for LangChain code, with the LM's cache, retries
and usage. Replies carry ``usage_metadata``; ``stream`` goes through ``lm.stream``. Useful to run an
exported chain (``to_langchain_chain``) on the embedded model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from lmbridge import BaseLM, Completion, Message

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def to_bridge_messages(messages: list[BaseMessage]) -> list[Message]:
    """LangChain messages as bridge messages (text content only)."""
    out: list[Message] = []
    for m in messages:
        role = _ROLES.get(m.type)
        if role is None:
            raise ValueError(f"a {m.type} message cannot be sent to a bridge LM")
        out.append({"role": role, "content": m.text if isinstance(m.text, str) else str(m.content)})  # type: ignore[typeddict-item]
    return out


def _usage(completion: Completion) -> dict[str, int]:
    usage = completion.usage
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


class BridgeChatModel(BaseChatModel):
    """A LangChain chat model that answers through a bridge LM."""

    lm: Any
    """The bridge LM (``lmbridge.LM(...)`` or any ``BaseLM``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "lmbridge"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.lm.model, **self.lm.params}

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, **({"stop": stop} if stop else {})}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        lm: BaseLM = self.lm
        completion = lm.complete(to_bridge_messages(messages), self._params(stop, kwargs))
        message = AIMessage(content=completion.text, usage_metadata=_usage(completion),
                            response_metadata={"model_name": lm.model, "cached": completion.cached})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        lm: BaseLM = self.lm
        for item in lm.stream(to_bridge_messages(messages), self._params(stop, kwargs)):
            if isinstance(item, str):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                if run_manager is not None:
                    run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
            else:
                yield ChatGenerationChunk(message=AIMessageChunk(
                    content="", usage_metadata=_usage(item),  # type: ignore[arg-type]
                    response_metadata={"model_name": lm.model, "cached": item.cached}))


__all__ = ["BridgeChatModel", "to_bridge_messages"]
