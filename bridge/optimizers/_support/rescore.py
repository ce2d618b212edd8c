"""MIPROv2's final choice, re-scored on every row it may use, so that it carries past the valset.

The search ranks candidates on the valset alone; on 30 rows its winner is often the one that was
lucky there (issue 26: SmolLM2 on TREC, 24 % for the search's pick against 38 % for the balanced
recipe on the test rows). After the search, the finalists (the best ``top`` candidates by valset
score, the seeded simple recipes and the student) are scored again on the train and valset rows
together, each candidate only on the rows that are not its own demos (a row shown as a demo would
score its answer key). The trainset rows are fresh to every candidate: the search never scored on
them. Then the paired rule of the selection picks: the best mean wins unless a cheaper candidate
(fewer demos, no calibration) is within noise of it on the rows both may use, and then the cheapest
of those wins. ``program.report["rescored"]`` holds the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lmbridge.optimizers._support.search_space import SearchSpace, StudyCheckpoint, key
from lmbridge.optimizers._support.selection import cost, paired_bootstrap, row_key, scores_on
from lmbridge.optimizers._support.state import ProgramState
from lmbridge.types import Example

if TYPE_CHECKING:
    from lmbridge.optimizers._base import CompileRun

RESCORE_TOP = 3
"""How many of the search's best candidates (by valset score) are re-scored, besides the seeded
recipes and the student."""


def finalists(store: StudyCheckpoint, space: SearchSpace, seeded: Sequence[Mapping[str, int]],
              top: int) -> list[tuple[dict[str, int], float]]:
    """The candidates to re-score with their valset scores: the ``top`` best by valset score (the
    earlier scored first among equals), then the seeded recipes and the student not among them."""
    fulls = sorted(((-float(v["score"]), float(v["at"]), name.removeprefix("full:"))
                    for name, v in store.refresh().items() if name.startswith("full:") and isinstance(v, dict)))
    scores = {k: -s for s, _, k in fulls}
    picked = [k for _, _, k in fulls[:top]]
    for choice in [*seeded, space.default()]:
        k = key(choice)
        if k in scores and k not in picked:
            picked.append(k)
    out: list[tuple[dict[str, int], float]] = []
    for k in picked:
        choice = {d: int(v) for d, v in json.loads(k).items()}
        out.append((choice, scores[k]))
    return out


def shown_as_demo(row: Example, state: ProgramState) -> bool:
    """Whether ``row`` is a demo of some predictor of ``state``: a demo whose input fields that the
    row also has hold the row's values (a RAG answer's demo has a context the row lacks)."""
    values = row.to_dict()
    for s in state.values():
        inputs = list(s.signature.input_fields)
        for demo in s.demos:
            shown = demo.to_dict()
            common = [k for k in inputs if k in values and k in shown]
            if common and all(values[k] == shown[k] for k in common):
                return True
    return False


def rescore(run: CompileRun, space: SearchSpace, choices: Sequence[tuple[dict[str, int], float]],
            train: Sequence[Example], val: Sequence[Example], metric: Any, *, confidence: float = 0.9) -> None:
    """Re-score ``choices`` on the train and valset rows, pick by the paired rule, and set
    ``run.best_state`` to the pick. Records ``run.notes["rescored"]``."""
    if len(choices) < 2:
        return
    run.notes["rescored"] = {"reason": "stopped before the re-scoring finished: the search's winner is kept"}
    seen = {row_key(e) for e in val}
    extra = [e for e in train if row_key(e) not in seen]
    rows = [*val, *extra]
    table = []
    for choice, valset_score in choices:
        state = space.state(choice)
        held = [e for e in rows if not shown_as_demo(e, state)]
        unseen = [e for e in extra if not shown_as_demo(e, state)]
        by_row = dict(zip((row_key(e) for e in val), scores_on(run, state, val, metric)))
        if unseen:
            by_row.update(zip((row_key(e) for e in unseen), scores_on(run, state, unseen, metric)))
        scores = {row_key(e): by_row[row_key(e)] for e in held}
        table.append((choice, state, valset_score, scores))
        run.step("re-scored")
    run.notes["rescored"] = _pick(run, space, table, confidence, len(val), len(extra))


def _pick(run: CompileRun, space: SearchSpace, table: list[tuple[dict[str, int], ProgramState, float,
                                                                     dict[str, float]]],
          confidence: float, val_rows: int, train_rows: int) -> dict[str, Any]:
    """The paired rule over the re-scored table: the best mean, or the cheapest candidate within
    noise of it on the rows both were scored on."""
    means = [100.0 * sum(s.values()) / len(s) if s else 0.0 for *_, s in table]
    best = max(range(len(table)), key=lambda i: (means[i], -i))
    entries, tied = [], []
    for i, (choice, state, valset_score, scores) in enumerate(table):
        common = [k for k in scores if k in table[best][3]]
        entry: dict[str, Any] = {"config": space.describe(choice), "valset_score": round(valset_score, 2),
                                 "score": round(means[i], 2), "rows": len(scores),
                                 "cost": dict(zip(("demos", "calibrated"), cost(state)))}
        if i != best and common:
            diff, low, high = paired_bootstrap([scores[k] for k in common], [table[best][3][k] for k in common],
                                               confidence=confidence, seed=run.optimizer.seed)
            entry["best_lead"] = {"difference": round(diff, 2), "interval": [round(low, 2), round(high, 2)],
                                  "rows": len(common)}
            if low <= 0:
                tied.append(i)
        entries.append(entry)
    tied.append(best)
    kept = min(tied, key=lambda i: (cost(table[i][1]), -means[i], i))
    for i, entry in enumerate(entries):
        entry["kept"] = i == kept
    run.best_state, run.best_score = table[kept][1], table[kept][2]
    if kept == best:
        reason = (f"the best mean over the re-scored rows ({means[best]:.1f}); no cheaper candidate is within "
                  "noise of it")
    else:
        reason = (f"within noise of the best mean ({means[kept]:.1f} against {means[best]:.1f}) and cheaper: "
                  "the cheapest such candidate is kept")
    return {"valset_rows": val_rows, "trainset_rows": train_rows, "confidence": confidence,
            "candidates": entries, "kept": kept, "reason": reason}
