"""Calibration from real inputs: estimate a calibrated predictor's prior once, and store it.

A format with ``scoring="calibrated"`` divides each option's probability by the model's prior over
the options. ``calibrate(program, inputs)`` estimates that prior as the mean option probability over
up to 128 of ``inputs`` (batch calibration, Zhou et al., ICLR 2024; labels are not read), for each
calibrated predictor, with its own prompt (instructions, demos, layout) and LM, and stores it on the
predictor's format (``PromptFormat.prior``): it is saved with the program as JSON numbers, and
inference costs no extra call. The optimizers do the same with the trainset's inputs when they
compile a calibrated predictor (``store_priors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from lmbridge.errors import ConfigurationError
from lmbridge.programs._labels import POOL_SIZE, InputPool, calibrating, estimate_prior, label_options
from lmbridge.programs._module import Module
from lmbridge.programs._predict import DEFAULT_FORMAT, Predict
from lmbridge.settings import current

M = TypeVar("M", bound=Module)


def calibrate(program: M, inputs: Iterable[Mapping[str, Any]], *, size: int = POOL_SIZE, seed: int = 0) -> M:
    """A copy of ``program`` whose calibrated predictors carry a prior estimated from ``inputs``.

    ``inputs`` are unlabeled rows of the task (dicts or Examples; an Example marked with
    ``with_inputs`` gives only its inputs): up to ``size`` of them, drawn with ``seed``, are scored
    with each calibrated predictor's prompt. A predictor is calibrated when its format (its own, or
    the settings') has ``scoring="calibrated"`` and its one output is a Literal, an Enum or a bool.

    A prior that puts almost all its mass on one option is lifted to a floor (``MIN_SHARE`` of the
    uniform share), as in a compile; unlike a compile, few rows are not shrunk: they are the caller's choice.

    Raises ValueError when no predictor is calibrated, or when no row holds a calibrated predictor's
    inputs (calibrate an inner predictor with rows of its own inputs), and ConfigurationError when a
    predictor has no LM. The prior belongs to the prompt and model it was estimated with: after a
    change of instructions, demos or model it is not applied (with a warning) until estimated again.
    """
    rows = list(inputs)
    if not rows:
        raise ValueError("calibrate needs at least one input row")
    new: M = program.deepcopy()  # type: ignore[assignment]
    targets = calibrated_predictors(new)
    if not targets:
        raise ValueError(f"{type(program).__name__} has no predictor to calibrate: give the predictor a format with "
                         "scoring='calibrated' (e.g. ChatFormat(scoring='calibrated')) and one Literal, Enum or "
                         "bool output")
    with calibrating(rows, size=size, seed=seed, min_inputs=1) as pool:  # the caller chose the rows
        for name, p in targets:
            if not pool.fitting(p.signature)[0]:
                raise ValueError(f"predictor {name!r} reads {list(p.signature.input_fields)}, which no input row "
                                 f"holds; calibrate it on rows of its own inputs: "
                                 f"program.{name} = lmbridge.calibrate(program.{name}, rows)")
        store_priors(new, pool)
    return new


def calibrated_predictors(program: Module) -> list[tuple[str, Predict]]:
    """The predictors of ``program`` that score with calibration (by name)."""
    fallback = current().format or DEFAULT_FORMAT
    return [(name, p) for name, p in program.named_predictors()
            if (p.format or fallback).scoring == "calibrated" and label_options(p.signature) is not None]


def store_priors(program: Module, pool: InputPool) -> dict[str, Any]:
    """Estimate and store (in place) the prior of each calibrated predictor of ``program`` that has
    inputs in ``pool``; the others keep their format. Returns what was done, by predictor name, for
    a compile report."""
    done: dict[str, Any] = {}
    fallback = current().format or DEFAULT_FORMAT
    for name, p in calibrated_predictors(program):
        rows, digest = pool.fitting(p.signature)
        if not rows:
            done[name] = "no input rows hold its inputs: content-free prior"
            continue
        lm = p.lm or current().lm
        if lm is None:
            raise ConfigurationError(f"predictor {name!r} has no LM to calibrate with: pass Predict(..., lm=...) "
                                     "or call lmbridge.configure(lm=...) first")
        fmt = p.format or fallback
        params = {**fmt.endpoint_params(p.signature), **p.lm_params}
        prior, _, notes = estimate_prior(lm, fmt, p.signature, p.demos, params, rows, digest, pool)
        p.format = fmt.with_prior(prior)
        done[name] = {"inputs": prior.inputs, "prior": {k: round(v, 4) for k, v in prior.probabilities.items()}}
        if notes:
            done[name]["smoothed"] = notes
    return done


def with_priors(program: M, pool: InputPool) -> M:
    """An optimizer's last step: store the priors of ``program`` (a compiled copy, changed in place)
    and say so in its report under ``"calibration"``. Nothing happens without calibrated predictors."""
    done = store_priors(program, pool)
    if done and isinstance(program.report, dict):
        program.report["calibration"] = done
    return program
