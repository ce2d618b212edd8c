"""LlamaIndex data and evaluators in: datasets as ``lmbridge.Example``s, evaluators as metrics.

* ``from_llamaindex_dataset(dataset)`` reads a ``LabelledRagDataset`` (query, reference answer,
  reference contexts) or a ``QueryResponseDataset`` (query, response) into Examples whose input is
  ``question``.
* ``evaluator_metric(evaluator)`` makes a LlamaIndex evaluator (``CorrectnessEvaluator``,
  ``FaithfulnessEvaluator``, ``RelevancyEvaluator``, ...) a bridge metric. The metric scores 1.0
  or 0.0 by the evaluator's ``passing`` verdict (``use="score"``: its score, divided by
  ``scale``); an evaluator that gives no verdict raises, so a failure never shows as a score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from lmbridge import Example, Prediction
from lmbridge.adapters.llamaindex._nodes import require_llamaindex


def from_llamaindex_dataset(dataset: Any, *, question: str = "question", answer: str = "answer",
                            contexts: str = "contexts") -> list[Example]:
    """Examples from a ``LabelledRagDataset`` or a ``QueryResponseDataset``: ``question`` (the input),
    ``answer`` (the reference answer or response) and, for a RAG dataset, ``contexts`` (the
    reference contexts, a list of strings)."""
    require_llamaindex()
    from llama_index.core.evaluation import QueryResponseDataset

    rows: list[dict[str, Any]]
    if isinstance(dataset, QueryResponseDataset):
        rows = [{question: q, answer: r} for q, r in dataset.qr_pairs]
    elif _is_rag_dataset(dataset):
        rows = [{question: ex.query, answer: ex.reference_answer, contexts: list(ex.reference_contexts or [])}
                for ex in dataset.examples]
    else:
        raise TypeError("from_llamaindex_dataset takes a LabelledRagDataset or a QueryResponseDataset, "
                        f"got {type(dataset).__name__}")
    return [Example(row).with_inputs(question) for row in rows]


def _is_rag_dataset(dataset: Any) -> bool:
    """A ``LabelledRagDataset`` (llama-index-core 0.12 ships it in ``llama_index.core.llama_dataset``;
    0.14 no longer does), recognised by its rows: ``query``, ``reference_answer``, ``reference_contexts``."""
    examples = getattr(dataset, "examples", None)
    return isinstance(examples, list) and all(
        hasattr(ex, "query") and hasattr(ex, "reference_answer") and hasattr(ex, "reference_contexts")
        for ex in examples)


def evaluator_metric(evaluator: Any, *, question: str = "question", answer: str = "answer",
                     reference: str | None = "answer", contexts: str | None = None,
                     use: Literal["passing", "score"] = "passing", scale: float = 1.0) -> Callable[..., float]:
    """A bridge metric ``metric(example, prediction, trace=None) -> float`` from a LlamaIndex evaluator.

    The evaluator gets ``query=example[question]``, ``response=prediction[answer]``,
    ``reference=example[reference]`` (when ``reference`` is not None and the example has it) and
    ``contexts`` read from the prediction (or else the example) under ``contexts`` when given; a
    list of passages or a single string. ``scale`` divides the score (5.0 for
    ``CorrectnessEvaluator``'s 1-5 scale).
    """
    require_llamaindex()
    from llama_index.core.evaluation import BaseEvaluator

    if not isinstance(evaluator, BaseEvaluator):
        raise TypeError(f"evaluator_metric needs a llama_index BaseEvaluator, got {type(evaluator).__name__}")
    if use not in ("passing", "score"):
        raise ValueError(f"use must be 'passing' or 'score', not {use!r}")
    name = type(evaluator).__name__

    def metric(example: Example, prediction: Prediction, trace: Any = None) -> float:
        kwargs: dict[str, Any] = {"query": str(example[question]), "response": str(prediction[answer])}
        if reference is not None and reference in example:
            ref = example[reference]
            kwargs["reference"] = ref if isinstance(ref, str) else str(ref[0] if isinstance(ref, list) else ref)
        if contexts is not None:
            found = prediction.get(contexts) if contexts in prediction else example.get(contexts)
            kwargs["contexts"] = [found] if isinstance(found, str) else list(_texts(found))
        try:
            result = evaluator.evaluate(**kwargs)
        except Exception as exc:  # the judge's answer did not parse, its LLM failed, ...
            raise ValueError(f"{name} could not judge: {type(exc).__name__}: {exc}") from exc
        if getattr(result, "invalid_result", False):
            raise ValueError(f"{name} gave no verdict: {result.invalid_reason or result.feedback}")
        if use == "score":
            if result.score is None:
                raise ValueError(f"{name} gave no score (feedback: {result.feedback!r})")
            return float(result.score) / scale
        if result.passing is None:
            raise ValueError(f"{name} gave no passing verdict (feedback: {result.feedback!r}); try use='score'")
        return 1.0 if result.passing else 0.0

    metric.__name__ = f"llamaindex_{name}"
    return metric


def _texts(values: Sequence[Any] | None) -> list[str]:
    return [getattr(v, "text", v) if not isinstance(v, str) else v for v in values or ()]


__all__ = ["evaluator_metric", "from_llamaindex_dataset"]
