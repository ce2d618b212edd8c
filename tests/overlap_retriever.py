"""A small LlamaIndex retriever for the adapter tests: ranks TextNodes by the content words they
share with the query. Real LlamaIndex classes, no index or embedding model needed."""

from __future__ import annotations

import re
from collections.abc import Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

STOP = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "by", "for", "and", "or", "is", "was",
                  "were", "who", "what", "when", "where", "which", "how", "did", "do", "does", "with", "as",
                  "from", "that", "this", "it", "its", "be", "been"])


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP}


class OverlapRetriever(BaseRetriever):
    """Ranks nodes by how many content words they share with the query."""

    def __init__(self, nodes: Sequence[TextNode], similarity_top_k: int = 5) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.similarity_top_k = similarity_top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = words(query_bundle.query_str)
        scored = [NodeWithScore(node=n, score=float(len(query & words(n.get_content())))) for n in self.nodes]
        scored.sort(key=lambda s: -(s.score or 0.0))
        return scored[: self.similarity_top_k]
