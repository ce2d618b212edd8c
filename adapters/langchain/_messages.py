"""Messages between lmbridge and LangChain: bridge messages as LangChain messages or as one text
prompt, and the names of the wrapped models whose calls a LangChain tracer reports itself."""

from __future__ import annotations

from typing import Any

from lmbridge import Message

REPORTING_MODELS: set[str] = set()
"""The run names of ``LangChainLM`` models: their LangChain runs already reach the tracer, so the
bridge's own LM runs for them are not reported twice."""


def to_langchain_messages(messages: list[Message]) -> list[Any]:
    """The messages as LangChain messages (a tool message becomes a human one)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # langchain-core is optional

    kinds: dict[str, Any] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage,
                             "tool": HumanMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def to_text_prompt(messages: list[Message]) -> str:
    """The messages as one prompt for a text model: their contents, a blank line apart."""
    return "\n\n".join(m["content"] for m in messages)


__all__ = ["REPORTING_MODELS", "to_langchain_messages", "to_text_prompt"]
