"""Fixtures shared by several test modules: the small typed values the format and value tests use, the
scripted sentiment task the CLI and scale-out tests write to a module and compile by name, and the
setup of the real-model export-fidelity and compile tests (datasets, formats, a compiled SST-2 predictor)."""

from __future__ import annotations

import enum
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# -- the real-model export-fidelity and compile tests: one setup ---------------------------------------

SST2_INSTRUCTIONS = "Decide whether the movie review is positive or negative."
SST2_SPEC = "text -> label: Literal['negative', 'positive']"


def export_formats() -> dict[str, Any]:
    """Each prompt format lmbridge compiles to, by the name the export-fidelity tests report."""
    import lmbridge

    return {
        "chat": lmbridge.ChatFormat(),
        "chat-unconstrained": lmbridge.ChatFormat(constrained=False),
        "chat-unconstrained-system": lmbridge.ChatFormat(instructions="system", constrained=False),
        "json": lmbridge.JSONFormat(),
        "json-unconstrained": lmbridge.JSONFormat(constrained=False),
        "text": lmbridge.TextFormat(),
        "text-unconstrained": lmbridge.TextFormat(constrained=False),
        "labels": lmbridge.ChatFormat(scoring="labels"),
        "calibrated": lmbridge.TextFormat(scoring="calibrated"),
    }


def find_shared_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``LMBRIDGE_DATASETS`` at the shared datasets when ``examples.data`` cannot find them from a
    worktree, and run the embedded model on one thread unless told otherwise."""
    from examples.data import datasets_dir

    monkeypatch.setenv("LMBRIDGE_LOCAL_THREADS", os.environ.get("LMBRIDGE_LOCAL_THREADS", "1"))
    try:
        datasets_dir()
    except FileNotFoundError:
        monkeypatch.setenv("LMBRIDGE_DATASETS", os.environ.get("LMBRIDGE_DATASETS", "/work/shared/datasets"))


def compiled_sst2(fmt: Any, lm: Any, *, signature: Any = SST2_SPEC, train: int = 40,
                  rows: Callable[[Any], Any] | None = None) -> Any:
    """The one Predict of ``LabeledFewShot(k=4, balanced=True, format=fmt)`` compiled on ``train`` SST-2
    train rows (each mapped by ``rows``, for a signature with other field names), running on ``lm``.
    ``signature``: a spec (given the SST-2 instructions) or a signature class."""
    import lmbridge
    from examples.data import load_classification

    trainset = load_classification("sst2", "train", train)
    with lmbridge.context(lm=lm):
        compiled = lmbridge.LabeledFewShot(k=4, balanced=True, format=fmt, display_progress=False).compile(
            lmbridge.Predict(lmbridge.make_signature(signature, SST2_INSTRUCTIONS) if isinstance(signature, str)
                             else signature),
            trainset=[rows(r) for r in trainset] if rows is not None else trainset)
    predictor = compiled.named_predictors()[0][1]
    predictor.lm = lm
    return predictor


def read_or_none(run: Callable[[], Any], *errors: type[BaseException]) -> Any:
    """What ``run`` returns, or None when no value could be read (the program's ParseError and
    TruncatedError, and the given errors of the exported route)."""
    import lmbridge

    try:
        return run()
    except (lmbridge.ParseError, lmbridge.TruncatedError, *errors):
        return None


def trec_signature() -> Any:
    """TREC's question-type task as the real-model optimizer tests declare it: ``text -> label`` with the
    six kinds as a ``Literal``, the instruction as the benchmarks write it."""
    import sys
    from typing import Literal

    import lmbridge

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.data import labels_of

    class Kind(lmbridge.Signature):
        """Classify what kind of answer the question asks for."""

        text: str = lmbridge.InputField()
        label: str = lmbridge.OutputField()

    return Kind.with_updated_field("label", annotation=Literal[tuple(labels_of("trec"))])  # type: ignore[misc]
