"""``auto_optimizer``: pick an optimizer and its budget from the data size and the LM's speed, and
say what was picked and why.

The rules, in order:

- fewer than 8 labeled training rows, or no valset: ``LabeledFewShot`` (no LM call to compile;
  class-balanced demos when the output is a label);
- otherwise the LM calls each candidate costs are projected from the valset size, and the time they
  take from ``seconds_per_call`` (measured by the caller, or 0.5 s for the embedded model and 2 s
  for an API model). If ``MIPROv2(auto="light")``'s estimate fits ``time_budget`` seconds it is
  chosen (it searches instructions, demos and prompt formats, the widest space, and makes its final
  choice on the train and valset rows together, not on the valset alone; the estimate counts that); else
  ``BootstrapFewShot`` (one pass over the trainset) when that fits; else ``LabeledFewShot``.

Every choice keeps the student unless it wins on the valset beyond noise (see ``selection``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmbridge.evaluate import Metric
from lmbridge.lm import LM, BaseLM
from lmbridge.optimizers._base import Optimizer
from lmbridge.optimizers._fewshot import BootstrapFewShot, LabeledFewShot
from lmbridge.optimizers._mipro import MIPROv2
from lmbridge.programs import Module, label_options
from lmbridge.settings import current
from lmbridge.types import Example

MIN_ROWS_TO_SEARCH = 8


def auto_optimizer(metric: Metric, student: Module, *, trainset: Sequence[Example],
                   valset: Sequence[Example] | None, lm: BaseLM | None = None,
                   seconds_per_call: float | None = None, time_budget: float = 900.0,
                   seed: int = 0) -> tuple[Optimizer, str]:
    """An optimizer for this data and LM, and one sentence saying what it is and why."""
    rows, val = list(trainset), list(valset or [])
    labels = all(label_options(p.signature) is not None for p in student.predictors())
    k = min(8, len(rows))
    if len(rows) < MIN_ROWS_TO_SEARCH or not val:
        why = (f"{len(rows)} training rows" if len(rows) < MIN_ROWS_TO_SEARCH else "no valset")
        return (LabeledFewShot(k=k, balanced=labels, metric=metric if val else None, seed=seed),
                f"LabeledFewShot(k={k}{', balanced' if labels else ''}): {why}, too little to search")
    speed = seconds_per_call if seconds_per_call is not None else _default_speed(lm)
    mipro = MIPROv2(metric, auto="light", seed=seed)
    calls = mipro.estimate(student, trainset=rows, valset=val).lm_calls
    if calls * speed <= time_budget:
        return mipro, (f"MIPROv2(auto='light'): about {calls} LM calls x {speed:.2f} s = {calls * speed / 60:.0f} min "
                       f"fits the {time_budget / 60:.0f} min budget")
    boot = BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=k, seed=seed, balanced=labels)
    boot_calls = boot.estimate(student, trainset=rows).lm_calls + 2 * len(val)
    if boot_calls * speed <= time_budget:
        return boot, (f"BootstrapFewShot(max_labeled_demos={k}): MIPROv2's {calls} calls would take "
                      f"{calls * speed / 60:.0f} min; this takes about {boot_calls} calls")
    return (LabeledFewShot(k=k, balanced=labels, metric=metric, seed=seed),
            f"LabeledFewShot(k={k}): even one bootstrap pass ({boot_calls} calls) exceeds the "
            f"{time_budget / 60:.0f} min budget at {speed:.2f} s per call")


def _default_speed(lm: Any) -> float:
    if lm is None:
        lm = current().lm
    inner = getattr(lm, "inner", lm)
    return 0.5 if isinstance(inner, LM) and inner.is_local else 2.0
