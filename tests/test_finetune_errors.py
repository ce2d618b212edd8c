"""``FineTuningError`` is one of the documented exceptions: it lives in ``lmbridge.errors``, the root
exports it, ``lmbridge.finetune`` re-exports the same class, and ``except lmbridge.LMError`` catches it
when a provider's job fails."""

from __future__ import annotations

import pytest
from test_finetune_provider import BASE, EXAMPLES, KEY, FakeFineTuning, trainer

import lmbridge
import lmbridge.errors
import lmbridge.finetune


def test_fine_tuning_error_is_one_class_exported_from_the_root_and_the_errors_module() -> None:
    assert lmbridge.FineTuningError is lmbridge.finetune.FineTuningError
    assert lmbridge.FineTuningError is lmbridge.errors.FineTuningError
    assert "FineTuningError" in lmbridge.errors.__all__
    assert issubclass(lmbridge.FineTuningError, lmbridge.LMError)


def test_except_lm_error_catches_a_failed_provider_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    reason = "Training file has 2 examples; at least 10 are required"
    caught: lmbridge.LMError | None = None
    with FakeFineTuning(["failed"], reason=reason) as server:
        try:
            trainer(server).train(BASE, EXAMPLES)
        except lmbridge.LMError as exc:  # what a user writes around any model work
            caught = exc
    assert isinstance(caught, lmbridge.FineTuningError)
    assert reason in str(caught) and caught.status == "failed" and caught.job_id == "ftjob-1"
