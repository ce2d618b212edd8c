"""The ``lmbridge`` command, run in-process on a scripted model: compile, evaluate, inspect."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bridge.cli import main

TASK = '''
import bridge
from bridge.testing import ScriptedLM

CALLS = []

def model(messages):
    CALLS.append(1)
    text = messages[-1]["content"].rsplit("Text:", 1)[-1]
    if len(messages) == 1:
        return {"label": "positive"}
    return {"label": "positive" if "good" in text else "negative"}

def lm():
    return ScriptedLM(model)

program = bridge.Predict("text -> label: Literal['negative', 'positive']")

def metric(example, prediction, trace=None):
    return example.label == prediction.label
'''


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"clitask_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    words = ["good", "bad"]
    for split, n in (("train", 8), ("dev", 6)):
        rows = [{"text": f"a {words[i % 2]} film {i}", "label": "positive" if i % 2 == 0 else "negative"}
                for i in range(n)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def test_compile_saves_a_program_with_its_report_and_prints_a_table(
        task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", f"{task}:metric", "--optimizer", "random-search", "--num-candidates", "1",
                 "--max-bootstrapped-demos", "2", "--max-labeled-demos", "2",
                 "--lm-factory", f"{task}:lm", "--out", "compiled.json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = json.loads((tmp_path / "compiled.json").read_text())
    report = saved["report"]
    assert report["optimizer"] == "BootstrapFewShotWithRandomSearch"
    assert report["baseline_score"] == 50.0 and report["best_score"] == 100.0
    assert "best score" in out.out and "100.0%" in out.out
    assert "estimate: at most" in out.err
    assert "[####" in out.err  # the progress bar


def test_compile_with_mipro_and_the_builtin_metric(task: str, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", "exact_match:label", "--optimizer", "mipro", "--auto", "none",
                 "--num-candidates", "3", "--num-trials", "4", "--minibatch-size", "3", "--quiet",
                 "--lm-factory", f"{task}:lm", "--out", "m.json", "--checkpoint", "study.db"])
    assert code == 0
    report = json.loads((tmp_path / "m.json").read_text())["report"]
    assert report["optimizer"] == "MIPROv2" and report["num_trials"] == 4
    assert (tmp_path / "study.db").exists()


def test_estimate_only_spends_nothing(task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--metric", f"{task}:metric",
                 "--optimizer", "bootstrap", "--lm-factory", f"{task}:lm", "--out", "x.json",
                 "--estimate-only"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["lm_calls"] == 8
    assert not (tmp_path / "x.json").exists()


def test_max_lm_calls_reaches_the_report(task: str, tmp_path: Path) -> None:
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--metric", f"{task}:metric",
                 "--optimizer", "bootstrap", "--lm-factory", f"{task}:lm", "--max-lm-calls", "3",
                 "--num-threads", "1", "--out", "b.json", "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "b.json").read_text())["report"]
    assert report["lm_calls"] == 3 and "max_lm_calls=3" in report["stopped_early"]


def test_evaluate_loads_a_compiled_program(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--metric", f"{task}:metric",
          "--optimizer", "labeled", "--k", "2", "--lm-factory", f"{task}:lm", "--out", "l.json", "--quiet"])
    capsys.readouterr()
    assert main(["evaluate", f"{task}:program", "--devset", "dev.jsonl", "--metric", f"{task}:metric",
                 "--lm-factory", f"{task}:lm", "--quiet"]) == 0
    assert "score      50.0%" in capsys.readouterr().out
    assert main(["evaluate", f"{task}:program", "--devset", "dev.jsonl", "--metric", f"{task}:metric",
                 "--lm-factory", f"{task}:lm", "--load", "l.json", "--quiet"]) == 0
    assert "score      100.0%" in capsys.readouterr().out


def test_inspect_renders_the_messages_without_running_a_model(task: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module = importlib.import_module(task)
    main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--metric", f"{task}:metric",
          "--optimizer", "labeled", "--k", "2", "--lm-factory", f"{task}:lm", "--out", "l.json", "--quiet"])
    capsys.readouterr()
    calls_before = len(module.CALLS)
    assert main(["inspect", "l.json"]) == 0
    out = capsys.readouterr().out
    assert len(module.CALLS) == calls_before
    assert "predictor self" in out and "2 demos" in out
    assert "[user]" in out and "[assistant]" in out
    assert "Text: {text}" in out  # the placeholder input
    assert "compile report" in out and "LabeledFewShot" in out
    # with the program's own code, the same messages
    assert main(["inspect", "l.json", "--program", f"{task}:program", "--no-report"]) == 0
    with_code = capsys.readouterr().out
    assert "Text: {text}" in with_code and "compile report" not in with_code


def test_mistakes_are_reported_without_a_traceback(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "nosuchmodule:program", "--trainset", "train.jsonl",
                 "--metric", "exact_match:label", "--out", "x.json"]) == 2
    assert "cannot import 'nosuchmodule'" in capsys.readouterr().err
    assert main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--input-fields", "question",
                 "--metric", "exact_match:label", "--out", "x.json"]) == 2
    assert "lacks the input field(s) ['question']" in capsys.readouterr().err
    assert main(["inspect", "missing.json"]) == 1
    assert "StateError" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["copro", "simba", "gepa", "bootstrap"])
def test_every_optimizer_runs_from_the_command_line(task: str, tmp_path: Path, optimizer: str) -> None:
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", f"{task}:metric", "--optimizer", optimizer, "--lm-factory", f"{task}:lm",
                 "--max-lm-calls", "120", "--quiet", "--out", f"{optimizer}.json"])
    assert code == 0
    report = json.loads((tmp_path / f"{optimizer}.json").read_text())["report"]
    assert 0 < report["lm_calls"] <= 120
