"""Shared pieces for the LlamaIndex adapter tests: SQuAD paragraphs as TextNodes, a
``VectorStoreIndex`` embedded by bridge's HashingEmbedder (a real index, deterministic, no model),
and scripted LlamaIndex LLMs (a plain chat LLM and a function-calling one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.schema import TextNode

from examples.data import datasets_dir
from lmbridge.adapters.llamaindex import to_llamaindex_embedding
from lmbridge.lm import HashingEmbedder


def squad_dir() -> Path:
    return datasets_dir() / "squad"


def read_jsonl(path: Path, n: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if n is not None and len(rows) == n:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def squad_nodes(n: int, questions: Sequence[dict[str, Any]] = ()) -> list[TextNode]:
    """The first ``n`` SQuAD paragraphs (plus those of ``questions``) as TextNodes with their title."""
    rows = read_jsonl(squad_dir() / "corpus.jsonl", n)
    known = {r["id"] for r in rows}
    for q in questions:
        if q["context_id"] not in known:
            rows.append({"id": q["context_id"], "title": q["title"], "text": q["context"]})
            known.add(q["context_id"])
    return [TextNode(text=r["text"], id_=r["id"], metadata={"title": r["title"]}) for r in rows]


def hashing_index(nodes: Sequence[TextNode]) -> VectorStoreIndex:
    """A real in-memory VectorStoreIndex over ``nodes``, embedded by bag-of-words hashing."""
    return VectorStoreIndex(list(nodes), embed_model=to_llamaindex_embedding(HashingEmbedder(1024)))


class ScriptedChatLLM(CustomLLM):
    """A LlamaIndex LLM answering chats from a list, reporting token counts as OpenAI's integration does."""

    replies: list[str] = []
    seen: list[list[ChatMessage]] = []
    temperature: float = 0.0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted-chat", is_chat_model=True)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.seen.append(list(messages))
        return ChatResponse(message=ChatMessage(role="assistant", content=self.replies.pop(0)),
                            additional_kwargs={"prompt_tokens": 40, "completion_tokens": 3})

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        raise NotImplementedError


class ScriptedToolLLM(FunctionCallingLLM):
    """A FunctionCallingLLM whose replies are scripted: ``(text, [(tool_name, kwargs), ...])``. It
    records the tool specs each request offered, as OpenAI's integration would send them."""

    script: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    offered: list[list[dict[str, Any]]] = []
    seen: list[list[ChatMessage]] = []

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted-tools", is_chat_model=True, is_function_calling_model=True)

    def _prepare_chat_with_tools(self, tools: Sequence[Any], user_msg: Any = None,
                                 chat_history: list[ChatMessage] | None = None, verbose: bool = False,
                                 allow_parallel_tool_calls: bool = False, tool_required: bool = False,
                                 **kwargs: Any) -> dict[str, Any]:
        self.offered.append([t.metadata.to_openai_tool() for t in tools])
        return {"messages": list(chat_history or []), **kwargs}

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.seen.append(list(messages))
        text, calls = self.script.pop(0)
        return ChatResponse(message=ChatMessage(role="assistant", content=text,
                                                additional_kwargs={"tool_calls": calls}))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        calls = response.message.additional_kwargs.get("tool_calls", [])
        return [ToolSelection(tool_id=f"call_{i}", tool_name=name, tool_kwargs=args)
                for i, (name, args) in enumerate(calls)]

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        raise NotImplementedError

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError
