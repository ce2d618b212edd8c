"""LlamaIndex nodes and bridge passages, both ways, and the check that llama-index-core is installed.

A retrieved ``NodeWithScore`` becomes a ``lmbridge.Passage``: the node's text (with its metadata
written in when a ``MetadataMode`` other than ``NONE`` is asked for), its score (0.0 when the
retriever gives none) and its metadata, flat, under the user's own keys, plus ``"node_id"``, the
node's real id. A metadata key of the user's that is named like a key the adapter sets
(``node_id``) is kept as ``"metadata_node_id"``, so the real id always wins and nothing is lost.

``collect_nodes()`` records the nodes that LlamaIndex retrievers return inside a block, so that a
query engine built from a program can give them back as ``Response.source_nodes``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lmbridge import MissingDependencyError, Passage

if TYPE_CHECKING:
    from llama_index.core.schema import MetadataMode, NodeWithScore

RESERVED_KEYS = ("node_id",)
"""Passage metadata keys the adapter sets itself; a user's key of the same name is renamed."""


def require_llamaindex() -> None:
    """Raise MissingDependencyError, naming the ``llamaindex`` extra, when llama-index-core is missing."""
    try:
        import llama_index.core  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("llama-index-core", "llamaindex") from exc


def metadata_mode(mode: MetadataMode | str) -> MetadataMode:
    """A ``MetadataMode`` from the enum or its name (``"none"``, ``"llm"``, ``"embed"``, ``"all"``)."""
    from llama_index.core.schema import MetadataMode as Mode

    if isinstance(mode, Mode):
        return mode
    try:
        return Mode[str(mode).upper()]
    except KeyError:
        raise ValueError(f"metadata_mode must be one of {[m.name.lower() for m in Mode]}, got {mode!r}") from None


def to_passage(scored: NodeWithScore, mode: MetadataMode | str = "none") -> Passage:
    """One retrieved node as a Passage (see the module docstring for the metadata layout)."""
    node = scored.node
    own: Mapping[str, Any] = getattr(node, "metadata", None) or {}
    metadata: dict[str, Any] = {}
    for key, value in own.items():
        metadata[f"metadata_{key}" if key in RESERVED_KEYS else key] = value
    metadata["node_id"] = node.node_id
    score = scored.score
    return Passage(node.get_content(metadata_mode=metadata_mode(mode)), float(score) if score is not None else 0.0,
                   metadata)


def to_node(passage: Passage | str) -> NodeWithScore:
    """A Passage (or a bare text) as a ``NodeWithScore``: the text, the score and the metadata, with
    ``"node_id"`` as the node's id when there is one."""
    from llama_index.core.schema import NodeWithScore, TextNode

    if isinstance(passage, str):
        return NodeWithScore(node=TextNode(text=passage), score=None)
    metadata = {k: v for k, v in passage.metadata.items() if k not in RESERVED_KEYS}
    for key in RESERVED_KEYS:
        if f"metadata_{key}" in metadata:
            metadata[key] = metadata.pop(f"metadata_{key}")
    node_id = passage.metadata.get("node_id")
    node = TextNode(text=passage.text, metadata=metadata, **({"id_": str(node_id)} if node_id is not None else {}))
    return NodeWithScore(node=node, score=passage.score)


_sink: contextvars.ContextVar[list[NodeWithScore] | None] = contextvars.ContextVar("lmbridge_llamaindex_nodes",
                                                                                   default=None)


@contextmanager
def collect_nodes(into: list[NodeWithScore] | None = None) -> Iterator[list[NodeWithScore]]:
    """Record, in order, every node a LlamaIndex retriever adapter returns inside the block (worker
    threads and tasks that copied the context included), in ``into`` when given."""
    found: list[NodeWithScore] = [] if into is None else into
    token = _sink.set(found)
    try:
        yield found
    finally:
        _sink.reset(token)


def record_nodes(nodes: Sequence[NodeWithScore]) -> None:
    """Add ``nodes`` to the innermost ``collect_nodes`` block, if any."""
    found = _sink.get()
    if found is not None:
        found.extend(nodes)


__all__ = ["RESERVED_KEYS", "collect_nodes", "metadata_mode", "record_nodes", "require_llamaindex", "to_node",
           "to_passage"]
