"""LlamaIndex integration: a LlamaIndex retriever feeds bridge's ``Retrieve`` and ``RAG``, and a
LlamaIndex LLM runs bridge programs.

* ``from_llamaindex_retriever(retriever)``: a retriever callable ``(query, k) -> list[Passage]``
  (``use_async=True``: an async one).
* ``LlamaIndexLM(llm)``: any LlamaIndex ``LLM`` as the LM of a bridge program.

llama-index-core is imported when one of these is used, never by ``import adapters``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bridge import (
    BaseLM,
    LMError,
    Message,
    MissingDependencyError,
    Passage,
    PromptFormat,
    RawResult,
    Signature,
)

if TYPE_CHECKING:
    from llama_index.core.llms import LLM
    from llama_index.core.retrievers import BaseRetriever

    from bridge.cache import Cache


def _require_llamaindex() -> None:
    try:
        import llama_index.core  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("llama-index-core", "llamaindex") from exc


# -- retrievers ---------------------------------------------------------------------------------

class LlamaIndexRetriever:
    """A LlamaIndex retriever behind the bridge retriever protocol: ``retriever(query, k)``
    returns at most ``k`` passages, best first (through LlamaIndex's ``retrieve``).

    A LlamaIndex retriever fixes how many nodes it returns when it is built
    (``similarity_top_k``): ``k`` can only cut that list shorter, so build it with a top-k at least
    as large as the largest ``k`` you will ask for. Each passage has the node's text (without its
    metadata), the node's score (0.0 when the retriever gives none) and the node's metadata plus
    its ``node_id``.
    """

    def __init__(self, retriever: BaseRetriever) -> None:
        self.retriever = retriever

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.retriever).__name__})"

    def __call__(self, query: str, k: int = 3) -> list[Passage]:
        return _passages(self.retriever.retrieve(query), k)


class AsyncLlamaIndexRetriever(LlamaIndexRetriever):
    """The async form: ``await retriever(query, k)``, through LlamaIndex's ``aretrieve``. Bridge's
    ``Retrieve`` awaits it in ``acall`` and runs it to completion in a sync call."""

    async def __call__(self, query: str, k: int = 3) -> list[Passage]:  # type: ignore[override]
        return _passages(await self.retriever.aretrieve(query), k)


def from_llamaindex_retriever(retriever: BaseRetriever, *, use_async: bool = False) -> LlamaIndexRetriever:
    """Wrap a LlamaIndex ``BaseRetriever`` (for example ``index.as_retriever(similarity_top_k=5)``)
    as a bridge retriever: a callable ``(query, k) -> list[bridge.Passage]``, ready for
    ``bridge.Retrieve``. With ``use_async=True`` the callable is async (``aretrieve``). See
    ``LlamaIndexRetriever`` for how ``k`` and the retriever's fixed top-k interact."""
    _require_llamaindex()
    from llama_index.core.retrievers import BaseRetriever as LIRetriever

    if not isinstance(retriever, LIRetriever):
        raise TypeError("from_llamaindex_retriever needs a llama_index BaseRetriever, "
                        f"got {type(retriever).__name__}")
    return AsyncLlamaIndexRetriever(retriever) if use_async else LlamaIndexRetriever(retriever)


def _passages(nodes: list[Any], k: int) -> list[Passage]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out = []
    for scored in nodes[:k]:
        node = scored.node
        metadata = dict(getattr(node, "metadata", None) or {})
        metadata.setdefault("node_id", node.node_id)
        score = scored.score
        out.append(Passage(node.get_content(), float(score) if score is not None else 0.0, metadata))
    return out


# -- LlamaIndex LLMs as bridge LMs ---------------------------------------------------------------

class LlamaIndexLM(BaseLM):
    """A bridge LM that sends through a LlamaIndex LLM (``llm.chat`` / ``llm.achat``).

    The cache key uses ``model`` (default ``"llamaindex/<Class>/<metadata.model_name>"``) and the
    request parameters, not the LLM object's own settings: pass ``cache=False`` or a distinct
    ``model`` when two differently configured LLMs share a name. Retries are left to the LLM's own
    settings; its failures come out as ``bridge.LMError``, raised from the original exception.
    Token counts are read from the response when the integration reports them.
    """

    def __init__(self, llm: LLM, *, model: str | None = None, cache: bool | Cache = True,
                 **params: Any) -> None:
        _require_llamaindex()
        from llama_index.core.llms import LLM as LILLM

        if not isinstance(llm, LILLM):
            raise TypeError(f"LlamaIndexLM needs a llama_index LLM, got {type(llm).__name__}")
        self.llm = llm
        name = getattr(getattr(llm, "metadata", None), "model_name", None) or "default"
        super().__init__(model or f"llamaindex/{type(llm).__name__}/{name}", cache=cache, num_retries=0,
                         **params)

    def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        try:
            response = self.llm.chat(_to_llamaindex(messages), **params)
        except Exception as exc:
            raise LMError(f"{self.model}: {type(exc).__name__}: {str(exc)[:500]}", model=self.model) from exc
        return _result(response)

    async def _asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        try:
            response = await self.llm.achat(_to_llamaindex(messages), **params)
        except Exception as exc:
            raise LMError(f"{self.model}: {type(exc).__name__}: {str(exc)[:500]}", model=self.model) from exc
        return _result(response)


def _to_llamaindex(messages: list[Message]) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    roles = {"system": "system", "user": "user", "assistant": "assistant", "tool": "user"}
    return [ChatMessage(role=roles[m["role"]], content=m["content"]) for m in messages]


def _result(response: Any) -> RawResult:
    text = response.message.content or ""
    prompt_tokens, completion_tokens = _tokens(response)
    return RawResult(text, prompt_tokens, completion_tokens)


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
        return int(value or 0)
    return read("prompt_tokens") or read("input_tokens"), read("completion_tokens") or read("output_tokens")


__all__ = ["AsyncLlamaIndexRetriever", "LlamaIndexLM", "LlamaIndexRetriever", "from_llamaindex_retriever"]
