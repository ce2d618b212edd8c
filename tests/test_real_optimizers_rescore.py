"""Issue 26 against a real embedded model: MIPROv2's finalists re-scored on the train and valset rows
with SmolLM2 on TREC, each never on its own demos, the pick made by the paired rule, the calls within
the estimate."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

import lmbridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import trec_signature

from examples.data import labels_of, load_classification

pytestmark = pytest.mark.real_model


def test_mipro_rescores_its_finalists_on_smollm2_trec(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    kinds = labels_of("trec")
    sig = trec_signature()
    rows = load_classification("trec", "train", 22)
    train, val = rows[:14], rows[14:]
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=lmbridge.lm._cache.Cache(tmp_path))
    student = lmbridge.Predict(sig, lm=lm)
    metric = lmbridge.metrics.exact_match("label")
    opt = lmbridge.MIPROv2(metric, auto=None, num_candidates=2, max_bootstrapped_demos=0, max_labeled_demos=2,
                           num_threads=1, display_progress=False, formats=[lmbridge.TextFormat()],
                           proposal_templates=False, search_labels=False, rescore_top=2)
    estimate = opt.estimate(student, trainset=train, valset=val, num_trials=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(student, trainset=train, valset=val, num_trials=2)
    report = program.report
    assert report is not None and report["lm_calls"] <= estimate.lm_calls
    table = report["rescored"]["candidates"]
    assert len(table) >= 2 and sum(e["kept"] for e in table) == 1
    for entry in table:  # every row of the train and valset, less the candidate's own demos
        assert entry["rows"] == len(train) + len(val) - entry["cost"]["demos"]
    kept = next(e for e in table if e["kept"])
    best = max(e["score"] for e in table)
    # the best mean, or a cheaper candidate whose gap to the best is within noise
    assert kept["score"] == best or (kept["best_lead"]["interval"][0] <= 0
                                     and kept["cost"]["demos"] <= min(e["cost"]["demos"] for e in table
                                                                      if e["score"] == best))
    assert program(text="Who wrote Hamlet?").label in kinds
