"""Label scoring and calibration, for a signature whose one output is a Literal, an Enum or a bool.

With a format's ``scoring="labels"`` a Predict does not sample text: it asks the LM for the
log-probability of each option written as the whole answer (``BaseLM.score_options``), and picks the
most probable one. The options' probabilities are normalised to sum to 1.

``scoring="calibrated"`` divides each option's probability by the model's prior over the options
(its label bias: always "positive", always "spam") and normalises again. The prior is the mean
option probability for the same prompt (instructions, demos, layout) over some inputs:

1. **real inputs** (batch calibration, Zhou et al., ICLR 2024): unlabeled inputs of the task.
   ``lmbridge.calibrate(program, inputs)`` estimates it, and an optimizer compiling a calibrated
   predictor estimates it from the trainset's inputs (``calibrating``); it is stored on the format
   (``PromptFormat.prior``), saved with the program, and costs no call at inference.
2. **content-free inputs** ("N/A", "", "[MASK]"; contextual calibration, Zhao et al., ICML 2021),
   the fallback when no prior was estimated for this prompt. On the embedded models this estimate
   can point the wrong way (docs/decoding.md has the numbers).

A stored prior is used only for the prompt it was estimated on (``prompt_fingerprint``). Priors are
memoised in the process, once per prompt and set of inputs. A backend without log-probabilities
raises ``LogprobsUnavailableError``; nothing is guessed.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import hashlib
import json
import math
import random
import threading
import typing
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lmbridge.formats import Prior, PromptFormat
from lmbridge.lm import BaseLM
from lmbridge.signatures import Signature, render, render_input
from lmbridge.types import Example, Usage

CONTENT_FREE = ("N/A", "", "[MASK]")
"""The content-free inputs whose mean prediction is the fallback prior over the options."""
POOL_SIZE = 128
"""How many real inputs a prior is estimated from, at most (drawn with a seed). Chosen on SST-2
training rows: over 200 draws, the prior of the embedded models moves by a standard deviation of
up to 0.029 with 32 inputs, 0.020 with 64 and 0.011 with 128 (docs/decoding.md)."""
MIN_SHARE = 0.1
"""No option's prior may fall below this fraction of the uniform share (1/k for k options). A prior
such as P(first class) = 0.99999 would divide the other options' probabilities by about 1e-5, so
every answer becomes one of them whatever the input says: it is mixed with the uniform prior just
enough to lift the smallest option to the floor, and the report says so (``steady_prior``)."""
MIN_INPUTS = 5
"""Fewer distinct inputs than this cannot be trusted to show the model's bias (one odd input moves the
mean by a fifth or more): in a compile, such a prior is mixed with the uniform one in proportion
(``distinct / MIN_INPUTS``). ``lmbridge.calibrate`` uses the rows its caller chose, with a warning."""
PriorSource = Literal["stored", "inputs", "content-free"]


@dataclass(frozen=True)
class LabelScores:
    """The options of the output field, their probabilities (summing to 1), and the pick."""

    field: str
    options: tuple[Any, ...]
    probabilities: tuple[float, ...]
    calibrated: bool
    usage: Usage
    prior: tuple[float, ...] = ()
    """The prior divided out, per option (empty when not calibrated)."""
    prior_source: PriorSource | None = None
    """Where the prior came from: the format's stored prior, real inputs being calibrated on
    (``calibrating``), or the content-free inputs."""

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


def option_texts(options: Sequence[Any]) -> list[str]:
    """The options as the model writes them (an Enum by its value, a bool as yes/no)."""
    return [render(o.value if isinstance(o, enum.Enum) else o) for o in options]


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Log-probabilities -> probabilities summing to 1."""
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def divide_prior(probabilities: Sequence[float], prior: Sequence[float]) -> list[float]:
    """Calibrated probabilities: each option's probability divided by its prior, normalised again."""
    return normalise([math.log(max(p, 1e-300)) - math.log(max(q, 1e-300)) for p, q in zip(probabilities, prior)])


def steady_prior(mean: Sequence[float], distinct: int, min_inputs: int = MIN_INPUTS) -> tuple[list[float], list[str]]:
    """The prior to divide out, from the mean option probabilities over ``distinct`` different inputs,
    and what was done to it. Too few distinct inputs (fewer than ``min_inputs``) shrink it towards
    uniform; an option below ``MIN_SHARE`` of its uniform share is lifted to that floor by mixing with
    the uniform prior. A sound prior comes back unchanged with no notes."""
    k = len(mean)
    uniform = 1.0 / k
    prior, notes = list(mean), []
    if distinct < min_inputs:
        weight = distinct / min_inputs
        prior = [weight * p + (1 - weight) * uniform for p in prior]
        notes.append(f"estimated from {distinct} distinct input(s), fewer than {min_inputs}: "
                     f"mixed with the uniform prior at weight {weight:.2f}")
    floor = MIN_SHARE * uniform
    low = min(prior)
    if low < floor:
        mix = (floor - low) / (uniform - low)  # the least mixing that lifts the smallest option to the floor
        notes.append(f"degenerate: one option had {low:.2g} of the mass (floor {floor:.3g}); mixed with the "
                     f"uniform prior at weight {mix:.3f}")
        prior = [(1 - mix) * p + mix * uniform for p in prior]
    return prior, notes


def prompt_fingerprint(lm: BaseLM, fmt: PromptFormat, signature: type[Signature],
                       demos: Sequence[Mapping[str, Any]], texts: Sequence[str]) -> str:
    """What a prior belongs to: the model, the prompt around the inputs (instructions, demos, layout,
    endpoint) and the options, as a short hash. It holds no model name or text in the clear."""
    probe = fmt.format(signature, demos, {n: "" for n in signature.input_fields})
    endpoint = fmt.endpoint_params(signature).get("endpoint")
    blob = json.dumps([lm.model, probe, list(texts), endpoint], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class InputPool:
    """Unlabeled inputs to estimate priors from; each predictor uses the rows holding its inputs."""

    rows: tuple[Mapping[str, Any], ...]
    size: int = POOL_SIZE
    seed: int = 0
    min_inputs: int = MIN_INPUTS
    """Fewer distinct inputs than this shrink a prior towards uniform (``steady_prior``)."""
    _fitting: dict[tuple[str, ...], tuple[tuple[dict[str, Any], ...], str]] = field(
        default_factory=dict, compare=False, repr=False)

    def fitting(self, signature: type[Signature]) -> tuple[tuple[dict[str, Any], ...], str]:
        """Up to ``size`` rows (a seeded draw) with the signature's inputs only, and their digest."""
        names = tuple(signature.input_fields)
        found = self._fitting.get(names)
        if found is None:
            usable = [{n: r[n] for n in names} for r in self.rows if all(n in r for n in names)]
            if len(usable) > self.size:
                usable = random.Random(self.seed).sample(usable, self.size)
            blob = json.dumps([[_written(n, r[n]) for n in names] for r in usable], ensure_ascii=False)
            found = self._fitting[names] = (tuple(usable), hashlib.sha256(blob.encode("utf-8")).hexdigest())
        return found

    def steady(self, mean: Sequence[float], rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[str]]:
        """``steady_prior`` of a mean over ``rows`` (some of this pool's rows), counting distinct inputs."""
        distinct = len({json.dumps([_written(n, v) for n, v in r.items()], ensure_ascii=False) for r in rows})
        return steady_prior(mean, distinct, self.min_inputs)


def _written(name: str, value: Any) -> str:
    try:
        return render_input(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"calibration input field {name!r} is a {type(value).__name__}, which cannot be written "
                         f"into a prompt ({exc})") from exc


_pool: contextvars.ContextVar[InputPool | None] = contextvars.ContextVar("lmbridge_calibration_pool", default=None)


def unlabeled(rows: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """The rows without their labels: an Example marked with ``with_inputs`` keeps only its inputs."""
    return tuple(r.inputs() if isinstance(r, Example) and r.input_keys is not None else r for r in rows)


@contextlib.contextmanager
def calibrating(rows: Iterable[Mapping[str, Any]], *, size: int = POOL_SIZE, seed: int = 0,
                min_inputs: int = MIN_INPUTS) -> Iterator[InputPool]:
    """Within the block, a calibrated format with no stored prior for its prompt takes its prior from
    ``rows`` (their inputs; labels unused) instead of the content-free inputs, made steady by
    ``steady_prior``. Optimizers compile inside it; ``lmbridge.calibrate`` uses it."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    pool = InputPool(unlabeled(rows), size, seed, min_inputs)
    token = _pool.set(pool)
    try:
        yield pool
    finally:
        _pool.reset(token)


_priors: OrderedDict[str, list[float]] = OrderedDict()
_priors_lock = threading.Lock()
_estimating: dict[str, threading.Lock] = {}


def score_labels(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
                 inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                 calibrate: bool | None = None) -> LabelScores | None:
    """Score the options of ``signature``'s output for ``inputs``; None when label scoring does not
    apply to the signature. ``calibrate`` defaults to the format's ``scoring == "calibrated"``."""
    found = label_options(signature)
    if found is None:
        return None
    name, options = found
    texts = option_texts(options)
    request = {**fmt.endpoint_params(signature), **(params or {})}  # TextFormat: the raw completion endpoint
    scores = lm.score_options(fmt.format(signature, demos, inputs), texts, request)
    probabilities = normalise(scores.logprobs)
    calibrate = fmt.scoring == "calibrated" if calibrate is None else calibrate
    if not calibrate:
        return LabelScores(name, options, tuple(probabilities), False, scores.usage)
    prior, source, prior_usage = find_prior(lm, fmt, signature, demos, texts, request)
    return LabelScores(name, options, tuple(divide_prior(probabilities, prior)), True, scores.usage + prior_usage,
                       tuple(prior), source)


def find_prior(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
               texts: list[str], params: dict[str, Any]) -> tuple[list[float], PriorSource, Usage]:
    """The prior to divide out: the format's stored prior when it was estimated for this prompt, else
    one from the inputs being calibrated on (``calibrating``), else the content-free one."""
    prompt = prompt_fingerprint(lm, fmt, signature, demos, texts)
    stored = fmt.prior
    if stored is not None and stored.prompt == prompt and set(stored.probabilities) == set(texts):
        return [stored.probabilities[t] for t in texts], "stored", Usage()
    pool = _pool.get()
    rows, digest = pool.fitting(signature) if pool is not None else ((), "")
    if pool is not None and rows:
        mean, usage = _memoised(f"inputs:{prompt}:{digest}",
                                lambda: _mean_prior(lm, fmt, signature, demos, texts, params, rows))
        return pool.steady(mean, rows)[0], "inputs", usage
    if stored is not None:
        warnings.warn(
            f"{signature.__name__}: the format's stored prior was estimated for another prompt or model "
            f"(fingerprint {stored.prompt}, this prompt {prompt}); using the content-free prior instead. "
            "Estimate it again with lmbridge.calibrate(program, inputs).", RuntimeWarning, stacklevel=3)
    blanks = tuple({n: blank for n in signature.input_fields} for blank in CONTENT_FREE)
    prior, usage = _memoised(f"content-free:{prompt}",
                             lambda: _mean_prior(lm, fmt, signature, demos, texts, params, blanks))
    return prior, "content-free", usage


def estimate_prior(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
                   params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], digest: str,
                   pool: InputPool | None = None) -> tuple[Prior, Usage, list[str]]:
    """The mean option probabilities over ``rows`` (inputs of ``signature``) as a ``Prior`` to store,
    made steady by ``pool``'s rule (``steady_prior``; with no pool, only the degenerate floor), and
    the notes saying what was done to it."""
    found = label_options(signature)
    if found is None:
        raise ValueError(f"{signature.__name__}: calibration needs one Literal, Enum or bool output")
    texts = option_texts(found[1])
    prompt = prompt_fingerprint(lm, fmt, signature, demos, texts)
    mean, usage = _memoised(f"inputs:{prompt}:{digest}",
                            lambda: _mean_prior(lm, fmt, signature, demos, texts, dict(params), rows))
    prior, notes = pool.steady(mean, rows) if pool is not None else steady_prior(mean, len(rows), 1)
    total = sum(prior)  # a Prior's values sum to 1 within 1e-6: renormalise the float error of the mixing
    return Prior({t: p / total for t, p in zip(texts, prior)}, len(rows), prompt), usage, notes


def _mean_prior(lm: BaseLM, fmt: PromptFormat, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
                texts: list[str], params: dict[str, Any],
                rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], Usage]:
    """The mean normalised option probabilities over ``rows`` (the prompt's inputs)."""
    usage = Usage()
    total = [0.0] * len(texts)
    for row in rows:
        scores = lm.score_options(fmt.format(signature, demos, row), texts, params)
        usage = usage + scores.usage
        total = [t + p for t, p in zip(total, normalise(scores.logprobs))]
    mean = [t / len(rows) for t in total]
    norm = sum(mean)
    return [m / norm for m in mean], usage


def _memoised(key: str, estimate: typing.Callable[[], tuple[list[float], Usage]]) -> tuple[list[float], Usage]:
    """One estimate per key in the process: threads asking for the same prior wait for the first."""
    with _priors_lock:
        known = _priors.get(key)
        if known is not None:
            return known, Usage()
        lock = _estimating.setdefault(key, threading.Lock())
    with lock:
        with _priors_lock:
            known = _priors.get(key)
        if known is not None:
            return known, Usage()
        prior, usage = estimate()
        with _priors_lock:
            _priors[key] = prior
            _estimating.pop(key, None)
            while len(_priors) > 512:
                _priors.popitem(last=False)
    return prior, usage
