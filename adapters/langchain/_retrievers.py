"""LangChain retrievers in: any ``BaseRetriever`` behind the bridge retriever protocol,
``retriever(query, k) -> list[Passage]``, with ``acall`` for async code (``ainvoke``).

``from_langchain_retriever(retriever)`` wraps one; ``lmbridge.Retrieve(langchain_retriever)`` takes one
directly (the converter registered here). ``k`` is honoured where the retriever has a knob for it, on
a shallow copy per call so the user's retriever is never mutated:

* a ``search_kwargs`` mapping (``vectorstore.as_retriever()``): its ``"k"`` is set;
* an integer field ``k`` or ``top_k`` (BM25, TF-IDF and most community retrievers): it is set;
* otherwise the answer is cut to ``k``.

Search kwargs (``search_kwargs=`` here, or keyword options of one ``Retrieve`` call such as
``filter=...``) go into the retriever's ``search_kwargs`` when it has them, else to ``invoke`` as
keyword arguments when the retriever takes them; a retriever that takes neither refuses them with a
``TypeError``. A failing retriever raises ``lmbridge.RetrievalError`` naming it.

``chain_retrievers``, ``k_knob`` and ``with_k`` find, read and set the same knob for ``from_chain``,
which searches the ``k`` of the retrievers found inside the user's chain.

This module imports langchain-core; ``lmbridge.adapters.langchain`` imports it on first use.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable

from lmbridge import Passage, RetrievalError
from lmbridge.adapters._retriever_k import Knob, RetrieverK
from lmbridge.adapters.langchain._chain_walk import rewrite
from lmbridge.retrieval import register_retriever_converter

K_FIELDS = ("k", "top_k")
"""The integer fields tried, in order, as a retriever's top-k knob (after ``search_kwargs["k"]``)."""


class LangChainRetriever:
    """A LangChain retriever as a bridge retriever: ``retriever(query, k, **search_kwargs)``, and
    ``await retriever.acall(query, k, **search_kwargs)`` through ``ainvoke``. Build it with
    ``from_langchain_retriever``."""

    def __init__(self, retriever: BaseRetriever, *, k: int | None = None,
                 search_kwargs: Mapping[str, Any] | None = None) -> None:
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.retriever = retriever
        self.k = k
        self.search_kwargs = dict(search_kwargs or {})
        self.name = retriever.get_name()
        """How the retriever is named in traces and errors: the LangChain name."""
        if self.search_kwargs:
            _check_kwargs(retriever, self.search_kwargs)

    def __repr__(self) -> str:
        return f"LangChainRetriever({self.name})"

    def __deepcopy__(self, memo: dict[int, Any]) -> LangChainRetriever:
        return self  # shared by every copy of a program, like the index behind it

    def __call__(self, query: str, k: int | None = None, **search_kwargs: Any) -> list[Passage]:
        retriever, kwargs, want = self._prepared(k, search_kwargs)
        try:
            documents = retriever.invoke(query, **kwargs)
        except Exception as exc:
            raise self._failed(exc) from exc
        return _passages(documents, want)

    async def acall(self, query: str, k: int | None = None, **search_kwargs: Any) -> list[Passage]:
        """The async form, through the retriever's ``ainvoke``."""
        retriever, kwargs, want = self._prepared(k, search_kwargs)
        try:
            documents = await retriever.ainvoke(query, **kwargs)
        except Exception as exc:
            raise self._failed(exc) from exc
        return _passages(documents, want)

    def _prepared(self, k: int | None, options: Mapping[str, Any]) -> tuple[BaseRetriever, dict[str, Any], int | None]:
        """The retriever to call (a sized copy when it has a knob), the ``invoke`` kwargs, the k to cut to."""
        want = k if k is not None else self.k
        if want is not None and want < 1:
            raise ValueError(f"k must be at least 1, got {want}")
        search = {**self.search_kwargs, **options}
        if options:
            _check_kwargs(self.retriever, options)
        retriever = self.retriever
        current = getattr(retriever, "search_kwargs", None)
        if isinstance(current, Mapping):
            merged = {**current, **search, **({"k": want} if want is not None else {})}
            if merged != current:
                retriever = retriever.model_copy(update={"search_kwargs": merged})
            return retriever, {}, want
        knob = next((f for f in K_FIELDS if isinstance(getattr(retriever, f, None), int)), None)
        if knob is not None and want is not None and getattr(retriever, knob) != want:
            retriever = retriever.model_copy(update={knob: want})
        return retriever, search, want

    def _failed(self, exc: Exception) -> RetrievalError:
        return RetrievalError(f"LangChain retriever {self.name} failed: {type(exc).__name__}: {str(exc)[:300]}")


def from_langchain_retriever(retriever: Any, k: int | None = None, *,
                             search_kwargs: Mapping[str, Any] | None = None) -> LangChainRetriever:
    """Wrap a LangChain ``BaseRetriever`` as a bridge retriever, ready for ``lmbridge.Retrieve``.

    ``k`` is the top-k used when a call gives none (None: the retriever's own). ``search_kwargs``
    (a vector store's ``filter``, ``score_threshold``, ...) apply to every call.
    """
    if not isinstance(retriever, BaseRetriever):
        raise TypeError("from_langchain_retriever needs a langchain_core BaseRetriever, "
                        f"got {type(retriever).__name__}")
    return LangChainRetriever(retriever, k=k, search_kwargs=search_kwargs)


# -- the k of a retriever inside a chain (``from_chain`` searches it) ----------------------------------

SEARCH_METHODS = {"similarity": "similarity_search", "mmr": "max_marginal_relevance_search",
                  "similarity_score_threshold": "similarity_search_with_relevance_scores"}
"""The vector store method each ``search_type`` calls: its ``k`` default is the retriever's k when
``search_kwargs`` gives none."""


def k_knob(retriever: Any) -> Knob | None:
    """The top-k knob of a LangChain retriever (its ``k`` now, and its size when it says), or None when
    it has none we know: ``search_kwargs["k"]`` (else the vector store's own default for its search
    type), then an integer field ``k`` or ``top_k``. The size is the number of ``docs`` it holds, or
    of entries in an in-memory vector store."""
    search = getattr(retriever, "search_kwargs", None)
    if isinstance(search, Mapping):
        store = getattr(retriever, "vectorstore", None)
        own = search.get("k", _default_k(store, getattr(retriever, "search_type", "similarity")))
        held = getattr(store, "store", None)
        size = len(held) if isinstance(held, dict) else None
    else:
        field = next((f for f in K_FIELDS if isinstance(getattr(retriever, f, None), int)), None)
        own = getattr(retriever, field) if field is not None else None
        docs = getattr(retriever, "docs", None)
        size = len(docs) if isinstance(docs, list) else None
    if not isinstance(own, int) or isinstance(own, bool) or own < 1:
        return None
    return Knob(own, size)


def _default_k(store: Any, search_type: Any) -> Any:
    method = getattr(store, SEARCH_METHODS.get(str(search_type), ""), None)
    if method is None:
        return None
    try:
        parameter = inspect.signature(method).parameters.get("k")
    except (TypeError, ValueError):
        return None
    return None if parameter is None else parameter.default


def with_k(retriever: BaseRetriever, k: int) -> BaseRetriever:
    """A copy of ``retriever`` whose top-k knob (as ``k_knob`` reads it) is ``k``; the user's is not changed."""
    search = getattr(retriever, "search_kwargs", None)
    if isinstance(search, Mapping):
        return retriever.model_copy(update={"search_kwargs": {**search, "k": k}})
    field = next(f for f in K_FIELDS if isinstance(getattr(retriever, f, None), int))
    return retriever.model_copy(update={field: k})


def chain_retrievers(chain: Runnable[Any, Any], search_k: Sequence[int] | bool
                     ) -> tuple[dict[str, BaseRetriever], RetrieverK | None]:
    """The retrievers in ``chain`` with a k knob, by name (their LangChain name, numbered when it
    repeats), and the module searching their ``k``: None when there is none, or ``search_k=False``."""
    found: dict[int, BaseRetriever] = {}

    def look(node: Any) -> Any:
        if isinstance(node, BaseRetriever) and k_knob(node) is not None:
            found.setdefault(id(node), node)
        return node

    if search_k is False:
        return {}, None
    rewrite(chain, lambda name, t: t, look)
    named: dict[str, BaseRetriever] = {}
    for retriever in found.values():
        name = retriever.get_name()
        named[name if name not in named else f"{name}#{len(named)}"] = retriever
    if not named:
        return {}, None
    knobs = {name: k_knob(r) for name, r in named.items()}
    return named, RetrieverK({n: k for n, k in knobs.items() if k is not None},
                             None if search_k is True else list(search_k))


def convert(retriever: Any) -> Any:
    """The converter ``lmbridge.Retrieve`` uses for objects from langchain-core: a ``BaseRetriever`` is
    wrapped; any other object is left for ``Retrieve`` to judge."""
    return from_langchain_retriever(retriever) if isinstance(retriever, BaseRetriever) else retriever


def _check_kwargs(retriever: BaseRetriever, kwargs: Mapping[str, Any]) -> None:
    takes = isinstance(getattr(retriever, "search_kwargs", None), Mapping) or type(retriever)._expects_other_args
    if not takes:
        raise TypeError(f"LangChain retriever {retriever.get_name()} takes no search kwargs "
                        f"(given {sorted(kwargs)}): build the retriever with them instead")


def _passages(documents: Any, k: int | None) -> list[Passage]:
    kept = list(documents)[:k] if k is not None else list(documents)
    return [_passage(d) for d in kept]


def _passage(document: Any) -> Passage:
    """A LangChain ``Document`` as a Passage: its content, its metadata, and the score a retriever put
    in the metadata (``score`` or ``relevance_score``), else 0."""
    metadata = dict(getattr(document, "metadata", None) or {})
    score = next((metadata[key] for key in ("score", "relevance_score") if isinstance(metadata.get(key), int | float)),
                 0.0)
    if getattr(document, "id", None):
        metadata.setdefault("id", document.id)
    return Passage(str(document.page_content), float(score), metadata)


register_retriever_converter("langchain_core", convert)

__all__ = ["K_FIELDS", "LangChainRetriever", "chain_retrievers", "convert", "from_langchain_retriever", "k_knob",
           "with_k"]
