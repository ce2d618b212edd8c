"""``lmbridge compile --workers N`` on one machine, with an SQLite study (no server needed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import sentiment_task, write_sentiment_rows, write_task

from lmbridge.cli._main import main

pytest.importorskip("optuna", reason="needs optuna: pip install 'lmbridge[optuna]'")

TASK = sentiment_task(0.05)


def test_compile_with_two_local_workers_on_an_sqlite_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    name = write_task(TASK, tmp_path, monkeypatch)
    write_sentiment_rows(tmp_path)
    code = main(["compile", f"{name}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", "exact_match:label", "--optimizer", "mipro", "--auto", "none",
                 "--num-candidates", "3", "--num-trials", "10", "--minibatch-size", "3", "--quiet",
                 "--lm-factory", f"{name}:lm", "--out", "m.json", "--checkpoint", "study.db", "--workers", "2"])
    assert code == 0, capsys.readouterr().err
    assert "warning: worker" not in capsys.readouterr().err, "the second worker failed"
    assert json.loads((tmp_path / "m.json").read_text())["report"]["optimizer"] == "MIPROv2"
    with sqlite3.connect(tmp_path / "study.db") as conn:
        rows = conn.execute("SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
                            "ON a.trial_id = t.trial_id WHERE t.state = 'COMPLETE' AND a.key = 'worker'").fetchall()
    assert len(rows) == 10 and len({n for n, _ in rows}) == 10
    assert 1 <= len({w for _, w in rows}) <= 2  # the child may start after the parent took every trial
