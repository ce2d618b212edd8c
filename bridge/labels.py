"""Label scoring and contextual calibration, for a signature whose one output is a Literal, an Enum or
a bool.

With a format's ``scoring="labels"`` a Predict does not sample text: it asks the LM for the
log-probability of each option written as the whole answer (``BaseLM.score_options``), and picks the
most probable one. The options' probabilities are normalised to sum to 1.

``scoring="calibrated"`` adds contextual calibration (Zhao et al., ICML 2021, "Calibrate Before
Use"): the same prompt with content-free inputs ("N/A", "", "[MASK]") gives the model's prior over
the options, and each option's probability is divided by it before normalising. This corrects the
label bias of small models (always "positive", always "spam"). The prior is estimated once per
prompt (instructions, demos and format), memoised in the process and cached with the LM's cache.

A backend without log-probabilities raises ``LogprobsUnavailableError``; nothing is guessed.
"""

from __future__ import annotations

import enum
import math
import threading
import typing
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lmbridge.cache import cache_key
from lmbridge.formats import PromptFormat
from lmbridge.lm import BaseLM
from lmbridge.signature import Signature
from lmbridge.types import Usage
from lmbridge.values import render

CONTENT_FREE = ("N/A", "", "[MASK]")
"""The content-free inputs whose mean prediction is the model's prior over the options."""


@dataclass(frozen=True)
class LabelScores:
    """The options of the output field, their probabilities (summing to 1), and the pick."""

    field: str
    options: tuple[Any, ...]
    probabilities: tuple[float, ...]
    calibrated: bool
    usage: Usage

    @property
    def choice(self) -> Any:
        best = max(range(len(self.options)), key=lambda i: self.probabilities[i])
        return self.options[best]

    def as_dict(self) -> dict[str, float]:
        return {render(o): p for o, p in zip(self.options, self.probabilities)}


def label_options(signature: type[Signature]) -> tuple[str, tuple[Any, ...]] | None:
    """The output field and its options when label scoring applies (one output: Literal, Enum, bool)."""
    outputs = signature.output_fields
    if len(outputs) != 1:
        return None
    name, f = next(iter(outputs.items()))
    annotation = f.annotation
    if typing.get_origin(annotation) is Literal:
        return name, tuple(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return name, tuple(m.value for m in annotation)
    if annotation is bool:
        return name, (True, False)
    return None


def normalise(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


_priors: OrderedDict[str, list[float]] = OrderedDict()
_priors_lock = threading.Lock()


def score_labels(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
                 inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                 calibrate: bool | None = None) -> LabelScores | None:
    """Score the options of ``signature``'s output for ``inputs``; None when label scoring does not
    apply to the signature. ``calibrate`` defaults to the format's ``scoring == "calibrated"``."""
    found = label_options(signature)
    if found is None:
        return None
    name, options = found
    texts = [render(o.value if isinstance(o, enum.Enum) else o) for o in options]
    request = dict(params or {})
    scores = lm.score_options(fmt.format(signature, demos, inputs), texts, request)
    probabilities = normalise(scores.logprobs)
    usage = scores.usage
    calibrate = fmt.scoring == "calibrated" if calibrate is None else calibrate
    if calibrate:
        prior, prior_usage = _prior(lm, fmt, signature, demos, texts, request)
        usage = usage + prior_usage
        probabilities = normalise([math.log(max(p, 1e-300)) - math.log(max(q, 1e-300))
                                   for p, q in zip(probabilities, prior)])
    return LabelScores(name, options, tuple(probabilities), calibrate, usage)


def _prior(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
           texts: list[str], params: dict[str, Any]) -> tuple[list[float], Usage]:
    """The mean option probabilities over the content-free inputs, once per prompt."""
    probe = fmt.format(signature, demos, {n: CONTENT_FREE[0] for n in signature.input_fields})
    key = cache_key(lm.model, probe, {"prior": texts, **params})
    with _priors_lock:
        known = _priors.get(key)
    if known is not None:
        return known, Usage()
    usage = Usage()
    total = [0.0] * len(texts)
    for blank in CONTENT_FREE:
        messages = fmt.format(signature, demos, {n: blank for n in signature.input_fields})
        scores = lm.score_options(messages, texts, params)
        usage = usage + scores.usage
        total = [t + p for t, p in zip(total, normalise(scores.logprobs))]
    prior = [t / len(CONTENT_FREE) for t in total]
    with _priors_lock:
        _priors[key] = prior
        while len(_priors) > 512:
            _priors.popitem(last=False)
    return prior, usage
