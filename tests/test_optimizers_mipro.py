"""MIPROv2 with scripted models: the search finds what the scripted model rewards (instructions,
demos, prompt format), the seed, the budget cap, bad input, and a compile really killed with
SIGKILL that resumes without paying for finished trials again; two workers sharing one study."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from test_optimizers_support import SIG, last_text, metric, program_state, sentiment_rows, truth

import lmbridge
from lmbridge import MIPROv2
from lmbridge.testing import ScriptedLM

pytest.importorskip("optuna")
HERE = Path(__file__).resolve().parent


def is_proposer(messages: list[Any]) -> bool:
    first = str(messages[0]["content"])
    return "Write a better instruction" in first or "Look at these examples" in first


def instruction_model(messages: list[Any]) -> Any:
    """Right only when the instruction says "carefully", as the proposed instruction does."""
    if is_proposer(messages):
        return {"summary": "Reviews."} if "Look at these" in messages[0]["content"] else {
            "instruction": "Read the review carefully, then answer."}
    if "carefully" in messages[0]["content"]:
        return {"label": truth(last_text(messages))}
    return {"label": "positive"}


def system_model(messages: list[Any]) -> Any:
    """Right only when the instructions come as a system message."""
    if is_proposer(messages):
        return {"summary": "Reviews."} if "Look at these" in messages[0]["content"] else {
            "instruction": "Tell the sentiment of the review."}
    if messages[0]["role"] == "system":
        return {"label": truth(last_text(messages))}
    return {"label": "positive"}


def compile_zero_shot(model: Any, **options: Any) -> lmbridge.Module:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    opt = MIPROv2(metric, max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1,
                  **{k: v for k, v in options.items() if k in ("max_lm_calls", "formats", "seed")})
    compile_options = {k: v for k, v in options.items() if k in ("minibatch_size", "num_trials")}
    compile_options.setdefault("minibatch_size", 4)
    return opt.compile(student, trainset=sentiment_rows(6), valset=sentiment_rows(12, offset=6),
                       **compile_options)


def test_mipro_finds_the_instruction_the_model_needs_and_leaves_the_student_alone() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(instruction_model))
    opt = MIPROv2(metric, auto=None, num_candidates=3, max_bootstrapped_demos=0, max_labeled_demos=0,
                  num_threads=1, formats=[])
    compiled = opt.compile(student, trainset=sentiment_rows(6), valset=sentiment_rows(12, offset=6),
                           num_trials=8, minibatch_size=4)
    assert compiled.instructions == "Read the review carefully, then answer."
    assert "carefully" not in student.instructions
    report = compiled.report
    assert report is not None
    assert report["baseline_score"] == 50.0 and report["best_score"] == 100.0
    kinds = [t["kind"] for t in report["trials"]]
    assert kinds.count("minibatch") == report["num_trials"] == 8
    assert "full_evaluation" in kinds
    assert report["lm_calls"] > 0 and report["stopped_early"] is None
    assert "one row moves a score by 8.3 points" in report["warnings"][0]  # 12 valset rows


def test_mipro_searches_the_prompt_format_and_the_format_is_saved(tmp_path: Path) -> None:
    compiled = compile_zero_shot(system_model)
    assert isinstance(compiled, lmbridge.Predict)
    assert compiled.format is not None and compiled.format.to_state()["instructions"] == "system"
    compiled.save(tmp_path / "p.json")
    loaded = lmbridge.Predict(SIG).load(tmp_path / "p.json")
    assert loaded.format == compiled.format


def test_mipro_picks_a_demo_set_when_demos_are_what_helps() -> None:
    def needs_demos(messages: list[Any]) -> Any:
        if is_proposer(messages):
            return instruction_model(messages)
        return {"label": truth(last_text(messages)) if len(messages) > 1 else "positive"}

    student = lmbridge.Predict(SIG, lm=ScriptedLM(needs_demos))
    opt = MIPROv2(metric, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_threads=1, formats=[])
    compiled = opt.compile(student, trainset=sentiment_rows(8), valset=sentiment_rows(8, offset=8),
                           num_trials=6, minibatch_size=4)
    assert compiled.demos
    assert compiled.report is not None and compiled.report["best_score"] == 100.0


def test_mipro_same_seed_same_program() -> None:
    a = compile_zero_shot(instruction_model, seed=3)
    b = compile_zero_shot(instruction_model, seed=3)
    assert program_state(a) == program_state(b)
    assert a.format == b.format


def test_mipro_budget_cap_returns_the_best_so_far() -> None:
    calls = []

    def counted(messages: list[Any]) -> Any:
        calls.append(1)
        return instruction_model(messages)

    compiled = compile_zero_shot(counted, max_lm_calls=20)
    assert len(calls) == 20
    assert compiled.report is not None and "max_lm_calls=20" in compiled.report["stopped_early"]
    assert compiled.report["baseline_score"] == 50.0  # the baseline was scored before the cap


def test_mipro_estimate_bounds_the_calls_without_calling() -> None:
    calls = []

    def counted(messages: list[Any]) -> Any:
        calls.append(1)
        return instruction_model(messages)

    student = lmbridge.Predict(SIG, lm=ScriptedLM(counted))
    opt = MIPROv2(metric, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_threads=1)
    train, val = sentiment_rows(8), sentiment_rows(8, offset=8)
    estimate = opt.estimate(student, trainset=train, valset=val, num_trials=5, minibatch_size=4)
    assert calls == []
    compiled = opt.compile(student, trainset=train, valset=val, num_trials=5, minibatch_size=4)
    assert compiled.report is not None
    assert 0 < compiled.report["lm_calls"] <= estimate.lm_calls


def test_mipro_bad_arguments_are_clear() -> None:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(instruction_model))
    with pytest.raises(ValueError, match="at least 2"):
        MIPROv2(metric).compile(student, trainset=sentiment_rows(1))
    with pytest.raises(ValueError, match="num_candidates"):
        MIPROv2(metric, auto=None)
    with pytest.raises(ValueError, match="auto must be"):
        MIPROv2(metric, auto="huge")  # type: ignore[arg-type]


def test_mipro_without_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    student = lmbridge.Predict(SIG, lm=ScriptedLM(instruction_model))
    with pytest.raises(lmbridge.MissingDependencyError, match=r"lmbridge\[optuna\]"):
        MIPROv2(metric).compile(student, trainset=sentiment_rows(4))


# -- killed for real, then resumed -----------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    import lmbridge
    from lmbridge.testing import ScriptedLM
    from test_optimizers_support import SIG, metric, sentiment_rows
    from test_optimizers_mipro import instruction_model

    log = open(sys.argv[2], "a")

    def model(messages):
        log.write(("proposer" if "Write a better" in messages[0]["content"] else "task") + "\\n")
        log.flush()
        time.sleep(float(os.environ.get("CALL_DELAY", "0.05")))
        return instruction_model(messages)

    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    opt = lmbridge.MIPROv2(metric, auto=None, num_candidates=3, max_bootstrapped_demos=1, max_labeled_demos=1,
                         num_threads=1, display_progress=False, rescore_top=0)  # counts trial calls only
    compiled = opt.compile(student, trainset=sentiment_rows(4), valset=sentiment_rows(6, offset=4),
                           num_trials=8, minibatch_size=3, minibatch_full_eval_steps=3,
                           checkpoint=sys.argv[1])
    print(json.dumps({{"pid": os.getpid(), "report": compiled.report}}))
""")


def complete_trials(db: Path) -> dict[int, float]:
    if not db.exists():
        return {}
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            rows = conn.execute("SELECT t.number, v.value FROM trials t JOIN trial_values v "
                                "ON v.trial_id = t.trial_id WHERE t.state = 'COMPLETE'").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {int(n): float(v) for n, v in rows}


def full_evaluations_by(db: Path, pid: int) -> int:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, value_json FROM study_user_attributes "
                            "WHERE key LIKE 'full:%'").fetchall()
    return sum(1 for _, value in rows if json.loads(value)["worker"].endswith(f":{pid}"))


def test_a_killed_mipro_compile_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(HERE)))
    db, log1, log2 = tmp_path / "study.db", tmp_path / "calls1.log", tmp_path / "calls2.log"
    env = {**os.environ, "CALL_DELAY": "0.1"}
    child = subprocess.Popen([sys.executable, str(script), str(db), str(log1)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(complete_trials(db)) < 2 and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the compile finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = complete_trials(db)
    assert 2 <= len(finished) < 8

    done = subprocess.run([sys.executable, str(script), str(db), str(log2)], env={**env, "CALL_DELAY": "0"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    second = log2.read_text().split()
    assert "proposer" in log1.read_text().split()
    assert "proposer" not in second  # the setup (demo sets, proposals) was not redone
    after = complete_trials(db)
    assert len(after) == 8
    assert all(after[n] == v for n, v in finished.items())  # finished trials kept as they were
    new_trials = 8 - len(finished)
    fulls = full_evaluations_by(db, result["pid"])
    assert len(second) == 3 * new_trials + 6 * fulls  # minibatches of 3, full evaluations of 6
    assert result["report"]["resumed"] is True
    assert result["report"]["best_score"] == 100.0

    # the same program, and the same search, as a compile that was never killed
    whole = subprocess.run([sys.executable, str(script), str(tmp_path / "whole.db"), str(tmp_path / "w.log")],
                           env={**env, "CALL_DELAY": "0"}, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = json.loads(whole.stdout.strip().splitlines()[-1])["report"]
    path = [(t["kind"], t["score"], t["config"]) for t in result["report"]["trials"]]
    assert path == [(t["kind"], t["score"], t["config"]) for t in reference["trials"]]
    assert result["report"]["best"] == reference["best"]


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(HERE)))
    db = tmp_path / "study.db"
    env = {**os.environ, "CALL_DELAY": "0.15"}
    first = subprocess.Popen([sys.executable, str(script), str(db), str(tmp_path / "w1.log")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen([sys.executable, str(script), str(db), str(tmp_path / "w2.log")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    workers = {t["worker"] for t in reports[1]["report"]["trials"] if t["kind"] == "minibatch"}
    assert len(workers) == 2  # both processes ran trials of the one study
    assert 8 <= len(complete_trials(db)) <= 10  # each worker may overshoot by its one trial in flight
    made_setup = ["proposer" in (tmp_path / f"w{i}.log").read_text().split() for i in (1, 2)]
    assert made_setup.count(True) == 1  # one worker made the candidates, the other waited for them


# -- resumed after an interruption: the same program as an uninterrupted run ------------------------

def _stable(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def graded_model(messages: list[Any]) -> Any:
    """A model whose accuracy differs from prompt to prompt (stable, pseudo-random), so the search
    path (which candidates TPE proposes, which rows each minibatch holds) decides the result."""
    if is_proposer(messages):
        if "Look at these" in messages[0]["content"]:
            return {"summary": "Reviews."}
        return {"instruction": f"Label the review, style {_stable(str(messages)) % 1000}."}
    prompt = "".join(str(m["content"]) for m in messages[:-1]) + str(messages[-1]["content"]).split("Text:")[0]
    right = _stable(prompt + last_text(messages)) % 4 != 0 or _stable(prompt) % 3 == 0
    return {"label": truth(last_text(messages)) if right else "positive"}


class Interrupt:
    """The graded model, interrupted (as by Ctrl-C or a kill) at call ``at``."""

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, 0

    def __call__(self, messages: list[Any]) -> Any:
        self.calls += 1
        if self.at is not None and self.calls >= self.at:
            raise KeyboardInterrupt
        return graded_model(messages)


def _compile_graded(model: Any, checkpoint: Path, **options: Any) -> lmbridge.Module:
    student = lmbridge.Predict(SIG, lm=ScriptedLM(model))
    opt = MIPROv2(metric, auto=None, num_candidates=4, max_bootstrapped_demos=1, max_labeled_demos=1,
                  num_threads=1, seed=5, display_progress=False, **options)
    return opt.compile(student, trainset=sentiment_rows(8), valset=sentiment_rows(9, offset=8), num_trials=12,
                       minibatch_size=3, minibatch_full_eval_steps=3, checkpoint=checkpoint)


def _search_path(program: lmbridge.Module) -> list[Any]:
    assert program.report is not None
    return [(t["kind"], t["score"], t["config"]) for t in program.report["trials"]]


@pytest.mark.parametrize("stop", ["interrupt", "budget"])
def test_a_resumed_mipro_compile_gives_the_uninterrupted_program(tmp_path: Path, stop: str) -> None:
    whole = Interrupt(None)
    uninterrupted = _compile_graded(whole, tmp_path / "whole.db")
    at = int(whole.calls * 0.6)  # past the setup and the baseline, inside the trials

    db = tmp_path / "resumed.db"
    if stop == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            _compile_graded(Interrupt(at), db)
    else:
        stopped = _compile_graded(Interrupt(None), db, max_lm_calls=at)
        assert stopped.report is not None and "max_lm_calls" in stopped.report["stopped_early"]
    assert 0 < len(complete_trials(db)) < 12  # stopped in the middle of the search
    resumed = _compile_graded(Interrupt(None), db)

    assert resumed.report is not None and resumed.report["resumed"] is True
    assert _search_path(resumed) == _search_path(uninterrupted)
    assert resumed.report["best_score"] == uninterrupted.report["best_score"]  # type: ignore[index]
    assert program_state(resumed) == program_state(uninterrupted)
    assert resumed.format == uninterrupted.format


NATO = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def six_class_rows(n: int, offset: int = 0) -> list[lmbridge.Example]:
    return [lmbridge.Example(text=f"item {i}", label=NATO[i % 6]).with_inputs("text")
            for i in range(offset, offset + n)]


def covering_model(messages: list[Any]) -> Any:
    """Right only when the prompt shows every class in its demos (each label written twice or more)."""
    if is_proposer(messages):
        return {"summary": "Items."} if "Look at these" in messages[0]["content"] else {
            "instruction": "Name the item's class."}
    prompt = "\n".join(str(m["content"]) for m in messages)
    if all(prompt.count(label) >= 2 for label in NATO):
        return {"label": NATO[int(last_text(messages).split()[-1]) % 6]}
    return {"label": "alpha"}


def test_the_balanced_demo_set_shows_every_class_when_the_classes_outnumber_the_demos() -> None:
    sig = f"text -> label: Literal[{', '.join(repr(x) for x in NATO)}]"
    student = lmbridge.Predict(sig, lm=ScriptedLM(covering_model))
    opt = MIPROv2(metric, max_bootstrapped_demos=0, max_labeled_demos=4, num_threads=1, seed=0,
                  display_progress=False)
    program = opt.compile(student, trainset=six_class_rows(24), valset=six_class_rows(18, offset=24),
                          minibatch_size=6, num_trials=12)
    assert program.report is not None
    covering = [t for t in program.report["trials"] if t["kind"] == "full_evaluation"
                and t["config"]["self.demos"] >= 12 and t["config"]["format"] == "as given"]
    assert covering and covering[0]["score"] == 100.0  # the class-covering set was searched and won
    # a 4-demo candidate whose instruction names every class ties with it on every row: the tie rule
    # (applied by the final re-scoring on the train and valset rows) keeps the cheaper one, and it holds
    # on unseen rows too
    rescored = program.report["rescored"]
    kept = [e for e in rescored["candidates"] if e["kept"]]
    assert kept[0]["cost"]["demos"] < 12 and "cheaper" in rescored["reason"]
    assert len(program.predictors()[0].demos) < 12
    assert lmbridge.Evaluate(devset=six_class_rows(12, offset=60), metric=metric, display_progress=False)(
        program).score == 100.0
