"""Fixtures shared by several test modules: the small typed values the format and value tests use, and
the scripted sentiment task the CLI and scale-out tests write to a module and compile by name."""

from __future__ import annotations

import enum
import json
import uuid
from pathlib import Path

import pydantic
import pytest


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Point(pydantic.BaseModel):
    x: int
    y: int


def sentiment_task(delay: float = 0.0, *, count_calls: bool = False) -> str:
    """The source of a module with ``program`` (an SST-2-style Predict), ``lm()`` (a ScriptedLM that
    answers by the word "good" and sleeps ``delay`` seconds a call) and ``metric``; with ``count_calls``
    it also keeps ``CALLS``, one entry per LM call."""
    return f'''
import time
import lmbridge
from lmbridge.testing import ScriptedLM

CALLS = []

def model(messages):
    {"CALLS.append(1)" if count_calls else "pass"}
    time.sleep({delay!r})
    text = messages[-1]["content"].rsplit("Text:", 1)[-1]
    if len(messages) == 1:
        return {{"label": "positive"}}
    return {{"label": "positive" if "good" in text else "negative"}}

def lm():
    return ScriptedLM(model)

program = lmbridge.Predict("text -> label: Literal['negative', 'positive']")

def metric(example, prediction, trace=None):
    return example.label == prediction.label
'''


def write_task(source: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write ``source`` as a uniquely named module in ``folder``, importable and the working directory."""
    name = f"clitask_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    return name


def write_sentiment_rows(folder: Path) -> None:
    """``train.jsonl`` (8 rows) and ``dev.jsonl`` (6 rows) in ``folder``, for ``sentiment_task``'s model."""
    words = ["good", "bad"]
    for split, n in (("train", 8), ("dev", 6)):
        rows = [{"text": f"a {words[i % 2]} film {i}", "label": "positive" if i % 2 == 0 else "negative"}
                for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
