"""``lmbridge compile --workers N`` on one machine, with an SQLite study (no server needed)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from lmbridge.cli._main import main

pytest.importorskip("optuna", reason="needs optuna: pip install 'lmbridge[optuna]'")

TASK = '''
import time
import lmbridge
from lmbridge.testing import ScriptedLM

def model(messages):
    time.sleep(0.05)
    text = messages[-1]["content"].rsplit("Text:", 1)[-1]
    if len(messages) == 1:
        return {"label": "positive"}
    return {"label": "positive" if "good" in text else "negative"}

def lm():
    return ScriptedLM(model)

program = lmbridge.Predict("text -> label: Literal['negative', 'positive']")
'''


def test_compile_with_two_local_workers_on_an_sqlite_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    name = f"clitask_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    words = ["good", "bad"]
    for split, n in (("train", 8), ("dev", 6)):
        rows = [{"text": f"a {words[i % 2]} film {i}", "label": "positive" if i % 2 == 0 else "negative"}
                for i in range(n)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
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
