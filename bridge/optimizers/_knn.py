"""KNNFewShot: demos chosen per input, the ``k`` training examples nearest to it.

``KNNFewShot(k, trainset, embedder)`` embeds the trainset once at compile time. The compiled
program embeds each call's inputs and runs the student with the nearest examples as demos (plain
labeled demos; pass BootstrapFewShot arguments, such as ``metric=``, to bootstrap them instead).

An embedder is any callable ``list[str] -> list of vectors`` (see ``bridge/embedders.py``):
``SentenceTransformerEmbedder`` runs a local model (all-MiniLM-L6-v2 by default, no network),
``LiteLLMEmbedder`` reaches any LiteLLM embedding model, and ``HashingEmbedder`` is a small
bag-of-words embedder that needs nothing, for tests. Only the embedder's class name is recorded in
the compile report; a saved program holds no vectors and no model.

The search is numpy's (``pip install 'lmbridge[knn]'``, also part of ``[embeddings]``): cosine
similarity of the query to every training vector in one product, the top ``k`` by
``argpartition``; among scores equal to 12 decimals the earlier training example comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lmbridge.errors import MissingDependencyError
from lmbridge.evaluate import check_examples
from lmbridge.lm import Embedder, HashingEmbedder, LiteLLMEmbedder, SentenceTransformerEmbedder
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._fewshot import BootstrapFewShot
from lmbridge.programs import Module
from lmbridge.types import Example, Prediction

if TYPE_CHECKING:
    import numpy
    from numpy.typing import NDArray

__all__ = ["Embedder", "HashingEmbedder", "KNNFewShot", "KNNProgram", "LiteLLMEmbedder",
           "SentenceTransformerEmbedder"]


def _numpy() -> Any:
    try:
        import numpy  # optional and heavy (lmbridge[knn]): imported only when a KNN search runs
    except ImportError as exc:
        raise MissingDependencyError("numpy (KNNFewShot's nearest-neighbour search)", "knn") from exc
    return numpy


def _unit_rows(vectors: Sequence[Sequence[float]]) -> NDArray[numpy.float64]:
    """The vectors as the rows of a float matrix, each scaled to length 1 (a zero vector stays zero).
    ``ValueError`` when they differ in length or hold NaN or infinity."""
    np = _numpy()
    shape = "the embedder must return one list of finite numbers per text, all of one length"
    try:
        matrix = np.array(vectors, dtype=np.float64)
    except (ValueError, TypeError) as exc:  # rows of different lengths, or not numbers
        raise ValueError(f"{shape} ({exc})") from exc
    if matrix.ndim != 2:
        raise ValueError(f"{shape}; got an array of shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("the embedder returned a vector holding NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0.0, 1.0, norms)  # type: ignore[no-any-return]


def _top_k(scores: NDArray[numpy.float64], k: int) -> list[int]:
    """The indices of the ``k`` highest scores, highest first. Scores equal to 12 decimals are a tie
    (so that rounding in the sums does not decide between equally near examples), which goes to the
    lower index."""
    np = _numpy()
    scores = np.round(scores, 12)
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
        candidates = np.flatnonzero(scores >= kth)  # ascending indices: ties at kth may add some
    else:
        candidates = np.arange(len(scores))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return [int(i) for i in order[:k]]


def _text(example: Example | dict[str, Any], keys: Sequence[str]) -> str:
    return " | ".join(f"{k}: {example[k]}" for k in keys if k in example)


class KNNProgram(Module):
    """The student, run with the ``k`` training examples nearest to each call's inputs as demos."""

    def __init__(self, program: Module, trainset: Sequence[Example], vectors: Sequence[Sequence[float]], k: int,
                 embedder: Embedder, bootstrap_args: dict[str, Any]) -> None:
        self.program = program
        self._trainset = list(trainset)
        self._vectors = _unit_rows(vectors)
        self._k = k
        self._embedder = embedder
        self._bootstrap_args = bootstrap_args

    def nearest(self, **inputs: Any) -> list[Example]:
        keys = list(inputs)
        query = _unit_rows(self._embedder([_text(inputs, keys)]))
        if query.shape != (1, self._vectors.shape[1]):
            raise ValueError(f"the embedder gave vectors of shape {query.shape} for one query; the training "
                             f"vectors have {self._vectors.shape[1]} numbers")
        return [self._trainset[i] for i in _top_k(self._vectors @ query[0], self._k)]

    def _with_demos(self, inputs: dict[str, Any]) -> Module:
        near = self.nearest(**inputs)
        if self._bootstrap_args:
            opt = BootstrapFewShot(**{"display_progress": False, **self._bootstrap_args})
            return opt.compile(self.program, trainset=near)
        program = self.program.deepcopy()
        for p in program.predictors():
            p.demos = [e for e in near if all(n in e for n in p.signature.input_fields)]
        return program

    def forward(self, **inputs: Any) -> Prediction:
        return self._with_demos(inputs)(**inputs)

    async def aforward(self, **inputs: Any) -> Prediction:
        return await self._with_demos(inputs).acall(**inputs)


class KNNFewShot(Optimizer):
    """Per-input demos: the ``k`` nearest training examples under ``embedder``."""

    def __init__(self, k: int, trainset: Sequence[Example], embedder: Embedder,
                 **few_shot_bootstrap_args: Any) -> None:
        super().__init__(display_progress=bool(few_shot_bootstrap_args.get("display_progress", False)))
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        self.k = k
        self.trainset = check_examples(trainset, "trainset")
        self.embedder = embedder
        self.few_shot_bootstrap_args = dict(few_shot_bootstrap_args)

    def compile(self, student: Module, *, trainset: Sequence[Example] | None = None,
                valset: Sequence[Example] | None = None, teacher: Module | None = None) -> Module:
        rows = check_examples(trainset, "trainset") if trainset is not None else self.trainset
        _numpy()  # before the embedder's work: a missing numpy fails at once, with the install line
        with CompileRun(self, student, rows, valset, total=1, unit="steps") as run:
            keys = list(rows[0].inputs())
            vectors = list(self.embedder([_text(r, keys) for r in rows]))
            if len(vectors) != len(rows):
                raise ValueError(f"the embedder returned {len(vectors)} vectors for {len(rows)} texts")
            run.step()
        program = KNNProgram(student.deepcopy(), rows, vectors, self.k, self.embedder,
                             self.few_shot_bootstrap_args)
        program.report = run.report()
        return program

    def estimate(self, student: Module, *, trainset: Sequence[Example] | None = None,
                 valset: Sequence[Example] | None = None) -> Estimate:
        return Estimate(0, 0.0, {"per call": 0 if not self.few_shot_bootstrap_args else self.k})

    def settings(self) -> dict[str, Any]:
        return {"k": self.k, "embedder": type(self.embedder).__name__,
                "bootstrap": sorted(self.few_shot_bootstrap_args)}
