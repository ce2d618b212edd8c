"""RAG: retrieve passages for a question, then answer from them, with the retrieval side searchable.

``RAG(retriever)`` is the retrieval-augmented program most users write by hand (a ``Retrieve`` and a
predictor over its passages), made a module of its own for one reason: its retrieval settings are
part of what an optimizer can learn. ``k`` (how many passages), which retriever answers (or the
reciprocal-rank fusion of several) and whether the question is first rewritten into a search query
are *settings*: the optimizers search them together with the answer prompt, scored end to end
(``setting_options``/``apply_settings``), and they are saved in the program's JSON state (section
``"rag"``) and restored on load. The answer step is one ``Predict`` (``self.answer``); its default
signature makes the answer extractive, a span copied from the passages (``OutputField(extract_from=...)``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lmbridge.errors import RetrievalError, StateError
from lmbridge.programs import Module, Predict
from lmbridge.retrieval import RetrieverLike, ensure_retriever, retrieve, retriever_size
from lmbridge.signatures import InputField, OutputField, Signature, SignatureLike, ensure_signature
from lmbridge.types import Passage, Prediction

FUSION = "fusion"
"""The retriever choice that merges every retriever's passages by reciprocal rank."""
RRF_K = 60
"""The rank offset of reciprocal-rank fusion (a passage scores the sum of 1 / (60 + rank))."""
SETTINGS = ("k", "retriever", "rewrite")


class AnswerFromPassages(Signature):
    """Answer the question with a short phrase copied from the passages."""

    context: list[str] = InputField(desc="passages that may hold the answer")
    question: str = InputField()
    answer: str = OutputField(desc="a few words copied from the passages", extract_from="context")


class RAG(Module):
    """``RAG(retriever, signature=None, *, k=3, search=None)``: retrieve ``k`` passages for the question
    and answer from them with ``self.answer`` (a Predict of ``signature``, by default
    ``AnswerFromPassages``: ``context: list[str], question -> answer``, extractive).

    ``retriever`` is one retriever or a mapping of named ones (then ``use`` names the one that
    answers, or ``"fusion"`` for the reciprocal-rank fusion of all). ``rewrite=True`` first asks
    ``self.rewrite_query`` (``question -> query``) for a search query. ``search`` maps each setting
    to the values an optimizer may try (``{"k": [1, 3, 5], "rewrite": [False, True]}``); by default
    ``k`` in 1, 3, 5 and, with several retrievers, each of them and their fusion. A ``k`` above what a
    retriever can return (its ``len()``) is refused here. The call is ``rag(question=...)``; the
    Prediction carries the answer fields and ``passages`` (the ``Passage`` objects used).
    """

    state_section = "rag"

    def __init__(self, retriever: RetrieverLike | Mapping[str, RetrieverLike], signature: SignatureLike | None = None,
                 *, k: int = 3, use: str | None = None, rewrite: bool = False,
                 search: Mapping[str, Sequence[Any]] | None = None, **predict_options: Any) -> None:
        found = dict(retriever) if isinstance(retriever, Mapping) else {"retriever": retriever}
        if not found or FUSION in found:
            raise ValueError(f"RAG needs at least one retriever, none named {FUSION!r}")
        self.retrievers = {name: _callable(name, r) for name, r in found.items()}
        sig = ensure_signature(signature if signature is not None else AnswerFromPassages)
        if "context" not in sig.input_fields or "question" not in sig.input_fields:
            raise ValueError(f"a RAG answer signature takes 'context' and 'question' inputs; got {sig.spec()!r}")
        self.answer = Predict(sig, **predict_options)
        self.k, self.use, self.rewrite = k, use if use is not None else next(iter(self.retrievers)), rewrite
        problem = self._problem(self.settings(), can_rewrite=True)
        if problem is not None:
            raise ValueError(problem)
        self._options = self._checked_options(search)
        if True in self._options["rewrite"]:
            self.rewrite_query = Predict(ensure_signature(
                "question -> query", "Write a short search query that finds the passage answering the question."),
                **predict_options)

    def __repr__(self) -> str:
        return f"RAG({sorted(self.retrievers)}, k={self.k}, retriever={self.use!r}, rewrite={self.rewrite})"

    # -- settings: what an optimizer may search, and what is saved ----------------------------------
    def settings(self) -> dict[str, Any]:
        """The current retrieval settings: ``k``, ``retriever`` (a name or "fusion") and ``rewrite``."""
        return {"k": self.k, "retriever": self.use, "rewrite": self.rewrite}

    def setting_options(self) -> dict[str, list[Any]]:
        """The values an optimizer may try for each searched setting, the current value first."""
        now = self.settings()
        return {name: [now[name], *(v for v in values if v != now[name])]
                for name, values in self._options.items() if len(set(values) | {now[name]}) > 1}

    def apply_settings(self, values: Mapping[str, Any]) -> None:
        """Set retrieval settings (checked first: a bad value raises ValueError and changes nothing)."""
        merged = {**self.settings(), **values}
        problem = self._problem(merged)
        if problem is not None:
            raise ValueError(problem)
        self.k, self.use, self.rewrite = int(merged["k"]), str(merged["retriever"]), bool(merged["rewrite"])

    def own_state(self) -> dict[str, Any]:
        return self.settings()

    def check_own_state(self, name: str, entry: Any) -> Callable[[], None]:
        if not isinstance(entry, dict) or set(entry) - set(SETTINGS):
            raise StateError(f"RAG {name!r}: expected the settings {list(SETTINGS)}, got {entry!r}")
        problem = self._problem({**self.settings(), **entry})
        if problem is not None:
            raise StateError(f"RAG {name!r}: {problem}")
        return lambda: self.apply_settings(entry)

    def _problem(self, s: Mapping[str, Any], can_rewrite: bool | None = None) -> str | None:
        k, use, rewrite = s.get("k"), s.get("retriever"), s.get("rewrite")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            return f"'k' must be a positive integer, got {k!r}"
        choices = [*self.retrievers, *([FUSION] if len(self.retrievers) > 1 else [])]
        if use not in choices:
            return f"'retriever' must be one of {choices}, got {use!r}"
        for rname in (self.retrievers if use == FUSION else [str(use)]):
            size = retriever_size(self.retrievers[rname])
            if size is not None and k > size:
                return f"k={k} is more than the {size} passages retriever {rname!r} can return"
        if not isinstance(rewrite, bool):
            return f"'rewrite' must be true or false, got {rewrite!r}"
        if rewrite and not (hasattr(self, "rewrite_query") if can_rewrite is None else can_rewrite):
            return "'rewrite' is true, but this RAG has no query writer (build it with rewrite=True or " \
                   "search={'rewrite': [False, True]})"
        return None

    def _checked_options(self, search: Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
        many = len(self.retrievers) > 1
        options: dict[str, list[Any]] = {
            "k": sorted({1, 3, 5, self.k}), "rewrite": [self.rewrite],
            "retriever": [*self.retrievers, FUSION] if many else [self.use]}
        if search is None:  # the default k grid stays within what the retrievers can return
            sizes = [s for s in map(retriever_size, self.retrievers.values()) if s is not None]
            options["k"] = [k for k in options["k"] if k <= min(sizes, default=k)] or [self.k]
        for name, values in (search or {}).items():
            if name not in SETTINGS:
                raise ValueError(f"RAG can search {list(SETTINGS)}, not {name!r}")
            if isinstance(values, (str, bytes)) or not list(values):
                raise ValueError(f"search[{name!r}] must be a non-empty list of values, got {values!r}")
            options[name] = list(values)
        for name, values in options.items():
            for value in values:  # each value alone must be a valid setting
                problem = self._problem({**self.settings(), name: value}, can_rewrite=True)
                if problem is not None:
                    raise ValueError(f"search[{name!r}]: {problem}")
        return options

    # -- the call ----------------------------------------------------------------------------------
    def passages(self, query: str) -> list[Passage]:
        """The ``k`` passages the current settings retrieve for ``query``."""
        if self.use != FUSION:
            return retrieve(self.retrievers[self.use], query, self.k)
        return fuse([retrieve(r, query, self.k) for r in self.retrievers.values()], self.k)

    def forward(self, question: str) -> Prediction:  # type: ignore[override]
        query = self.rewrite_query(question=question).query if self.rewrite else question
        found = self.passages(str(query))
        if not found:
            raise RetrievalError(f"RAG: retriever {self.use!r} found no passage for {query!r}, so there is "
                                 "nothing to answer from")
        prediction = self.answer(context=[p.text for p in found], question=question)
        return prediction.copy(passages=found)

    def __deepcopy__(self, memo: dict[int, Any]) -> RAG:
        new = copy.copy(self)  # the retrievers (and their indexes) are shared; the predictors are copied
        new.retrievers = dict(self.retrievers)
        new._options = {k: list(v) for k, v in self._options.items()}
        new.answer = copy.deepcopy(self.answer, memo)
        if hasattr(self, "rewrite_query"):
            new.rewrite_query = copy.deepcopy(self.rewrite_query, memo)
        return new


def fuse(rankings: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Reciprocal-rank fusion: the ``k`` passages (by text) with the highest sum of 1 / (60 + rank)
    over ``rankings``; each keeps the metadata of its first sighting and the fused score."""
    scores: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for ranking in rankings:
        for rank, p in enumerate(ranking, start=1):
            scores[p.text] = scores.get(p.text, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(p.text, p)
    best = sorted(scores, key=lambda t: -scores[t])[:k]
    return [Passage(t, scores[t], dict(first[t].metadata)) for t in best]


def _callable(name: str, retriever: Any) -> RetrieverLike:
    converted = ensure_retriever(retriever)
    if not callable(converted):
        raise TypeError(f"retriever {name!r} is called as retriever(query, k); got {type(retriever).__name__}")
    return converted  # type: ignore[no-any-return]


__all__ = ["FUSION", "RAG", "AnswerFromPassages", "fuse"]
