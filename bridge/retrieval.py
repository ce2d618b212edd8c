"""Retrieval: the retriever protocol, the ``Retrieve`` module, and a BM25 retriever.

A retriever is any callable ``retriever(query, k)`` that returns (or, when async, resolves to) a
list of ``lmbridge.Passage``; a sync one may also have an async method ``acall(query, k)``, which
async code awaits. Plain strings and mappings with a ``"text"`` key are accepted too and turned into
Passages, so a three-line function over a search index is already a retriever. LangChain and
LlamaIndex retrievers are converted by their adapter (``ensure_retriever``).
``BM25Retriever`` ranks an in-memory corpus with the ``bm25s`` library (``pip install
'lmbridge[retrieval]'``), imported on first use.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lmbridge.agents import run_sync
from lmbridge.errors import BridgeError, MissingDependencyError, RetrievalError, StateError, describe
from lmbridge.programs import Module
from lmbridge.tracing import start_run
from lmbridge.types import Passage, Prediction

PassageLike = Passage | str | Mapping[str, Any]


@runtime_checkable
class Retriever(Protocol):
    """The sync retriever protocol: the ``k`` best passages for ``query``, best first."""

    def __call__(self, query: str, k: int) -> Sequence[PassageLike]: ...


@runtime_checkable
class AsyncRetriever(Protocol):
    """The async form of the protocol."""

    def __call__(self, query: str, k: int) -> Awaitable[Sequence[PassageLike]]: ...


RetrieverLike = Callable[[str, int], Any]


def to_passage(item: PassageLike | Any) -> Passage:
    """One retrieved item as a Passage: a Passage as is, a string as its text, a mapping by its
    ``"text"`` (or ``"content"``) key with ``"score"`` and the other keys as metadata."""
    if isinstance(item, Passage):
        return item
    if isinstance(item, str):
        return Passage(item)
    if isinstance(item, Mapping):
        key = next((k for k in ("text", "content", "long_text", "page_content") if k in item), None)
        if key is None:
            raise TypeError(f"a retrieved mapping needs a 'text' key, got keys {sorted(item)}")
        score = item.get("score", 0.0)
        meta = {k: v for k, v in item.items() if k not in (key, "score")}
        return Passage(str(item[key]), float(score) if score is not None else 0.0, meta)
    text = getattr(item, "text", None) or getattr(item, "page_content", None)
    if isinstance(text, str):
        score = float(getattr(item, "score", 0.0) or 0.0)
        return Passage(text, score, dict(getattr(item, "metadata", {}) or {}))
    raise TypeError(f"a retriever must return passages, strings or mappings, got {type(item).__name__}")


def to_passages(items: Iterable[PassageLike | Any] | None) -> list[Passage]:
    return [to_passage(i) for i in items or ()]


def retrieve(retriever: RetrieverLike, query: Any, k: int, options: Mapping[str, Any] | None = None) -> list[Passage]:
    """Call a sync or async retriever from sync code and normalise its answer.

    ``options`` (for example ``{"filters": ...}``) go to the retriever as keyword arguments, and
    only when given, so a plain ``retriever(query, k)`` never sees them. A retriever that raises
    anything but a bridge error comes out as ``RetrievalError`` naming the retriever.
    """
    with start_run("retriever", retriever_name(retriever), query, k) as run:
        passages = _retrieve(retriever, query, k, options)
        run.end(passages)
    return passages


async def aretrieve(retriever: RetrieverLike, query: Any, k: int,
                    options: Mapping[str, Any] | None = None) -> list[Passage]:
    """Call a sync or async retriever from async code and normalise its answer (see ``retrieve``)."""
    with start_run("retriever", retriever_name(retriever), query, k) as run:
        passages = await _aretrieve(retriever, query, k, options)
        run.end(passages)
    return passages


def retriever_size(retriever: Any) -> int | None:
    """How many passages a retriever can return at most, when it says so with ``len()`` (as
    ``BM25Retriever`` does); None when it does not."""
    try:
        return len(retriever)
    except TypeError:
        return None


def check_k(retriever: Any, k: int, name: str = "the retriever") -> None:
    """Refuse a ``k`` below 1, or above what ``retriever`` can return: asking a 50-passage index for
    100 passages is a mistake in the program, not something to round down in silence."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    size = retriever_size(retriever)
    if size is not None and k > size:
        raise ValueError(f"k={k} is more than the {size} passages {name} can return")


def retriever_name(retriever: Any) -> str:
    """How a retriever is named in traces: its ``name`` attribute, function name or class name."""
    name = getattr(retriever, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(retriever, "__name__", None) or type(retriever).__name__


def _retrieve(retriever: RetrieverLike, query: Any, k: int, options: Mapping[str, Any] | None) -> list[Passage]:
    try:
        result = retriever(query, k, **options) if options else retriever(query, k)
        if inspect.isawaitable(result):
            result = run_sync(_awaited(result))
    except BridgeError:
        raise
    except Exception as exc:
        raise RetrievalError(f"retriever {retriever!r} failed: {describe(exc)}") from exc
    return to_passages(result)[:k]


async def _aretrieve(retriever: RetrieverLike, query: Any, k: int,
                     options: Mapping[str, Any] | None) -> list[Passage]:
    call = functools.partial(retriever, query, k, **(options or {}))
    native = getattr(retriever, "acall", None)  # a sync retriever's async method, used in async code
    try:
        if _is_async(retriever):
            result = await call()
        elif native is not None and _is_async(native):
            result = await native(query, k, **(options or {}))
        else:
            result = await asyncio.to_thread(call)
            if inspect.isawaitable(result):
                result = await result
    except BridgeError:
        raise
    except Exception as exc:
        raise RetrievalError(f"retriever {retriever!r} failed: {describe(exc)}") from exc
    return to_passages(result)[:k]


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


RETRIEVER_ADAPTERS: dict[str, str] = {
    "langchain_core": "lmbridge.adapters.langchain._retrievers",
    "llama_index": "lmbridge.adapters.llamaindex._retrievers",
}
"""Framework packages whose retrievers an adapter converts, and the adapter module that registers it."""

_retriever_converters: dict[str, Callable[[Any], RetrieverLike]] = {}


def register_retriever_converter(package: str, convert: Callable[[Any], RetrieverLike]) -> None:
    """Convert the retrievers whose class comes from ``package`` (a top-level package name) with ``convert``."""
    _retriever_converters[package] = convert


def ensure_retriever(retriever: Any) -> Any:
    """A retriever of another framework converted (``Retrieve(langchain_retriever)``); anything else as is."""
    for cls in type(retriever).__mro__:
        package = cls.__module__.partition(".")[0]
        if package not in _retriever_converters and package in RETRIEVER_ADAPTERS:
            importlib.import_module(RETRIEVER_ADAPTERS[package])  # registers its converter
        if package in _retriever_converters:
            return _retriever_converters[package](retriever)
    return retriever


class Retrieve(Module):
    """``Retrieve(retriever, k=3)``: a module whose call ``retrieve(query)`` returns
    ``Prediction(passages=[text, ...], passage_objects=[Passage, ...])``.

    It has no predictor and nothing to learn; ``k`` may be given per call, and is saved with the
    program. ``query`` is usually a string; any object the retriever takes (a LlamaIndex
    ``QueryBundle``) is passed through as is, and so are keyword ``options`` (``filters=...``).
    A retriever that fails raises ``lmbridge.RetrievalError``.
    """

    def __init__(self, retriever: RetrieverLike, k: int = 3) -> None:
        retriever = ensure_retriever(retriever)
        if not callable(retriever):
            raise TypeError(f"a retriever is called as retriever(query, k); got {type(retriever).__name__}")
        check_k(retriever, k, retriever_name(retriever))
        self.retriever = retriever
        self.k = k

    state_section = "retrieve"

    def __repr__(self) -> str:
        return f"Retrieve({self.retriever!r}, k={self.k})"

    def own_state(self) -> dict[str, Any]:
        return {"k": self.k}

    def check_own_state(self, name: str, entry: Any) -> Callable[[], None]:
        k: Any = entry.get("k") if isinstance(entry, dict) else None
        try:
            check_k(self.retriever, k, retriever_name(self.retriever))
        except ValueError as exc:
            raise StateError(f"Retrieve {name!r}: {exc}") from None

        def apply() -> None:
            self.k = int(k)
        return apply

    def __deepcopy__(self, memo: dict[int, Any]) -> Retrieve:
        return Retrieve(self.retriever, self.k)  # a copied program shares its retriever and index

    def _prediction(self, passages: list[Passage]) -> Prediction:
        return Prediction(passages=[p.text for p in passages], passage_objects=passages)

    def forward(self, query: Any, k: int | None = None, **options: Any) -> Prediction:  # type: ignore[override]
        if k is not None:
            check_k(self.retriever, k, retriever_name(self.retriever))
        return self._prediction(retrieve(self.retriever, query, k or self.k, options))

    async def aforward(self, query: Any, k: int | None = None, **options: Any) -> Prediction:  # type: ignore[override]
        if k is not None:
            check_k(self.retriever, k, retriever_name(self.retriever))
        return self._prediction(await aretrieve(self.retriever, query, k or self.k, options))

    def __call__(self, query: Any, k: int | None = None, **options: Any) -> Prediction:  # type: ignore[override]
        return self.forward(query, k, **options)

    async def acall(self, query: Any, k: int | None = None, **options: Any) -> Prediction:  # type: ignore[override]
        return await self.aforward(query, k, **options)


class BM25Retriever:
    """BM25 over an in-memory corpus, ranked by the ``bm25s`` library.

    ``BM25Retriever(texts, metadata=None)`` takes strings (with an optional metadata mapping per
    text) or Passages. It is a retriever: ``bm25(query, k)`` returns the k best Passages, with the
    BM25 score and the metadata (plus ``"index"``, the position in the corpus).
    """

    def __init__(self, corpus: Sequence[str | Passage], metadata: Sequence[Mapping[str, Any]] | None = None,
                 *, stopwords: str | list[str] | None = "en", k1: float = 1.5, b: float = 0.75,
                 stemmer: Callable[[str], str] | None = None) -> None:
        passages = [c if isinstance(c, Passage) else Passage(str(c)) for c in corpus]
        if metadata is not None:
            if len(metadata) != len(passages):
                raise ValueError(f"metadata has {len(metadata)} entries for {len(passages)} texts")
            passages = [Passage(p.text, p.score, {**p.metadata, **m}) for p, m in zip(passages, metadata)]
        if not passages:
            raise ValueError("BM25Retriever needs a non-empty corpus")
        self.passages: list[Passage] = passages
        self._stopwords = stopwords
        self._stemmer = stemmer
        bm25s = _bm25s()
        self._index = bm25s.BM25(k1=k1, b=b)
        self._index.index(self._tokenize([p.text for p in passages]), show_progress=False)

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return f"BM25Retriever({len(self.passages)} passages)"

    def __deepcopy__(self, memo: dict[int, Any]) -> BM25Retriever:
        return self  # read-only once built: shared by every copy of a program

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        tokens = _bm25s().tokenize(texts, stopwords=self._stopwords, stemmer=self._stemmer, return_ids=False,
                                   show_progress=False)
        return [list(t) for t in tokens]

    def __call__(self, query: str, k: int = 3) -> list[Passage]:
        k = max(1, min(k, len(self.passages)))
        tokens = self._tokenize([query])
        if not tokens[0]:
            return []
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        found = []
        for i, score in zip(ids[0], scores[0]):
            p = self.passages[int(i)]
            found.append(Passage(p.text, float(score), {**p.metadata, "index": int(i)}))
        return found


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:
        raise MissingDependencyError("bm25s", "retrieval") from exc
    return bm25s


__all__ = ["RETRIEVER_ADAPTERS", "AsyncRetriever", "BM25Retriever", "PassageLike", "Retrieve", "Retriever",
           "RetrieverLike", "aretrieve", "check_k", "ensure_retriever", "register_retriever_converter", "retrieve",
           "retriever_name", "retriever_size", "to_passage", "to_passages"]
