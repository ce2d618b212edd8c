"""The selection step of the compiles that return fine-tuned LMs (BootstrapFinetune, BetterTogether).

A program whose predictors hold fine-tuned LMs is not plain ``ProgramState``, so these optimizers run
the paired selection every optimizer ends with on the programs themselves: each program's per-row
valset scores (``valset_scores``), then the paired bootstrap (``judge``, or ``compare`` for both
steps). ``same_program`` tells a teacher that is the student from one that must be scored itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmbridge.errors import ConfigurationError
from lmbridge.evaluate import Metric
from lmbridge.lm import BaseLM
from lmbridge.optimizers._base import CompileRun
from lmbridge.optimizers._support.budget import BudgetExhausted, MeteredLM
from lmbridge.optimizers._support.selection import decide, small_valset_warning
from lmbridge.optimizers._support.state import snapshot
from lmbridge.programs import Module, Predict
from lmbridge.settings import current
from lmbridge.types import Example


class WeightsRun(CompileRun):
    """A compile whose result may hold fine-tuned LMs, which a ``ProgramState`` cannot carry: the
    optimizer compares the programs themselves (``compare``) instead of the state-only selection."""

    def _select(self) -> None:
        return None


def _runs_on(predictor: Predict) -> BaseLM | None:
    lm = predictor.lm or current().lm
    while isinstance(lm, MeteredLM):
        lm = lm.inner
    return lm


def base_lm(predictor: Predict) -> BaseLM:
    """The LM ``predictor`` runs on, outside any compile's metering."""
    lm = _runs_on(predictor)
    if lm is None:
        raise ConfigurationError("no LM is configured: pass Predict(..., lm=...) or call "
                                 "lmbridge.configure(lm=lmbridge.LM('local/smollm2')) first")
    return lm


def row_scores(run: CompileRun, program: Module, rows: Sequence[Example], metric: Metric) -> list[float]:
    """``program``'s per-row scores on ``rows``, its LMs metered against the run's budget (on a copy)."""
    return [o.score for o in run.evaluate(run.guard(program.deepcopy()), rows, metric)]


def valset_scores(run: CompileRun, metric: Metric | None, programs: Sequence[list[float] | Module],
                  valset: Sequence[Example] | None) -> list[list[float]] | str:
    """Each program's per-row scores on the valset (a list of scores given is kept as it is), or why
    they were not taken: selection is off, no metric, no valset, or the budget ran out (then
    ``run.stopped`` says so)."""
    val = list(valset or [])
    if not run.optimizer.select or metric is None or not val:
        return "selection is off" if not run.optimizer.select else "no metric" if metric is None else "no valset"
    try:
        return [p if isinstance(p, list) else row_scores(run, p, val, metric) for p in programs]
    except BudgetExhausted as exc:
        run.stopped = exc.reason
        return exc.reason


def judge(run: CompileRun, scored: list[list[float]] | str, valset: Sequence[Example] | None) -> bool:
    """Whether the winner's valset scores (``scored[1]``) beat the baseline's (``scored[0]``) beyond
    noise, by the paired bootstrap every optimizer's selection uses; ``scored`` is why there are no
    scores when it is text, and the winner is kept. Records ``run.notes["selection"]``."""
    if isinstance(scored, str):
        run.notes["selection"] = {"kept": "winner", "reason": f"not compared: {scored}"}
        return True
    warning = small_valset_warning(len(valset or []))
    decision = decide(scored[0], scored[1], seed=run.optimizer.seed)
    run.notes["selection"] = {**decision.to_dict(), **({"warning": warning} if warning else {})}
    run.baseline_score = decision.baseline
    run.best_score = decision.winner if decision.kept == "winner" else decision.baseline
    return decision.kept == "winner"


def compare(run: CompileRun, metric: Metric | None, baseline: list[float] | Module, winner: list[float] | Module,
            valset: Sequence[Example] | None) -> bool:
    """Whether ``winner`` beats ``baseline`` on the valset beyond noise (``valset_scores``, then
    ``judge``). Either side is a program or its per-row valset scores. True keeps the winner."""
    return judge(run, valset_scores(run, metric, [baseline, winner], valset), valset)


def same_program(a: Module, b: Module) -> bool:
    """Whether two programs have the same prompts and run on the same LMs (so they score the same)."""
    if snapshot(a) != snapshot(b):
        return False
    pairs = zip(sorted(a.named_predictors(), key=lambda n: n[0]), sorted(b.named_predictors(), key=lambda n: n[0]))
    return all(_runs_on(p) is _runs_on(q) for (_, p), (_, q) in pairs)
