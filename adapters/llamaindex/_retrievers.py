"""LlamaIndex retrievers in: any ``BaseRetriever`` (or a query engine's retriever, with its node
postprocessors) behind the bridge retriever protocol, ``retriever(query, k) -> list[Passage]``;
``lmbridge.Retrieve`` takes a LlamaIndex retriever directly too (the converter registered here).

``k`` is honoured, not just cut: each call runs on a shallow copy of the LlamaIndex retriever with
its top-k knob (``similarity_top_k``, or the attribute named by ``top_k_attr``) set to ``k``, so a
``Retrieve(k=5)`` over ``index.as_retriever()`` (whose default top-k is 2) gets 5 nodes. The shared
retriever is never mutated, so concurrent calls with different ``k`` are safe. A
``QueryFusionRetriever``'s own retrievers are raised to at least ``k`` the same way. A retriever
without a known knob is sliced to ``k``.

With node postprocessors (rerankers), the retriever fetches its candidates (``candidates=``, else
its own top-k, and never fewer than ``k``), the postprocessors run in order (a ``top_n`` among
their settings is set to ``k`` per call, on a copy), and the result is cut to ``k``.

``engine_retrievers`` and ``with_top_k`` find and set the same knob for ``from_query_engine``, which
searches the ``k`` of the retriever a query engine holds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from lmbridge import Passage, RetrievalError
from lmbridge.adapters._retriever_k import Knob, RetrieverK
from lmbridge.adapters.llamaindex._nodes import metadata_mode, record_nodes, require_llamaindex, to_passage
from lmbridge.retrieval import register_retriever_converter

if TYPE_CHECKING:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

    QueryLike = str | QueryBundle

TOP_K_ATTRS = ("similarity_top_k", "top_k")
"""The attributes tried, in order, as a retriever's top-k knob when ``top_k_attr`` is not given."""


class _LlamaIndexRetrieverBase:
    """What the sync and async forms share: the sizing, the postprocessing and the conversion."""

    def __init__(self, retriever: BaseRetriever, *, k: int | None = None,
                 postprocessors: Sequence[BaseNodePostprocessor] = (), candidates: int | None = None,
                 metadata_mode: MetadataMode | str = "none", top_k_attr: str | None = None) -> None:
        for name, value in (("k", k), ("candidates", candidates)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.retriever = retriever
        self.name = type(retriever).__name__
        """How the retriever is named in traces and errors: the LlamaIndex class."""
        self.k = k
        self.postprocessors = list(postprocessors)
        self.candidates = candidates
        self.metadata_mode = _checked_mode(metadata_mode)
        self.top_k_attr = top_k_attr
        if top_k_attr is not None and not hasattr(retriever, top_k_attr):
            raise ValueError(f"{type(retriever).__name__} has no attribute {top_k_attr!r} to set top-k with")

    def __repr__(self) -> str:
        post = f", postprocessors={[type(p).__name__ for p in self.postprocessors]}" if self.postprocessors else ""
        return f"{type(self).__name__}({type(self.retriever).__name__}{post})"

    def __deepcopy__(self, memo: dict[int, Any]) -> _LlamaIndexRetrieverBase:
        return self  # shared by every copy of a program, like the index behind it

    # -- per call: a sized copy of the retriever and of each postprocessor -------------------------
    def _want(self, k: int | None) -> int | None:
        want = k if k is not None else self.k
        if want is not None and want < 1:
            raise ValueError(f"k must be at least 1, got {want}")
        return want

    def _prepared(self, k: int | None, filters: Any) -> tuple[BaseRetriever, list[BaseNodePostprocessor]]:
        want = self._want(k)
        fetch = want
        if self.postprocessors and want is not None:
            fetch = max(want, self.candidates or (_top_k(self.retriever, self.top_k_attr) or want))
        retriever = _sized(self.retriever, fetch, self.top_k_attr) if fetch is not None else self.retriever
        if filters is not None:
            retriever = _filtered(retriever, filters)
        posts = [_sized_post(p, want) for p in self.postprocessors] if want is not None else self.postprocessors
        return retriever, posts

    def _finish(self, nodes: list[NodeWithScore], k: int | None) -> list[Passage]:
        want = self._want(k)
        kept = nodes[:want] if want is not None else nodes
        record_nodes(kept)
        return [to_passage(n, self.metadata_mode) for n in kept]

    def _failed(self, exc: Exception) -> RetrievalError:
        return RetrievalError(f"LlamaIndex retriever {type(self.retriever).__name__} failed: "
                              f"{type(exc).__name__}: {str(exc)[:300]}")

    def _run(self, query: QueryLike, k: int | None, filters: Any) -> list[Passage]:
        retriever, posts = self._prepared(k, filters)
        try:
            nodes = retriever.retrieve(query)
            bundle = _bundle(query)
            for post in posts:
                nodes = post.postprocess_nodes(nodes, query_bundle=bundle)
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._finish(list(nodes), k)

    async def _arun(self, query: QueryLike, k: int | None, filters: Any) -> list[Passage]:
        retriever, posts = self._prepared(k, filters)
        try:
            nodes = await retriever.aretrieve(query)
            bundle = _bundle(query)
            for post in posts:
                nodes = await post.apostprocess_nodes(nodes, query_bundle=bundle)
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._finish(list(nodes), k)


class LlamaIndexRetriever(_LlamaIndexRetrieverBase):
    """A LlamaIndex retriever as a sync bridge retriever: ``retriever(query, k, filters=None)``.

    ``query`` is a string or a LlamaIndex ``QueryBundle`` (a query with its own embedding or custom
    embedding strings); ``filters`` (``MetadataFilters``) apply to this call only. Async code
    (``Retrieve.acall``) awaits ``acall``, which goes through ``aretrieve``. Build it with
    ``from_llamaindex_retriever``.
    """

    def __call__(self, query: QueryLike, k: int | None = None, *, filters: Any = None) -> list[Passage]:
        return self._run(query, k, filters)

    async def acall(self, query: QueryLike, k: int | None = None, *, filters: Any = None) -> list[Passage]:
        """The async form, through the retriever's ``aretrieve`` (and ``apostprocess_nodes``)."""
        return await self._arun(query, k, filters)


class AsyncLlamaIndexRetriever(_LlamaIndexRetrieverBase):
    """The async form: ``await retriever(query, k, filters=None)``, through ``aretrieve`` (and each
    postprocessor's ``apostprocess_nodes``). ``lmbridge.Retrieve`` awaits it in ``acall`` and runs it
    to completion in a sync call."""

    async def __call__(self, query: QueryLike, k: int | None = None, *, filters: Any = None) -> list[Passage]:
        return await self._arun(query, k, filters)


@overload
def from_llamaindex_retriever(retriever: Any, k: int | None = None, *, use_async: Literal[False] = False,
                              postprocessors: Sequence[BaseNodePostprocessor] = (), candidates: int | None = None,
                              metadata_mode: MetadataMode | str = "none",
                              top_k_attr: str | None = None) -> LlamaIndexRetriever: ...


@overload
def from_llamaindex_retriever(retriever: Any, k: int | None = None, *, use_async: Literal[True],
                              postprocessors: Sequence[BaseNodePostprocessor] = (), candidates: int | None = None,
                              metadata_mode: MetadataMode | str = "none",
                              top_k_attr: str | None = None) -> AsyncLlamaIndexRetriever: ...


def from_llamaindex_retriever(retriever: Any, k: int | None = None, *, use_async: bool = False,
                              postprocessors: Sequence[BaseNodePostprocessor] = (), candidates: int | None = None,
                              metadata_mode: MetadataMode | str = "none",
                              top_k_attr: str | None = None) -> LlamaIndexRetriever | AsyncLlamaIndexRetriever:
    """Wrap a LlamaIndex retriever as a bridge retriever, ready for ``lmbridge.Retrieve``.

    ``retriever`` is a ``BaseRetriever`` (``index.as_retriever()``, BM25, fusion, a router, your
    own) or a query engine that has one (``index.as_query_engine()``: its retriever and its node
    postprocessors are taken). ``k`` is the top-k used when a call gives none (None: the
    retriever's own). ``postprocessors`` (rerankers, filters) run after retrieval, after those of
    the query engine. ``metadata_mode="llm"`` writes the node's metadata into the passage text as
    LlamaIndex would show it to an LLM. Async code always goes through ``aretrieve``;
    ``use_async=True`` gives the form whose call itself is async.
    """
    require_llamaindex()
    from llama_index.core.retrievers import BaseRetriever as LIRetriever

    posts: list[Any] = []
    if not isinstance(retriever, LIRetriever):
        inner = getattr(retriever, "retriever", None)
        if not isinstance(inner, LIRetriever):
            raise TypeError("from_llamaindex_retriever needs a llama_index BaseRetriever or a query engine with a "
                            f"retriever, got {type(retriever).__name__}")
        posts = list(getattr(retriever, "_node_postprocessors", None) or [])
        retriever = inner
    posts.extend(postprocessors)
    kind = AsyncLlamaIndexRetriever if use_async else LlamaIndexRetriever
    return kind(retriever, k=k, postprocessors=posts, candidates=candidates, metadata_mode=metadata_mode,
                top_k_attr=top_k_attr)


# -- the pieces ---------------------------------------------------------------------------------------

def _checked_mode(mode: Any) -> Any:
    metadata_mode(mode)  # raises a clear ValueError for an unknown name
    return mode


def _bundle(query: Any) -> Any:
    from llama_index.core.schema import QueryBundle

    return query if isinstance(query, QueryBundle) else QueryBundle(query_str=str(query))


def _knob(obj: Any, attr: str | None) -> str | None:
    if attr is not None:
        return attr
    return next((a for a in TOP_K_ATTRS if isinstance(getattr(obj, a, None), int)), None)


def _top_k(obj: Any, attr: str | None = None) -> int | None:
    knob = _knob(obj, attr)
    value = getattr(obj, knob, None) if knob else None
    return value if isinstance(value, int) else None


def _sized(retriever: Any, k: int, attr: str | None = None) -> Any:
    """``retriever`` when its top-k is ``k`` already, else a shallow copy with top-k set to ``k``; a
    fusion retriever's own retrievers are raised to at least ``k``."""
    knob = _knob(retriever, attr)
    k = min(k, _capacity(retriever) or k)
    subs = getattr(retriever, "_retrievers", None)
    raise_subs = isinstance(subs, list) and any((_top_k(s) or k) < k for s in subs)
    if (knob is None or getattr(retriever, knob) == k) and not raise_subs:
        return retriever
    clone = copy.copy(retriever)
    if knob is not None:
        setattr(clone, knob, k)
    if raise_subs and isinstance(subs, list):
        clone._retrievers = [_sized(s, k) if (_top_k(s) or k) < k else s for s in subs]
    return clone


def _capacity(retriever: Any) -> int | None:
    """How many nodes a retriever can return at most, where it says (a BM25Retriever's corpus size:
    bm25s refuses a larger k)."""
    scores = getattr(getattr(retriever, "bm25", None), "scores", None)
    docs = scores.get("num_docs") if isinstance(scores, dict) else None
    return int(docs) if docs else None


def _filtered(retriever: Any, filters: Any) -> Any:
    """A shallow copy of ``retriever`` that applies ``filters`` (``MetadataFilters``)."""
    attr = next((a for a in ("_filters", "filters") if hasattr(retriever, a)), None)
    if attr is None:
        raise TypeError(f"{type(retriever).__name__} takes no metadata filters; filter with a postprocessor "
                        "or build the retriever with its own filters")
    clone = copy.copy(retriever)
    setattr(clone, attr, filters)
    return clone


def _sized_post(post: Any, k: int) -> Any:
    if isinstance(getattr(post, "top_n", None), int) and post.top_n != k:
        clone = copy.copy(post)
        clone.top_n = k
        return clone
    return post


# -- the k of a query engine's retriever (``from_query_engine`` searches it) --------------------------

def engine_retrievers(obj: Any, search_k: Sequence[int] | bool) -> tuple[dict[str, Any], RetrieverK | None]:
    """The retrievers ``obj`` holds as attributes (a query engine's or chat engine's ``_retriever``)
    with a top-k knob, by attribute name, and the module searching their ``k``: None when there is
    none, or ``search_k=False``."""
    from llama_index.core.retrievers import BaseRetriever as LIRetriever

    if search_k is False:
        return {}, None
    private = getattr(obj, "__pydantic_private__", None) or {}
    found = {key.lstrip("_"): value for key, value in [*vars(obj).items(), *private.items()]
             if isinstance(value, LIRetriever) and (_top_k(value) or 0) >= 1}
    if not found:
        return {}, None
    knobs = {name: Knob(int(_top_k(r) or 0), _capacity(r)) for name, r in found.items()}
    return found, RetrieverK(knobs, None if search_k is True else list(search_k))


def with_top_k(retriever: Any, k: int) -> Any:
    """A copy of ``retriever`` whose top-k is ``k`` (a fusion retriever's own retrievers raised to at
    least ``k``); the user's is not changed."""
    return _sized(retriever, k)


def convert(retriever: Any) -> LlamaIndexRetriever:
    """The converter ``lmbridge.Retrieve`` uses for objects from llama_index: ``Retrieve(index.as_retriever())``."""
    return from_llamaindex_retriever(retriever)


register_retriever_converter("llama_index", convert)

__all__ = ["TOP_K_ATTRS", "AsyncLlamaIndexRetriever", "LlamaIndexRetriever", "convert", "engine_retrievers",
           "from_llamaindex_retriever", "with_top_k"]
