"""Metrics: ``metric(example, prediction, trace=None) -> float | bool``.

``exact_match`` and ``f1`` compare one field after SQuAD-style normalisation (lower case, no
punctuation, no articles). When the example holds a list of gold answers (``answers``), the best
match counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

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
