"""A budget shared by the workers of one study: the caps hold for all of them together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lmbridge.optimizers._support.budget import Budget, BudgetExhausted, StudyCounter

pytest.importorskip("sqlalchemy", reason="needs SQLAlchemy (installed with optuna): pip install 'lmbridge[optuna]'")


def spend(budget: Budget) -> int:
    taken = 0
    while True:
        try:
            budget.reserve()
        except BudgetExhausted:
            return taken
        taken += 1


def test_workers_sharing_a_counter_stop_together_at_the_study_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    budgets = [Budget(max_lm_calls=50) for _ in range(4)]
    for b in budgets:
        b.share(StudyCounter(url, "study-a"))  # each worker opens its own connection
    taken = [0] * 4

    def run(i: int) -> None:
        taken[i] = spend(budgets[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == 50, taken
    assert all("workers together" in (b.exhausted or "") for b in budgets)
    assert StudyCounter(url, "study-a").read() == (50, 0.0)
    assert StudyCounter(url, "study-b").read() == (0, 0.0), "each study has its own count"


def test_a_released_call_goes_back_to_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    budget = Budget(max_lm_calls=2)
    budget.share(StudyCounter(url, "s"))
    budget.reserve()
    budget.release()  # the request failed before reaching the model
    assert spend(budget) == 2


def test_the_study_cap_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = Budget(max_lm_calls=5)
    first.share(StudyCounter(url, "s"))
    assert spend(first) == 5
    again = Budget(max_lm_calls=8)  # resumed under a larger cap: only the difference is left
    again.share(StudyCounter(url, "s"))
    assert spend(again) == 3
