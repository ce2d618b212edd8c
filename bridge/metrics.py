"""Metrics: ``metric(example, prediction, trace=None) -> float | bool``.

``exact_match`` and ``f1`` compare one field after SQuAD-style normalisation (lower case, no
punctuation, no articles). When the example holds a list of gold answers (``answers``), the best
match counts. ``answer_passage_match`` asks whether a gold answer occurs in the retrieved passages.
``SemanticF1`` is judged by an LM: the recall and precision of the key ideas of a free-text
response against the gold one, and their F1 (the metric of DSPy's RAG tutorial, under its name).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lmbridge.errors import ParseError
from lmbridge.programs import ChainOfThought, Predict
from lmbridge.signatures import InputField, OutputField, Signature

Metric = Callable[..., Any]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    text = str(text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    p, g = normalize_text(prediction).split(), normalize_text(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _golds(example: Any, field: str) -> Sequence[Any]:
    plural = field + "s"
    if field in example:
        value = example[field]
        return value if isinstance(value, (list, tuple)) else [value]
    if plural in example:
        return list(example[plural])
    raise KeyError(f"the example has neither {field!r} nor {plural!r}")


def exact_match(field: str = "answer") -> Metric:
    """A metric: 1.0 when the predicted ``field`` equals a gold value after normalisation."""
    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        predicted = normalize_text(str(prediction[field]))
        return float(any(predicted == normalize_text(str(g)) for g in _golds(example, field)))
    metric.__name__ = f"exact_match_{field}"
    return metric


def f1(field: str = "answer") -> Metric:
    """A metric: the best token F1 between the predicted ``field`` and the gold value(s)."""
    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        return max(token_f1(str(prediction[field]), str(g)) for g in _golds(example, field))
    metric.__name__ = f"f1_{field}"
    return metric


answer_exact_match = exact_match("answer")
answer_f1 = f1("answer")


def answer_passage_match(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when a gold ``answer`` (or one of ``answers``) occurs, normalised, as whole words in one of
    the predicted passages (``prediction.context``, else ``prediction.passages``): did retrieval find it."""
    passages = next((prediction[k] for k in ("context", "passages") if k in prediction), None)
    if passages is None:
        raise KeyError("the prediction has neither 'context' nor 'passages'")
    texts = [f" {normalize_text(str(p))} " for p in ([passages] if isinstance(passages, str) else passages)]
    golds = [normalize_text(str(g)) for g in _golds(example, "answer")]
    return float(any(g and f" {g} " in t for g in golds for t in texts))


class SemanticRecallPrecision(Signature):
    """Judge a system's response against the ground-truth response to the question. Recall: the
    share of the ground truth's key ideas that the system response states. Precision: the share of
    the system response's key ideas that the ground truth supports."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    recall: float = OutputField(desc="a number from 0.0 to 1.0")
    precision: float = OutputField(desc="a number from 0.0 to 1.0")


class DecompositionalSemanticRecallPrecision(Signature):
    """Judge a system's response against the ground-truth response to the question: list the key
    ideas of each, mark which of them the other response states, then give recall (the share of the
    ground truth's ideas the system states) and precision (the share of the system's ideas the
    ground truth supports)."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField(desc="the key ideas of the ground truth, numbered")
    system_response_key_ideas: str = OutputField(desc="the key ideas of the system response, numbered")
    discussion: str = OutputField(desc="which ideas of each response the other one states")
    recall: float = OutputField(desc="a number from 0.0 to 1.0")
    precision: float = OutputField(desc="a number from 0.0 to 1.0")


class SemanticF1:
    """An LM-judged metric: the F1 of the recall and precision of a response's key ideas.

    ``SemanticF1()(example, prediction)`` asks the judge (``lm``, else the configured LM) to compare
    ``prediction.response`` with ``example.response`` for ``example.question`` (``question=``,
    ``gold=`` and ``answer=`` rename the fields) and returns the F1 (0 to 1). With a ``trace``
    (during a compile), it returns whether the F1 reaches ``threshold``. ``decompositional=True``
    has the judge list the key ideas of both responses first. A judge reply without two numbers
    from 0 to 1 is a ``ParseError``: Evaluate and the optimizers count the example as failed, never
    as a score.
    """

    def __init__(self, threshold: float = 0.66, decompositional: bool = False, *, lm: Any = None,
                 question: str = "question", gold: str = "response", answer: str | None = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
        self.threshold = threshold
        self.fields = (question, gold, answer or gold)
        signature = DecompositionalSemanticRecallPrecision if decompositional else SemanticRecallPrecision
        self.judge: Predict | ChainOfThought = Predict(signature, lm=lm) if decompositional else \
            ChainOfThought(signature, lm=lm)
        self.__name__ = "semantic_f1"

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float | bool:
        question, gold, answer = self.fields
        verdict = self.judge(question=str(example[question]), ground_truth=str(example[gold]),
                             system_response=str(prediction[answer]))
        recall, precision = _share(verdict.recall, "recall"), _share(verdict.precision, "precision")
        score = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
        return score if trace is None else score >= self.threshold


def _share(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ParseError(f"SemanticF1: the judge's {name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def macro_f1(golds: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Macro-averaged F1 over the classes (0-1): the mean of each gold class's F1, so that a rare
    class counts as much as a common one (the majority class alone scores low). A corpus-level
    score: pass the gold labels and the predicted labels of a whole run, in the same order. A
    prediction of None (unreadable) counts as wrong for its gold class."""
    if len(golds) != len(predictions):
        raise ValueError(f"macro_f1: {len(golds)} gold labels but {len(predictions)} predictions")
    classes = sorted({str(g) for g in golds})
    if not classes:
        return 0.0
    scores = []
    for c in classes:
        tp = sum(1 for g, p in zip(golds, predictions) if str(g) == c and p is not None and str(p) == c)
        fp = sum(1 for g, p in zip(golds, predictions) if str(g) != c and p is not None and str(p) == c)
        fn = sum(1 for g, p in zip(golds, predictions) if str(g) == c and (p is None or str(p) != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)
