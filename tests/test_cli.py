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


# -- inspect on files that are broken or hostile -----------------------------------------------------

def _saved_program(tmp_path: Path) -> dict[str, object]:
    import bridge

    program = bridge.Predict("text -> label: Literal['negative', 'positive']",
                             demos=[{"text": "a good film", "label": "positive"}])
    program.save(tmp_path / "good.json")
    return json.loads((tmp_path / "good.json").read_text())  # type: ignore[no-any-return]


def _bad_files(tmp_path: Path) -> list[tuple[str, str]]:
    good = _saved_program(tmp_path)
    predictor = good["predictors"]["self"]  # type: ignore[index]

    def with_(**changes: object) -> str:
        return json.dumps({**good, **changes})

    def with_predictor(**changes: object) -> str:
        return json.dumps({**good, "predictors": {"self": {**predictor, **changes}}})  # type: ignore[dict-item]

    return [
        ("no format marker", json.dumps({k: v for k, v in good.items() if k != "format"})),
        ("another format", with_(format="something.else")),
        ("a newer version", with_(format_version=99)),
        ("a version that is text", with_(format_version="1")),
        ("predictors a list", with_(predictors=[1])),
        ("a predictor that is a string", with_(predictors={"self": "x"})),
        ("a field without kind", with_predictor(fields={"text": {}, "label": {"kind": "output"}})),
        ("fields a list", with_predictor(fields=["text"])),
        ("format a string", with_predictor(format="chat")),
        ("an unknown format", with_predictor(format={"name": "pickle"})),
        ("demos of numbers", with_predictor(demos=[1, 2])),
        ("a report that cannot be shown", with_(report={"trials": 5, "cost": "lots", "wall_time": "x"})),
        ("nested too deeply", "[" * 100_000 + "]" * 100_000),
        ("not UTF-8", '{"format": "\udcff"}'),
        ("a field name that is no identifier", with_predictor(fields={"not a name!": {"kind": "input"},
                                                                       "label": {"kind": "output"}})),
        ("a type that is no type", with_predictor(fields={"text": {"kind": "input", "type": "list[[[["},
                                                          "label": {"kind": "output"}})),
    ]


def test_inspect_reports_every_bad_file_without_a_traceback(task: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in _bad_files(tmp_path):
        path = tmp_path / "bad.json"
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
        try:
            code = main(["inspect", str(path)])
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{name}: {type(exc).__name__} escaped: {exc}")
        captured = capsys.readouterr()
        if name in ("a report that cannot be shown", "a field name that is no identifier", "a type that is no type"):
            assert code in (0, 1, 2), name  # may render (the checks let it through) but never crash
        else:
            assert code != 0, f"{name}: exit 0\n{captured.out}"
            assert captured.err.startswith("lmbridge: "), f"{name}: {captured.err!r}"
        assert "Traceback" not in captured.err + captured.out, name


def test_inspect_names_the_format_marker_and_the_version(task: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    good = _saved_program(tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({**good, "format": "not.lmbridge"}))
    assert main(["inspect", "other.json"]) == 1
    assert "not an lmbridge program file" in capsys.readouterr().err
    (tmp_path / "newer.json").write_text(json.dumps({**good, "format_version": 99}))
    assert main(["inspect", "newer.json"]) == 1
    assert "format version 99 is not supported" in capsys.readouterr().err


def test_inspect_escapes_terminal_control_characters_from_the_file(task: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = _saved_program(tmp_path)
    hostile = "\x1b[2J\x1b]0;pwned\x07Clear the screen\rover\u202eevil\x9b31m"
    good["predictors"]["self"]["instructions"] = hostile  # type: ignore[index]
    good["predictors"]["self"]["demos"][0]["text"] = "demo \x1b[31mred"  # type: ignore[index]
    good["program"] = "Prog\x1b[5m"
    (tmp_path / "hostile.json").write_text(json.dumps(good))
    assert main(["inspect", "hostile.json"]) == 0
    out = capsys.readouterr().out
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in out
    assert "\\x1b[2J\\x1b]0;pwned\\x07Clear the screen" in out and "over\\u202eevil\\x9b31m" in out
    assert "demo \\x1b[31mred" in out and "Prog\\x1b[5m" in out
    (tmp_path / "hostile.json").write_text(json.dumps({**good, "predictors": {"\x1b[31mp": 1}}))
    assert main(["inspect", "hostile.json"]) == 1
    assert "\x1b" not in capsys.readouterr().err


def test_inspect_into_a_closed_pipe_prints_no_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    good = _saved_program(tmp_path)
    good["predictors"]["self"]["instructions"] = "many words " * 50_000  # type: ignore[index]
    (tmp_path / "big.json").write_text(json.dumps(good))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(f"{sys.executable} -m bridge.cli inspect big.json | head -c 10", shell=True,
                          cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert len(proc.stdout) == 10
    assert b"Traceback" not in proc.stderr and b"BrokenPipeError" not in proc.stderr, proc.stderr.decode()
