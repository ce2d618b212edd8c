"""BootstrapFinetune with scripted models and a scripted trainer: the examples are the predictor's own
prompts (the messages it sends at run time), the student is never changed, bad input is refused with
what to do, multitask grouping, export as chat JSONL, the never-worse selection, and resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_optimizers_support import SIG, metric, program_state, sentiment_rows, truth

import lmbridge
from lmbridge import BootstrapFinetune
from lmbridge.finetune import TrainingCheckpoint, TrainingExample, TrainingProgress, read_jsonl
from lmbridge.testing import ScriptedLM


def half_right(messages: list[Any]) -> Any:
    """The base model: right on "good"/"bad", wrong on "great"/"awful"."""
    text = str(messages[-1]["content"]).rsplit("Text:", 1)[-1].split("\n")[0]
    if "great" in text:
        return {"label": "negative"}
    if "awful" in text:
        return {"label": "positive"}
    return {"label": truth(text)}


def always_right(messages: list[Any]) -> Any:
    text = str(messages[-1]["content"]).rsplit("Text:", 1)[-1].split("\n")[0]
    return {"label": truth(text)}


class RecordingTrainer:
    """A weight trainer that records what it is given and returns a scripted "fine-tuned" LM."""

    name = "recording"

    def __init__(self, answers: Callable[[list[Any]], Any] = always_right, *, refuse: str | None = None) -> None:
        self.answers = answers
        self.refuse = refuse
        self.calls: list[tuple[lmbridge.BaseLM, list[TrainingExample], int]] = []
        self.checkpoints: list[dict[str, Any] | None] = []
        self.tuned: list[ScriptedLM] = []

    def check(self, lm: lmbridge.BaseLM) -> None:
        if self.refuse:
            raise lmbridge.ConfigurationError(self.refuse)

    def train(self, lm: lmbridge.BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> lmbridge.BaseLM:
        self.calls.append((lm, [list(e) for e in examples], seed))
        self.checkpoints.append(checkpoint.load() if checkpoint is not None else None)
        if checkpoint is not None:
            checkpoint.save({"job": f"job-{len(self.calls)}"})
        if on_progress is not None:
            on_progress(TrainingProgress(1, 2, loss=0.7))
            on_progress(TrainingProgress(2, 2, loss=0.2))
        tuned = ScriptedLM(self.answers, model=f"tuned-{len(self.calls)}")
        self.tuned.append(tuned)
        return tuned


class Pipeline(lmbridge.Module):
    def __init__(self, lm: lmbridge.BaseLM | None = None) -> None:
        self.extract = lmbridge.Predict("text -> keyword", lm=lm)
        self.classify = lmbridge.Predict("keyword -> label: Literal['negative', 'positive']", lm=lm)

    def forward(self, text: str) -> lmbridge.Prediction:
        return self.classify(keyword=self.extract(text=text).keyword)


def pipeline_model(messages: list[Any]) -> Any:
    content = str(messages[-1]["content"])
    if content.rstrip().endswith("Keyword:"):
        return {"keyword": content.rsplit("Text:", 1)[-1].split()[1]}
    return {"label": truth(content.rsplit("Keyword:", 1)[-1])}


def quiet(**options: Any) -> BootstrapFinetune:
    return BootstrapFinetune(metric, display_progress=False, **options)


# -- the examples are the prompts the fine-tuned predictor sends --------------------------------------

def test_the_messages_sent_at_run_time_are_the_ones_trained_on() -> None:
    trainer = RecordingTrainer()
    demos = [lmbridge.Example(text="a fine film", label="positive")]
    student = lmbridge.Predict(SIG, lm=ScriptedLM(half_right), demos=demos)
    rows = sentiment_rows(8)
    compiled = quiet(trainer=trainer).compile(student, trainset=rows)
    assert len(trainer.calls) == 1
    _, examples, seed = trainer.calls[0]
    assert seed == 0
    assert len(examples) == 4  # the "good"/"bad" rows passed; "great"/"awful" did not
    tuned = trainer.tuned[0]
    assert compiled.lm is tuned
    for row, example in zip([r for r in rows if "good" in r.text or "bad" in r.text], examples):
        assert example[-1] == {"role": "assistant", "content": row.label}
        compiled(text=row.text)
        assert tuned.calls[-1] == example[:-1]  # exactly the prompt it was trained on
    assert compiled.demos == []  # trained without demos, run without demos
    assert compiled.format == lmbridge.ChatFormat()  # pinned: a later configure(format=...) changes nothing


def test_the_student_and_its_lm_are_never_changed() -> None:
    lm = ScriptedLM(half_right)
    student = lmbridge.Predict(SIG, lm=lm, demos=[lmbridge.Example(text="x", label="negative")])
    before = program_state(student)
    quiet(trainer=RecordingTrainer()).compile(student, trainset=sentiment_rows(8))
    assert program_state(student) == before
    assert student.lm is lm and student.format is None


def test_a_teacher_program_makes_the_examples() -> None:
    trainer = RecordingTrainer()
    student = lmbridge.Predict(SIG, lm=ScriptedLM(half_right))
    teacher = lmbridge.Predict(SIG, lm=ScriptedLM(always_right))
    quiet(trainer=trainer).compile(student, trainset=sentiment_rows(8), teacher=teacher)
    lm, examples, _ = trainer.calls[0]
    assert lm is student.lm  # the student's model is the one fine-tuned
    assert len(examples) == 8
    with pytest.raises(ValueError, match="teacher's predictors"):
        quiet(trainer=trainer).compile(student, trainset=sentiment_rows(8), teacher=Pipeline(ScriptedLM([])))


# -- bad input ----------------------------------------------------------------------------------------

def test_no_passing_trace_is_an_error_naming_what_to_do() -> None:
    trainer = RecordingTrainer()
    student = lmbridge.Predict(SIG, lm=ScriptedLM(lambda m: {"label": "positive"}))
    before = program_state(student)
    rows = [r for r in sentiment_rows(8) if r.label == "negative"]
    with pytest.raises(lmbridge.EvaluationError, match=r"metric_threshold.*more training rows.*stronger teacher"):
        quiet(trainer=trainer).compile(student, trainset=rows)
    assert trainer.calls == []
    assert program_state(student) == before


def test_a_trainer_that_cannot_train_fails_before_any_lm_call() -> None:
    lm = ScriptedLM(half_right)
    trainer = RecordingTrainer(refuse="torch is not installed; pip install 'lmbridge[finetune]'")
    with pytest.raises(lmbridge.ConfigurationError, match=r"lmbridge\[finetune\]"):
        quiet(trainer=trainer).compile(lmbridge.Predict(SIG, lm=lm), trainset=sentiment_rows(8))
    assert lm.calls == []


def test_a_raw_text_format_is_refused_before_any_lm_call_with_the_fix() -> None:
    lm = ScriptedLM(half_right)
    student = lmbridge.Predict(SIG, lm=lm, format=lmbridge.TextFormat())
    with pytest.raises(lmbridge.ConfigurationError, match=r"format=lmbridge.ChatFormat\(\)"):
        quiet(trainer=RecordingTrainer()).compile(student, trainset=sentiment_rows(8))
    assert lm.calls == []
    trainer = RecordingTrainer()
    compiled = quiet(trainer=trainer, format=lmbridge.ChatFormat()).compile(student, trainset=sentiment_rows(8))
    assert compiled.format == lmbridge.ChatFormat() and student.format == lmbridge.TextFormat()


def test_no_lm_is_a_configuration_error() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="no LM is configured"):
        quiet(trainer=RecordingTrainer()).compile(lmbridge.Predict(SIG), trainset=sentiment_rows(4))


# -- multitask ----------------------------------------------------------------------------------------

def test_predictors_on_one_lm_train_together_unless_multitask_is_off() -> None:
    rows = sentiment_rows(4)
    shared = RecordingTrainer()
    compiled = quiet(trainer=shared).compile(Pipeline(ScriptedLM(pipeline_model)), trainset=rows)
    assert len(shared.calls) == 1 and len(shared.calls[0][1]) == 8  # 4 runs x 2 predictors
    assert compiled.extract.lm is compiled.classify.lm is shared.tuned[0]
    apart = RecordingTrainer()
    compiled = quiet(trainer=apart, multitask=False).compile(Pipeline(ScriptedLM(pipeline_model)), trainset=rows)
    assert [len(c[1]) for c in apart.calls] == [4, 4]
    assert compiled.extract.lm is apart.tuned[0] and compiled.classify.lm is apart.tuned[1]
    report = compiled.report
    assert report is not None
    assert [t["predictors"] for t in report["finetune"]["training"]] == [["extract"], ["classify"]]
    assert report["finetune"]["training"][0]["steps"] == 2 and report["finetune"]["training"][0]["loss"] == 0.2


# -- export -------------------------------------------------------------------------------------------

def test_export_writes_openai_chat_jsonl_one_file_or_one_per_predictor(tmp_path: Path) -> None:
    rows = sentiment_rows(4)
    optimizer = quiet(trainer=RecordingTrainer())
    [one] = optimizer.export(tmp_path / "all.jsonl", Pipeline(ScriptedLM(pipeline_model)), trainset=rows)
    lines = one.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8
    for line in lines:
        record = json.loads(line)
        assert list(record) == ["messages"]
        assert all(set(m) == {"role", "content"} for m in record["messages"])
        assert record["messages"][-1]["role"] == "assistant"
    files = optimizer.export(tmp_path / "split", Pipeline(ScriptedLM(pipeline_model)), trainset=rows)
    assert sorted(f.name for f in files) == ["classify.jsonl", "extract.jsonl"]
    trainer = RecordingTrainer()
    quiet(trainer=trainer).compile(Pipeline(ScriptedLM(pipeline_model)), trainset=rows)
    assert read_jsonl(one) == trainer.calls[0][1]  # the export is the training set the trainer gets
    assert trainer.calls and not optimizer._trainer.calls  # type: ignore[union-attr]  # export trains nothing


# -- selection, report, resume ------------------------------------------------------------------------

def test_a_fine_tuned_model_no_better_than_the_student_is_not_kept() -> None:
    rows, val = sentiment_rows(8), sentiment_rows(40, offset=8)
    worse = RecordingTrainer(lambda m: {"label": "positive"})
    student = lmbridge.Predict(SIG, lm=ScriptedLM(half_right))
    kept = quiet(trainer=worse).compile(student, trainset=rows, valset=val)
    assert kept.lm is student.lm
    assert kept.report is not None and kept.report["selection"]["kept"] == "student"
    assert kept.report["finetune"]["training"][0]["model"] == "tuned-1"  # what was trained stays visible
    better = RecordingTrainer()
    won = quiet(trainer=better).compile(student, trainset=rows, valset=val)
    assert won.lm is better.tuned[0]
    assert won.report is not None and won.report["selection"]["kept"] == "winner"
    assert won.report["best_score"] == 100.0 and won.report["baseline_score"] == 50.0


def test_a_killed_compile_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    rows = sentiment_rows(8)
    ck = tmp_path / "ck.json"
    first = RecordingTrainer()
    quiet(trainer=first).compile(lmbridge.Predict(SIG, lm=ScriptedLM(half_right)), trainset=rows, checkpoint=ck)
    again = ScriptedLM([])  # any LM call would fail: the traces come from the checkpoint
    second = RecordingTrainer()
    compiled = quiet(trainer=second).compile(lmbridge.Predict(SIG, lm=again), trainset=rows, checkpoint=ck)
    assert again.calls == []
    assert second.calls[0][1] == first.calls[0][1]
    assert second.checkpoints == [{"job": "job-1"}]  # the trainer sees what it saved (a provider's job id)
    assert compiled.report is not None and compiled.report["resumed"] is True


def test_a_budget_cap_stops_the_bootstrap_and_trains_on_what_passed() -> None:
    trainer = RecordingTrainer()
    compiled = BootstrapFinetune(metric, trainer=trainer, max_lm_calls=3, num_threads=1,
                                 display_progress=False).compile(
        lmbridge.Predict(SIG, lm=ScriptedLM(half_right)), trainset=sentiment_rows(8))
    assert compiled.report is not None and "max_lm_calls=3" in compiled.report["stopped_early"]
    assert compiled.report["lm_calls"] <= 3
    assert len(trainer.calls[0][1]) == 2  # rows 0 ("good") and 1 ("bad") passed; row 2 did not


def test_estimate_counts_the_bootstrap_and_the_selection() -> None:
    estimate = quiet(trainer=RecordingTrainer()).estimate(Pipeline(), trainset=sentiment_rows(10),
                                                          valset=sentiment_rows(5))
    assert estimate.breakdown == {"bootstrap": 20, "training": 0, "selection": 20}


class Branch(lmbridge.Module):
    """Texts with "good" or "great" go to ``kind``; the rest to ``other``, which never passes here."""

    def __init__(self, lm: lmbridge.BaseLM) -> None:
        self.kind = lmbridge.Predict(SIG, lm=lm)
        self.other = lmbridge.Predict(SIG, lm=lm, demos=[lmbridge.Example(text="dull", label="negative")])

    def forward(self, text: str) -> lmbridge.Prediction:
        return (self.kind if ("good" in text or "great" in text) else self.other)(text=text)


def test_a_predictor_with_no_passing_call_keeps_its_model_and_prompt() -> None:
    lm = ScriptedLM(lambda m: {"label": "positive"})
    trainer = RecordingTrainer()
    compiled = quiet(trainer=trainer).compile(Branch(lm), trainset=sentiment_rows(8))
    assert compiled.kind.lm is trainer.tuned[0] and compiled.kind.demos == []
    assert compiled.other.lm is lm and len(compiled.other.demos) == 1 and compiled.other.format is None
    assert compiled.report is not None and compiled.report["finetune"]["untrained"] == ["other"]


def test_the_program_compared_on_the_valset_is_the_program_returned() -> None:
    def needs_demos(messages: list[Any]) -> Any:
        return always_right(messages) if len(messages) > 1 else {"label": "positive"}

    lm = ScriptedLM(needs_demos)
    trainer = RecordingTrainer()
    rows = [r for r in sentiment_rows(8) if r.label == "positive"]  # only ``kind`` runs: ``other`` is untrained
    compiled = quiet(trainer=trainer).compile(Branch(lm), trainset=rows, valset=sentiment_rows(40, offset=8))
    assert compiled.report is not None
    # the fine-tuned program, ``other`` still with its demo, is right on every valset row
    assert compiled.report["selection"]["winner"] == 100.0


def test_a_full_disk_while_exporting_leaves_no_file_and_says_what_to_do(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import lmbridge.finetune._data as data

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data.os, "fsync", full)
    with pytest.raises(OSError, match="free some disk space") as caught:
        quiet().export(tmp_path / "set.jsonl", lmbridge.Predict(SIG, lm=ScriptedLM(always_right)),
                       trainset=sentiment_rows(4))
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no half-written file, no temporary left behind


def test_runs_that_all_failed_are_named_in_the_error() -> None:
    lm = ScriptedLM(lambda m: "no label here")
    with pytest.raises(lmbridge.EvaluationError, match=r"8 runs failed; first errors: \[.program: ParseError"):
        quiet(trainer=RecordingTrainer()).compile(lmbridge.Predict(SIG, lm=lm), trainset=sentiment_rows(8))


def test_export_and_compile_share_a_checkpoint_and_a_changed_trainer_starts_afresh(tmp_path: Path) -> None:
    ck, rows = tmp_path / "ck.json", sentiment_rows(8)
    quiet().export(tmp_path / "set.jsonl", lmbridge.Predict(SIG, lm=ScriptedLM(half_right)), trainset=rows,
                   checkpoint=ck)
    silent = ScriptedLM([])  # the bootstrap is in the checkpoint
    first = RecordingTrainer()
    quiet(trainer=first).compile(lmbridge.Predict(SIG, lm=silent), trainset=rows, checkpoint=ck)
    assert silent.calls == [] and first.calls[0][1] == read_jsonl(tmp_path / "set.jsonl")
    changed = RecordingTrainer(refuse=None)
    changed.refuse = ""  # another setting: the first trainer's record (its "job") is not handed to this one
    quiet(trainer=changed).compile(lmbridge.Predict(SIG, lm=silent), trainset=rows, checkpoint=ck)
    assert changed.checkpoints == [None]


class Compiles(lmbridge.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def on_compile_start(self, run: lmbridge.Run, settings: Any) -> None:
        self.seen.append(("start", run.name, dict(settings)))

    def on_compile_end(self, run: lmbridge.Run, result: lmbridge.RunScore) -> None:
        self.seen.append(("end", run.name, result.usage.calls if result.usage else None))

    def on_compile_error(self, run: lmbridge.Run, error: BaseException) -> None:
        self.seen.append(("error", run.name, type(error).__name__))


def test_callbacks_see_the_compile_and_its_failure() -> None:
    seen = Compiles()
    lm = ScriptedLM(half_right)
    with lmbridge.context(callbacks=[seen]):
        quiet(trainer=RecordingTrainer()).compile(lmbridge.Predict(SIG, lm=lm), trainset=sentiment_rows(4))
        with pytest.raises(lmbridge.EvaluationError):
            quiet(trainer=RecordingTrainer()).compile(lmbridge.Predict(SIG, lm=lm), trainset=sentiment_rows(4)[2:3])
    assert [(kind, name) for kind, name, _ in seen.seen] == [
        ("start", "BootstrapFinetune"), ("end", "BootstrapFinetune"),
        ("start", "BootstrapFinetune"), ("error", "BootstrapFinetune")]
    assert seen.seen[0][2]["trainer"] == "recording" and seen.seen[1][2] == 4


def test_the_training_progress_shows_steps_and_loss(capsys: pytest.CaptureFixture[str]) -> None:
    BootstrapFinetune(metric, trainer=RecordingTrainer()).compile(lmbridge.Predict(SIG, lm=ScriptedLM(half_right)),
                                                                  trainset=sentiment_rows(4))
    err = capsys.readouterr().err
    assert "BootstrapFinetune training self (recording): 2/2 training | loss 0.2000" in err


def test_the_default_trainer_is_local_for_an_embedded_model_and_the_provider_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import lmbridge.finetune

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    teacher = lmbridge.Predict(SIG, lm=ScriptedLM(always_right))
    with pytest.raises(lmbridge.ConfigurationError, match=r"\$OPENAI_API_KEY"):
        quiet().compile(lmbridge.Predict(SIG, lm=lmbridge.LM("openai/gpt-4o-mini")), trainset=sentiment_rows(4),
                        teacher=teacher)
    monkeypatch.delattr(lmbridge.finetune, "LocalLoRA", raising=False)
    with pytest.raises(lmbridge.ConfigurationError, match="LocalLoRA"):
        quiet().compile(lmbridge.Predict(SIG, lm=lmbridge.LM("local/smollm2")), trainset=sentiment_rows(4),
                        teacher=teacher)
    made: list[RecordingTrainer] = []

    def local() -> RecordingTrainer:
        made.append(RecordingTrainer())
        return made[-1]

    monkeypatch.setattr(lmbridge.finetune, "LocalLoRA", local, raising=False)
    compiled = quiet().compile(lmbridge.Predict(SIG, lm=lmbridge.LM("local/smollm2")), trainset=sentiment_rows(4),
                               teacher=teacher)
    assert len(made) == 1 and compiled.lm is made[0].tuned[0]
    assert len(teacher.lm.calls) == 4  # type: ignore[union-attr]  # the two refused compiles called no model
