"""Selection that never makes a program worse.

At the end of every compile that has a metric and a valset, the unchanged student (the baseline)
and the compile's winner are scored on the same valset rows, and the winner is kept only when it
beats the baseline beyond the valset's noise: a paired bootstrap over the rows (the per-row score
differences are resampled ``resamples`` times with the compile's seed) must put the lower end of
its one-sided ``confidence`` interval above zero. Otherwise the compile returns the student
unchanged. ``program.report["selection"]`` states the baseline, the winner, the interval and the
decision; a valset too small to tell candidates apart is warned about with the numbers.

**The tie rule.** Before that comparison, the winner is set against every simpler candidate the
compile scored on the same rows (fewer demos, no calibration: ``cost``), and against its own
uncalibrated twin when it is calibrated. When the paired interval of winner - simpler includes 0,
the winner's lead is noise and the simplest such candidate (then the best scoring) takes its place;
``report["selection"]["simpler"]`` says which and why. A calibrated candidate is therefore kept only
when it beats the same candidate uncalibrated beyond noise. After MIPROv2's re-scoring
(``rescore.py``), which applied this rule to its finalists on the train and valset rows, only the
uncalibrated twin is weighed here: the valset alone must not undo a choice made on more rows.

``stratified_sample`` draws a valset (or demos) with the classes of a label field in proportion,
or ``balanced=True`` in equal numbers.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lmbridge.formats import format_from_state
from lmbridge.optimizers._support.state import ProgramState, demos_to_json, describe_state, format_to_json, snapshot
from lmbridge.types import Example

if TYPE_CHECKING:
    from lmbridge.optimizers._base import CompileRun

SMALL_VALSET = 30
"""Below this many rows the report warns that differences of a few points are noise."""


@dataclass(frozen=True)
class Decision:
    """The comparison of the winner with the baseline on the same rows, and what was kept."""

    baseline: float
    winner: float
    difference: float
    interval: tuple[float, float]
    """The paired bootstrap interval of winner - baseline, in points (lower bound one-sided)."""
    confidence: float
    rows: int
    kept: str
    """"winner" or "student"."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = [round(x, 2) for x in self.interval]
        for k in ("baseline", "winner", "difference"):
            out[k] = round(out[k], 2)
        return out


def paired_bootstrap(baseline: Sequence[float], winner: Sequence[float], *, confidence: float = 0.9,
                     resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean difference winner - baseline (points, scores being 0-1 per row), and the lower and
    upper ends of its bootstrap interval at ``confidence`` (one-sided each)."""
    if len(baseline) != len(winner) or not baseline:
        raise ValueError("paired_bootstrap needs two equally long, non-empty score lists")
    diffs = [100.0 * (w - b) for b, w in zip(baseline, winner)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = int((1.0 - confidence) * resamples)
    return sum(diffs) / n, means[tail], means[resamples - 1 - tail]


def decide(baseline: Sequence[float], winner: Sequence[float], *, confidence: float = 0.9,
           seed: int = 0) -> Decision:
    """Keep the winner only when the lower end of the paired interval is above zero."""
    diff, low, high = paired_bootstrap(baseline, winner, confidence=confidence, seed=seed)
    base = 100.0 * sum(baseline) / len(baseline)
    win = 100.0 * sum(winner) / len(winner)
    if low > 0:
        kept = "winner"
        reason = f"the winner beats the student by {diff:+.1f} points, interval [{low:+.1f}, {high:+.1f}]"
    else:
        kept, reason = "student", (f"the winner's {diff:+.1f} points are within the valset's noise "
                                   f"(interval [{low:+.1f}, {high:+.1f}] includes 0): the student is kept")
    return Decision(base, win, diff, (low, high), confidence, len(baseline), kept, reason)


def small_valset_warning(rows: int) -> str | None:
    if rows >= SMALL_VALSET:
        return None
    return (f"the valset has {rows} rows: one row is {100 / rows:.1f} points, and a gain needs about "
            f"{300 / rows:.0f} points (3 rows more right than wrong) to be told from noise; "
            f"{SMALL_VALSET} rows or more are advised")


def select(run: CompileRun, metric: Any, *, confidence: float = 0.9) -> None:
    """Score the student and the winner on the valset; keep the student unless the winner is
    better beyond noise. Records ``run.notes["selection"]``."""
    val = run.valset or []
    base_state = snapshot(run.student)
    if not val or run.best_state == base_state:
        run.notes["selection"] = {"kept": "student" if run.best_state == base_state else "winner",
                                  "reason": "no valset to compare on" if not val else
                                  "the winner is the student"}
        return
    warning = small_valset_warning(len(val))
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=4)
    winner = scores_on(run, run.best_state, val, metric)
    rescored = run.notes.get("rescored")  # the tie rule already weighed the finalists on more rows than these
    others = not (isinstance(rescored, dict) and "candidates" in rescored)
    simpler = prefer_simpler(run, metric, val, winner, base_state, confidence=confidence, others=others)
    if simpler is not None and simpler["kept"] == "simpler":
        winner = simpler.pop("scores")
    baseline = scores_on(run, base_state, val, metric)
    decision = decide(baseline, winner, confidence=confidence, seed=run.optimizer.seed)
    note = {**decision.to_dict(), "winner_state": describe_state(run.best_state)}
    if simpler is not None:
        note["simpler"] = simpler
    if warning:
        note["warning"] = warning
    run.notes["selection"] = note
    if decision.kept == "student":
        run.best_state, run.best_score = base_state, decision.baseline
    if run.baseline_score is None:
        run.baseline_score = decision.baseline


def cost(state: ProgramState) -> tuple[int, int]:
    """What a candidate costs beyond the student's prompt: its demos (prompt tokens on every call) and
    its calibrated predictors (a prior to estimate and trust). Every candidate of one program makes the
    same LM calls per prediction (a stored prior costs none), so calls do not tell them apart."""
    demos = sum(len(s.demos) for s in state.values())
    calibrated = sum(1 for s in state.values() if s.format is not None and s.format.scoring == "calibrated")
    return demos, calibrated


def simpler_than(a: ProgramState, b: ProgramState) -> bool:
    """``a`` costs no more than ``b`` in every respect and less in one."""
    ca, cb = cost(a), cost(b)
    return ca != cb and all(x <= y for x, y in zip(ca, cb))


def uncalibrated(state: ProgramState) -> ProgramState | None:
    """The same candidate scoring its labels without calibration; None when nothing is calibrated."""
    out, changed = dict(state), False
    for name, s in state.items():
        if s.format is not None and s.format.scoring == "calibrated":
            shape = {k: v for k, v in s.format.to_state().items() if k != "prior"}
            out[name] = s.with_format(format_from_state({**shape, "scoring": "labels"}))
            changed = True
    return out if changed else None


def prefer_simpler(run: CompileRun, metric: Any, val: Sequence[Example], winner: list[float],
                   student: ProgramState, *, confidence: float = 0.9, others: bool = True) -> dict[str, Any] | None:
    """The tie rule: replace ``run.best_state`` by the simplest candidate whose gap to it is within
    noise. Candidates are those the compile scored on all of ``val`` (the student aside: the
    never-worse comparison handles it; all of them left out when ``others`` is False, as after
    MIPROv2's re-scoring on more rows) and the winner's uncalibrated twin (scored here). Returns the
    report entry (with the kept scores under ``"scores"``), or None when there is nothing simpler."""
    best = run.best_state
    options = [s for s in run.scored_states(val) if others and s != student and simpler_than(s, best)]
    twin = uncalibrated(best)
    if twin is not None and twin not in options:
        options.append(twin)
    if not options:
        return None
    tied = []
    for state in options:
        scores = scores_on(run, state, val, metric)
        diff, low, high = paired_bootstrap(scores, winner, confidence=confidence, seed=run.optimizer.seed)
        if low <= 0:
            tied.append((cost(state), -sum(scores), state, scores, diff, (low, high)))
    if not tied:
        return {"kept": "winner", "reason": f"the winner beats each of {len(options)} simpler candidate(s) "
                                            f"beyond noise (the uncalibrated twin among them: {twin is not None})"}
    tied.sort(key=lambda t: (t[0], t[1]))
    cheap, _, state, scores, diff, (low, high) = tied[0]
    entry = {"kept": "simpler", "scores": scores, "cost": {"demos": cheap[0], "calibrated": cheap[1]},
             "winner_cost": dict(zip(("demos", "calibrated"), cost(best))),
             "reason": f"the winner's lead of {diff:+.1f} points over a simpler candidate is within noise "
                       f"(interval [{low:+.1f}, {high:+.1f}] includes 0): the simpler one is kept",
             "replaced": describe_state(best)}
    run.best_state, run.best_score = state, 100.0 * sum(scores) / len(scores)
    return entry


def state_key(state: ProgramState) -> str:
    """A stable key for a candidate: its instructions, demos, formats, field labels and module settings
    (the labels only when one was changed and the settings only when a module has some, so the keys of
    earlier checkpoints still hold)."""
    shown = {name: [s.signature.instructions, demos_to_json(s.demos), format_to_json(s.format)]
             + ([s.labels()] if any(f.prefix for f in s.signature.fields().values()) else [])
             + ([dict(s.settings)] if s.settings else [])  # a RAG module's k, retriever, rewrite
             for name, s in state.items()}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:24]


def row_key(example: Example) -> str:
    return hashlib.sha256(json.dumps(example.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:24]


def selection_key(state: str, val: Sequence[Example]) -> str:
    """The checkpoint key under which the per-row valset scores of a candidate are kept."""
    blob = json.dumps([state, [row_key(e) for e in val]])
    return "selection:" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def scores_on(run: CompileRun, state: ProgramState, val: Sequence[Example], metric: Any) -> list[float]:
    """Per-row scores of ``state`` on ``val`` (the valset, or other rows); kept in the compile's
    checkpoint when it has one, so a resumed compile does not run them again."""
    store = run.store
    key = selection_key(state_key(state), val)
    saved = store.get(key) if store is not None else None
    if isinstance(saved, list):
        return [float(x) for x in saved]
    known = run.row_scores(state, val)  # the compile may have scored this candidate on these rows
    scores = known if known is not None else [o.score for o in run.evaluate(run.candidate(state), val, metric)]
    if store is not None:
        store.put(key, scores)
    return scores


def stratified_sample(examples: Sequence[Example], field: str, n: int, rng: random.Random, *,
                      balanced: bool = False) -> list[Example]:
    """``n`` examples with the classes of ``field`` in proportion (or, ``balanced``, in equal
    numbers as far as each class allows), in a seeded order. Rows without the field come last."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[str(e.get(field))].append(e)
    for rows in groups.values():
        rng.shuffle(rows)
    n = min(n, len(examples))
    keys = sorted(groups)
    if balanced:
        counts = dict.fromkeys(keys, 0)
        left = n
        while left > 0:
            open_keys = [k for k in keys if counts[k] < len(groups[k])]
            if not open_keys:
                break
            for k in open_keys:
                if left == 0:
                    break
                counts[k] += 1
                left -= 1
    else:
        exact = {k: n * len(groups[k]) / len(examples) for k in keys}
        counts = {k: int(v) for k, v in exact.items()}
        for k in sorted(keys, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
            counts[k] += 1
    picked = [e for k in keys for e in groups[k][:counts[k]]]
    rng.shuffle(picked)
    return picked
