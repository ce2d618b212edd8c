"""``lmbridge compile --optimizer finetune`` and ``--optimizer better-together``, run in-process on a
scripted model with a scripted local trainer: the options reach the trainer, ``--export`` writes the
training set without training, the report table shows the fine-tuning and the stages, and bad
combinations are command-line mistakes (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import sentiment_task, write_sentiment_rows, write_task

import lmbridge
import lmbridge.finetune
from lmbridge.cli._main import main
from lmbridge.finetune import TrainingCheckpoint, TrainingExample, TrainingProgress
from lmbridge.testing import ScriptedLM


class FakeLoRA:
    """Stands in for ``lmbridge.finetune.LocalLoRA``: records its options and what it trains."""

    made: list[dict[str, Any]] = []
    trained: list[int] = []
    name = "local-lora"

    def __init__(self, **options: Any) -> None:
        FakeLoRA.made.append(options)

    def check(self, lm: lmbridge.BaseLM) -> None:
        return None

    def train(self, lm: lmbridge.BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> lmbridge.BaseLM:
        FakeLoRA.trained.append(len(examples))
        if on_progress is not None:
            on_progress(TrainingProgress(3, 3, loss=0.1))

        def right(messages: list[Any]) -> Any:
            text = str(messages[-1]["content"]).rsplit("Text:", 1)[-1]
            return {"label": "positive" if "good" in text else "negative"}

        return ScriptedLM(right, model="local/smollm2+lora")


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = write_task(sentiment_task(), tmp_path, monkeypatch)
    write_sentiment_rows(tmp_path)
    FakeLoRA.made, FakeLoRA.trained = [], []
    monkeypatch.setattr(lmbridge.finetune, "LocalLoRA", FakeLoRA, raising=False)
    return name


def compile_args(task: str, *extra: str) -> list[str]:
    return ["compile", f"{task}:program", "--trainset", "train.jsonl", "--valset", "dev.jsonl",
            "--metric", f"{task}:metric", "--lm-factory", f"{task}:lm", "--quiet", *extra]


def test_help_lists_the_weight_optimizers_and_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    out = capsys.readouterr().out
    for text in ("finetune", "better-together", "--trainer {local,provider}", "--steps N", "--rank N", "--export PATH",
                 "--strategy", "--prompt-optimizer", "--max-examples N", "--trainer-api-base"):
        assert text in out, text


def test_finetune_passes_steps_and_rank_to_the_local_trainer_and_saves_the_program(
        task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(compile_args(task, "--optimizer", "finetune", "--trainer", "local", "--steps", "3", "--rank", "4",
                             "--out", "tuned.json"))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert FakeLoRA.made == [{"steps": 3, "rank": 4}]
    assert FakeLoRA.trained == [4]  # the zero-shot model is right on the 4 positive training rows
    report = json.loads((tmp_path / "tuned.json").read_text())["report"]
    assert report["optimizer"] == "BootstrapFinetune"
    assert report["finetune"]["training"][0]["model"] == "local/smollm2+lora"
    assert report["selection"]["kept"] == "winner"
    assert "fine-tuned" in out.out and "local/smollm2+lora" in out.out and "3 steps" in out.out


def test_export_writes_the_training_set_and_trains_nothing(task: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(compile_args(task, "--optimizer", "finetune", "--export", "train-set.jsonl"))
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = (tmp_path / "train-set.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(list(json.loads(line)) == ["messages"] for line in lines)
    assert FakeLoRA.trained == [] and not (tmp_path / "tuned.json").exists()
    assert "wrote train-set.jsonl" in out.out


def test_better_together_runs_its_stages_and_shows_them(task: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(compile_args(task, "--optimizer", "better-together", "--prompt-optimizer", "labeled", "--k", "2",
                             "--strategy", "p -> w", "--trainer", "local", "--out", "both.json"))
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads((tmp_path / "both.json").read_text())["report"]
    assert [s["kind"] for s in report["stages"]] == ["p", "w"]
    assert "stage 0 (p)" in out.out and "stage 1 (w)" in out.out
    assert FakeLoRA.trained  # the weight stage trained


@pytest.mark.parametrize(("extra", "message"), [
    (["--optimizer", "bootstrap", "--export", "x.jsonl", "--out", "a.json"], "--export writes the training set"),
    (["--optimizer", "finetune", "--trainer", "provider", "--steps", "3", "--out", "a.json"], "--steps and --rank"),
    (["--optimizer", "finetune"], "--out is required"),
    (["--optimizer", "better-together", "--prompt-optimizer", "labeled", "--strategy", "p -> q", "--out", "a.json"],
     "strategy must be"),
])
def test_bad_combinations_are_refused(task: str, extra: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(compile_args(task, *extra))
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err
    assert FakeLoRA.trained == []


def test_the_local_trainer_missing_is_a_clear_usage_error(task: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delattr(lmbridge.finetune, "LocalLoRA")
    code = main(compile_args(task, "--optimizer", "finetune", "--trainer", "local", "--out", "a.json"))
    assert code == 2 and "use --trainer provider" in capsys.readouterr().err
