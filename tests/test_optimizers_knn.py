"""KNNFewShot's nearest-neighbour search (numpy): which training examples it picks, its tie rule, and
its errors. No LM is called: ``nearest`` needs only the embedder."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import lmbridge
from examples.data import load_classification
from lmbridge import KNNFewShot
from lmbridge.optimizers import HashingEmbedder

SIG = "text -> label"


def table_embedder(table: dict[str, list[Any]]) -> Callable[[list[str]], list[list[Any]]]:
    """Fixed vectors by text: the texts KNNFewShot embeds are ``text: <row text>``."""
    return lambda texts: [table[t.removeprefix("text: ")] for t in texts]


def rows(*texts: str) -> list[lmbridge.Example]:
    return [lmbridge.Example(text=t, label=t.upper()).with_inputs("text") for t in texts]


def reference_scores(vectors: Sequence[Sequence[float]], query: Sequence[float]) -> list[float]:
    """The pure-Python search KNNFewShot used before numpy: cosine similarity of unit vectors, rounded
    to 12 decimals for the documented tie rule."""
    def unit(v: Sequence[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    q = unit(query)
    return [round(sum(a * b for a, b in zip(q, unit(v))), 12) for v in vectors]


def test_the_same_neighbours_as_the_plain_python_search_on_real_questions() -> None:
    train = load_classification("trec", "train", 150)
    test = load_classification("trec", "test", 25)
    embedder = HashingEmbedder()
    program = KNNFewShot(5, train, embedder).compile(lmbridge.Predict(SIG))
    vectors = embedder([f"text: {r.text}" for r in train])
    ties_at_the_cut = 0
    for row in test:
        scores = reference_scores(vectors, embedder([f"text: {row.text}"])[0])
        ranked = sorted(range(len(train)), key=lambda i: (-scores[i], i))  # the earlier example first
        assert [e.text for e in program.nearest(text=row.text)] == [train[i].text for i in ranked[:5]]
        ties_at_the_cut += scores[ranked[4]] == scores[ranked[5]]
    assert ties_at_the_cut > 0  # bag-of-words scores often tie: the tie rule decided some neighbours


def test_equal_scores_go_to_the_earlier_training_example() -> None:
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [2.0, 0.0], "d": [1.0, 1.0], "e": [3.0, 0.0],
             "q": [5.0, 0.0]}
    program = KNNFewShot(3, rows("a", "b", "c", "d", "e"), table_embedder(table)).compile(lmbridge.Predict(SIG))
    # a, c and e point the same way as q (lengths do not count): a tie, kept in trainset order
    assert [e.text for e in program.nearest(text="q")] == ["a", "c", "e"]
    program = KNNFewShot(4, rows("e", "d", "c", "b", "a"), table_embedder(table)).compile(lmbridge.Predict(SIG))
    assert [e.text for e in program.nearest(text="q")] == ["e", "c", "a", "d"]
    many = KNNFewShot(9, rows("b", "a"), table_embedder(table)).compile(lmbridge.Predict(SIG))
    assert [e.text for e in many.nearest(text="q")] == ["a", "b"]  # k above the trainset: all, ranked


def test_a_zero_vector_is_allowed_and_scores_zero() -> None:
    table = {"a": [0.0, 0.0], "b": [-1.0, 0.0], "c": [1.0, 0.0], "q": [1.0, 0.0]}
    program = KNNFewShot(3, rows("a", "b", "c"), table_embedder(table)).compile(lmbridge.Predict(SIG))
    assert [e.text for e in program.nearest(text="q")] == ["c", "a", "b"]


@pytest.mark.parametrize(("table", "match"), [
    ({"a": [1.0, 0.0], "b": [1.0]}, "all of one length"),
    ({"a": [1.0, float("nan")], "b": [1.0, 0.0]}, "NaN or infinity"),
    ({"a": [1.0, 0.0], "b": ["x", "y"]}, "finite numbers"),
])
def test_vectors_that_cannot_be_compared_are_refused_at_compile(table: dict[str, list[Any]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KNNFewShot(1, rows("a", "b"), table_embedder(table)).compile(lmbridge.Predict(SIG))


def test_a_query_vector_of_another_length_is_refused() -> None:
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "q": [1.0, 0.0, 0.0]}
    program = KNNFewShot(1, rows("a", "b"), table_embedder(table)).compile(lmbridge.Predict(SIG))
    with pytest.raises(ValueError, match="training vectors have 2 numbers"):
        program.nearest(text="q")


def test_without_numpy_compile_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    calls: list[list[str]] = []

    def embedder(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[1.0] for _ in texts]

    with pytest.raises(lmbridge.MissingDependencyError, match=r"pip install 'lmbridge\[knn\]'") as info:
        KNNFewShot(1, rows("a"), embedder).compile(lmbridge.Predict(SIG))
    assert info.value.extra == "knn"
    assert calls == []  # it failed before any embedding was paid for
