"""The ``lmbridge`` command, run in-process on a scripted model: compile, evaluate, inspect."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import uuid
from pathlib import Path

import pytest
from helpers import sentiment_task, write_sentiment_rows, write_task

import lmbridge
from lmbridge.cli._main import OPTIMIZERS, main, parser

TASK = sentiment_task(count_calls=True)


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = write_task(TASK, tmp_path, monkeypatch)
    write_sentiment_rows(tmp_path)
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
    assert "BootstrapFewShotWithRandomSearch candidates: 4/4 best 100.0%" in out.err  # the progress display


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


@pytest.mark.parametrize(("content", "message"), [
    ('{"text": "a good film", "label": "positive"}\n\n{"text": oops}\n', "bad.jsonl:3: not JSON ("),
    ('{"text": "a good film", "label": "positive"}\n["a list"]\n', "bad.jsonl:2: a JSON object is needed, not a list"),
    ('\n{"label": "positive"}\n', "bad.jsonl:2: the row lacks the input field(s) ['text']"),
    ("\n\n", "bad.jsonl holds no rows"),
    (b"\xff\xfe not utf-8", "cannot read bad.jsonl"),
], ids=["not-json", "not-an-object", "no-input-field", "empty", "not-utf-8"])
def test_a_bad_data_file_is_a_usage_error_naming_the_line(task: str, tmp_path: Path, content: str | bytes,
                                                          message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["evaluate", f"{task}:program", "--devset", "bad.jsonl", "--metric", "exact_match:label",
                 "--lm-factory", f"{task}:lm", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("optimizer", ["copro", "simba", "gepa", "bootstrap", "labeled", "random-search", "mipro"])
def test_every_optimizer_runs_from_the_command_line(task: str, tmp_path: Path, optimizer: str) -> None:
    if optimizer == "mipro":
        pytest.importorskip("optuna")
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", f"{task}:metric", "--optimizer", optimizer, "--lm-factory", f"{task}:lm",
                 "--max-lm-calls", "120", "--quiet", "--out", f"{optimizer}.json"])
    assert code == 0
    report = json.loads((tmp_path / f"{optimizer}.json").read_text())["report"]
    assert report["lm_calls"] <= 120 and (report["lm_calls"] > 0 or optimizer == "labeled")


# -- a complete CLI ---------------------------------------------------------------------------------

def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.dest not in ("help", "command")]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lmbridge {lmbridge.__version__}"


@pytest.mark.parametrize("command", [None, "compile", "evaluate"])
def test_every_option_has_help_and_the_data_format_is_explained(command: str | None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = parser()
    sub = root if command is None else next(
        a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    assert all(a.help for a in _options(sub)), [a.dest for a in _options(sub) if not a.help]
    with pytest.raises(SystemExit):
        main(["--help"] if command is None else [command, "--help"])
    text = capsys.readouterr().out
    assert "JSONL: one JSON object per line" in text and "exit status" in text


def test_only_optimizers_that_work_from_the_command_line_are_offered(capsys: pytest.CaptureFixture[str]) -> None:
    import lmbridge.optimizers as opt

    offered = set(OPTIMIZERS)
    assert "knn" not in offered and "ensemble" not in offered
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    text = capsys.readouterr().out
    assert "KNNFewShot and Ensemble are" in text and "Python only" in text
    names = {"labeled": opt.LabeledFewShot, "bootstrap": opt.BootstrapFewShot,
             "random-search": opt.BootstrapFewShotWithRandomSearch, "mipro": opt.MIPROv2, "copro": opt.COPRO,
             "simba": opt.SIMBA, "gepa": opt.GEPA, "finetune": opt.BootstrapFinetune,
             "better-together": opt.BetterTogether}
    assert set(names) == offered
    python_only = {opt.KNNFewShot, opt.Ensemble}
    every = {getattr(opt, n) for n in opt.__all__ if isinstance(getattr(opt, n), type)
             and (issubclass(getattr(opt, n), opt.Optimizer) or n == "Ensemble")} - {opt.Optimizer}
    assert every == set(names.values()) | python_only  # no optimizer forgotten by the command


def test_counts_agree_between_progress_table_and_report(task: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", "exact_match:label", "--optimizer", "mipro", "--auto", "none",
                 "--num-candidates", "3", "--num-trials", "5", "--minibatch-size", "3",
                 "--lm-factory", f"{task}:lm", "--out", "m.json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads((tmp_path / "m.json").read_text())["report"]
    progress = [line for line in out.err.splitlines() if line.startswith("MIPROv2 evaluations:")]
    done, planned = progress[-1].split(": ", 1)[1].split()[0].split("/")
    assert report["progress"] == {"unit": "evaluations", "done": int(done), "planned": int(planned)}
    table = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.out.splitlines())
    assert table["progress"] == f"{done} of {planned} evaluations"
    fulls = sum(1 for t in report["trials"] if t["kind"] == "full_evaluation")
    assert table["trials"] == f"5 (+ {fulls} full evaluations)"
    assert report["num_trials"] == 5
    rescored = len(report["rescored"]["candidates"])  # MIPROv2's finalists, re-scored on the train rows too
    assert int(done) == 5 + fulls + rescored  # each trial, full evaluation and re-scoring is one step


def test_saved_artifacts_hold_no_host_name_or_pid(task: str, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    code = main(["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
                 "--metric", "exact_match:label", "--optimizer", "mipro", "--auto", "none",
                 "--num-candidates", "3", "--num-trials", "3", "--minibatch-size", "3", "--quiet",
                 "--lm-factory", f"{task}:lm", "--out", "m.json", "--checkpoint", "study.db"])
    assert code == 0
    text = (tmp_path / "m.json").read_text()
    assert socket.gethostname() not in text
    assert f":{os.getpid()}" not in text and str(os.getpid()) not in text
    workers = {t.get("worker") for t in json.loads(text)["report"]["trials"] if t["kind"] == "minibatch"}
    assert workers == {0}


CONFIGURED = TASK + """
lmbridge.configure(lm=ScriptedLM(model))
"""


def test_the_programs_own_lm_wins_unless_lm_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     task: str, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    name = f"configured_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(CONFIGURED)
    assert main(["evaluate", f"{name}:program", "--devset", "dev.jsonl", "--metric", f"{name}:metric",
                 "--quiet"]) == 0
    module = importlib.import_module(name)
    assert len(module.CALLS) == 6  # the LM its module configured answered every row
    assert "score      50.0%" in capsys.readouterr().out
    other = importlib.import_module(task)
    assert main(["evaluate", f"{name}:program", "--devset", "dev.jsonl", "--metric", f"{name}:metric",
                 "--lm-factory", f"{task}:lm", "--quiet"]) == 0
    assert len(module.CALLS) == 6 and len(other.CALLS) == 6  # --lm-factory (like --lm) wins


BROKEN_METRIC = TASK + """
def metric_with_typo(example, prediction, trace=None):
    return example.labell == prediction.label
"""

AUTH = TASK + """
def refused():
    return ScriptedLM(lambda m: lmbridge.AuthenticationError("Incorrect API key provided", status_code=401))
"""


@pytest.mark.parametrize(("source", "args", "says"), [
    (BROKEN_METRIC, ["--metric", "{m}:metric_with_typo", "--lm-factory", "{m}:lm"], "reads a field"),
    (AUTH, ["--metric", "{m}:metric", "--lm-factory", "{m}:refused"], "API key"),
    (TASK, ["--metric", "{m}:metric", "--lm", "nosuchprovider/some-model"], "provider prefix"),
], ids=["metric-reads-a-missing-field", "credentials-refused", "unknown-provider"])
@pytest.mark.parametrize("command", ["evaluate", "compile"])
def test_a_run_that_cannot_work_exits_non_zero_with_the_reason(
        tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str], source: str, args: list[str],
        says: str, command: str) -> None:
    if "nosuchprovider" in " ".join(args):
        pytest.importorskip("litellm")
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(source)
    data = ["--devset", "dev.jsonl"] if command == "evaluate" else [
        "--trainset", "train.jsonl", "--optimizer", "bootstrap", "--out", "x.json"]
    code = main([command, f"{name}:program", *data, *[a.format(m=name) for a in args], "--quiet"])
    out = capsys.readouterr()
    assert code == 1
    assert says in out.err and "Traceback" not in out.err
    assert "0.0%" not in out.out
    assert not (tmp_path / "x.json").exists()


def test_every_example_failing_is_not_a_score(tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"unparsable_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK + "\ndef babble():\n    return ScriptedLM(lambda m: 'no idea')\n")
    code = main(["evaluate", f"{name}:program", "--devset", "dev.jsonl", "--metric", f"{name}:metric",
                 "--lm-factory", f"{name}:babble", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "every one of the 6 examples failed" in err and "ParseError" in err


# -- inspect on files that are broken or hostile -----------------------------------------------------

def _saved_program(tmp_path: Path) -> dict[str, object]:
    import lmbridge

    program = lmbridge.Predict("text -> label: Literal['negative', 'positive']",
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
    proc = subprocess.run(f"{sys.executable} -m lmbridge.cli inspect big.json | head -c 10", shell=True,
                          cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert len(proc.stdout) == 10
    assert b"Traceback" not in proc.stderr and b"BrokenPipeError" not in proc.stderr, proc.stderr.decode()


# -- issue 24: no score for a run with none; every request sent is counted; inspect agrees with load ------

SERVER_TASK = '''
import lmbridge

URL = ""

program = lmbridge.Predict("text -> label: Literal['negative', 'positive']")

def lm():
    return lmbridge.LM("openai/fake", api_base=URL, api_key="none", backoff=0.001, cache=False)

def metric(example, prediction, trace=None):
    return example.label == prediction.label
'''


def _server_task(tmp_path: Path, url: str) -> str:
    name = f"servertask_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SERVER_TASK.replace('URL = ""', f"URL = {url!r}"))
    return name


def test_evaluate_against_a_failing_server_prints_no_score_and_counts_every_request(
        task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("litellm")
    from fake_openai import FakeOpenAI, fail

    with FakeOpenAI([fail(500, "down")]) as server:
        name = _server_task(tmp_path, server.base_url)
        code = main(["evaluate", f"{name}:program", "--devset", "dev.jsonl", "--metric", f"{name}:metric",
                     "--lm-factory", f"{name}:lm", "--quiet"])
        sent = server.count
    out = capsys.readouterr()
    assert code == 1
    assert "score" not in out.out and "%" not in out.out  # was "score 0.0% (6 examples, 6 failed)"
    assert sent == 24  # 6 examples, each 1 request + 3 retries
    assert f"({sent} requests sent" in out.err and "6 failed" in out.err  # was "LM calls 0"
    assert "no score" in out.err


def test_evaluate_counts_failed_requests_next_to_completed_ones(
        task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("litellm")
    from fake_openai import FakeOpenAI, fail, ok

    # The first example's call fails (1 request + 3 retries); the other five are answered.
    with FakeOpenAI([fail(503, "busy")] * 4 + [ok("positive")]) as server:
        name = _server_task(tmp_path, server.base_url)
        code = main(["evaluate", f"{name}:program", "--devset", "dev.jsonl", "--metric", f"{name}:metric",
                     "--lm-factory", f"{name}:lm", "--quiet", "--num-threads", "1"])
        sent = server.count
    out = capsys.readouterr().out
    assert code == 0, out
    assert sent == 9, out
    assert "score      33.3%  (6 examples, 1 failed)" in out  # the failed one scores 0
    assert "LM calls   5 completed, 1 failed (9 requests sent; cache hits 0)" in out


def test_inspect_shows_every_file_that_load_accepts(task: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = _saved_program(tmp_path)
    reports = [{"trials": 5}, {"trials": [1, "x", {"kind": "full_evaluation"}]}, {"cost": "lots"},
               {"wall_time": "x", "best_score": "high", "baseline_score": [1]}]
    for report in reports:
        path = tmp_path / "r.json"
        path.write_text(json.dumps({**good, "report": report}))
        lmbridge.Predict("text -> label: Literal['negative', 'positive']").load(path)  # load accepts it
        assert main(["inspect", str(path)]) == 0, report  # was exit 2 for {"trials": 5}
        out = capsys.readouterr().out
        assert "compile report" in out and "trials" in out
    refused = tmp_path / "refused.json"  # a number no float holds: load refuses it, and so does inspect
    refused.write_text(json.dumps({**good, "report": {"cost": 10**400}}))
    with pytest.raises(lmbridge.StateError):
        lmbridge.Predict("text -> label: Literal['negative', 'positive']").load(refused)
    assert main(["inspect", str(refused)]) != 0
