"""BootstrapFinetune's teacher on the embedded SmolLM2 and real SST-2 rows: the teacher (a program with
demos) is scored on the valset rows the fine-tuned program is, its score in the report is its real
accuracy there, and the warning naming BetterTogether fires exactly when the report says the teacher
beats the weights beyond noise. The trainer trains nothing (it hands back the base model), so this
runs in about a minute with ``LMBRIDGE_LOCAL_THREADS=1``.
"""

from __future__ import annotations

import warnings

import pytest
from test_finetune_optimizer_real import SameModel, Sentiment, metric

import lmbridge
from examples.data import load_classification

pytestmark = pytest.mark.real_model


def test_the_teacher_is_scored_on_the_valset_rows_and_the_warning_matches_the_report() -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=16)
    try:
        train = load_classification("sst2", "train", 8)
        val = load_classification("sst2", "dev", 30)
    except FileNotFoundError:
        pytest.skip("the SST-2 dataset is not available (set LMBRIDGE_DATASETS)")
    demos = load_classification("sst2", "train", 40)[8:]
    teacher = lmbridge.LabeledFewShot(k=4, balanced=True, display_progress=False).compile(
        lmbridge.Predict(Sentiment, lm=lm), trainset=demos)
    student = lmbridge.Predict(Sentiment, lm=lm)
    optimizer = lmbridge.BootstrapFinetune(metric, trainer=SameModel(), num_threads=1, display_progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = optimizer.compile(student, trainset=train, valset=val, teacher=teacher)
    report = compiled.report
    assert report is not None
    note = report["finetune"]["teacher"]
    assert note["rows"] == len(val) and note["same_as_student"] is False
    assert note["score"] == pytest.approx(lmbridge.Evaluate(devset=val, metric=metric, num_threads=1,
                                                            display_progress=False)(teacher).score, abs=0.01)
    assert note["fine_tuned_score"] == pytest.approx(report["selection"]["winner"], abs=0.01)
    warned = [w for w in caught if "BetterTogether" in str(w.message)]
    assert len(warned) == (1 if note["beats_fine_tuned"] else 0)
    assert teacher.demos and student.demos == []  # neither program was changed
