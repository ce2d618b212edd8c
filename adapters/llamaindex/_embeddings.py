"""A bridge embedder as a LlamaIndex embedding model.

``to_llamaindex_embedding(embedder)`` wraps any bridge embedder (a callable ``list[str] -> list of
vectors``, such as ``lmbridge.SentenceTransformerEmbedder()``, which runs all-MiniLM-L6-v2 offline)
as a LlamaIndex ``BaseEmbedding``, so a ``VectorStoreIndex`` can be built with the same local model
that lmbridge uses for KNNFewShot, with no hub and no network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lmbridge.adapters.llamaindex._nodes import require_llamaindex

EmbedderLike = Callable[[list[str]], Sequence[Sequence[float]]]

_CLASS: Any = None


def to_llamaindex_embedding(embedder: EmbedderLike, *, model_name: str | None = None,
                            embed_batch_size: int = 64) -> Any:
    """The bridge embedder as a LlamaIndex ``BaseEmbedding`` (texts and queries embedded alike)."""
    require_llamaindex()
    if not callable(embedder):
        raise TypeError(f"to_llamaindex_embedding needs a callable list[str] -> vectors, got {type(embedder).__name__}")
    name = model_name or getattr(embedder, "model_name", None) or type(embedder).__name__
    return _embedding_class()(embedder, model_name=str(name), embed_batch_size=embed_batch_size)


def _embedding_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class BridgeEmbedding(BaseEmbedding):  # type: ignore[misc, unused-ignore]
        """A bridge embedder behind LlamaIndex's embedding interface."""

        _embedder: Any = PrivateAttr()

        def __init__(self, embedder: EmbedderLike, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._embedder = embedder

        @classmethod
        def class_name(cls) -> str:
            return "BridgeEmbedding"

        def _vectors(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in v] for v in self._embedder(texts)]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._vectors([query])[0]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._vectors([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._vectors(list(texts))

    _CLASS = BridgeEmbedding
    return _CLASS


__all__ = ["to_llamaindex_embedding"]
