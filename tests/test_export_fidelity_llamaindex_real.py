"""On the embedded model and 20 SST-2 dev rows: a compiled predictor exported as a LlamaIndex prompt and
run through LlamaIndex on ``BridgeLLM`` over the same LM scores what the program scored, or the export
raises the documented ConfigurationError naming what the template cannot carry."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.data import datasets_dir, load_classification
from lmbridge.adapters.llamaindex import BridgeLLM, to_llamaindex_prompt

pytestmark = pytest.mark.real_model

SIG = lmbridge.make_signature("text -> label: Literal['negative', 'positive']",
                              "Decide whether the movie review is positive or negative.")
FORMATS = {
    "chat-unconstrained": lmbridge.ChatFormat(constrained=False),
    "chat-unconstrained-system": lmbridge.ChatFormat(instructions="system", constrained=False),
    "chat": lmbridge.ChatFormat(),
    "json": lmbridge.JSONFormat(),
    "json-unconstrained": lmbridge.JSONFormat(constrained=False),
    "text": lmbridge.TextFormat(constrained=False),
    "labels": lmbridge.ChatFormat(scoring="labels"),
    "calibrated": lmbridge.TextFormat(scoring="calibrated"),
}
REFUSED = {"chat": "decoding constraint", "json": "decoding constraint", "json-unconstrained": "JSON mode",
           "text": "raw prompt", "labels": "scoring='labels'", "calibrated": "scoring='calibrated'"}
"""What the template cannot carry on the embedded model, as the refusal names it."""


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMBRIDGE_LOCAL_THREADS", os.environ.get("LMBRIDGE_LOCAL_THREADS", "1"))
    try:
        datasets_dir()
    except FileNotFoundError:
        monkeypatch.setenv("LMBRIDGE_DATASETS", os.environ.get("LMBRIDGE_DATASETS", "/work/shared/datasets"))


def _label(run: Callable[[], Any]) -> Any:
    """The label read, or None when none could be read (the program refuses a cut-off answer too)."""
    try:
        return run()
    except (lmbridge.ParseError, lmbridge.TruncatedError):
        return None


@pytest.mark.parametrize("name", list(FORMATS))
def test_exported_prompt_on_bridge_llm_scores_what_the_program_scored(name: str) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    with lmbridge.context(lm=lm):
        compiled = lmbridge.LabeledFewShot(k=4, balanced=True, format=FORMATS[name], display_progress=False).compile(
            lmbridge.Predict(SIG), trainset=load_classification("sst2", "train", 40))
    predictor = compiled.named_predictors()[0][1]
    predictor.lm = lm
    try:
        template = to_llamaindex_prompt(predictor)
    except lmbridge.ConfigurationError as error:
        assert name in REFUSED and REFUSED[name] in str(error), str(error)
        return
    assert name not in REFUSED
    parser, llm = template.output_parser, BridgeLLM(lm=lm)
    assert parser is not None
    rows = load_classification("sst2", "dev", 20)
    ours = [_label(lambda text=r.text: predictor(text=text).label) for r in rows]
    theirs = [_label(lambda text=r.text: parser.parse(llm.predict(template, text=text))["label"]) for r in rows]
    program_accuracy = sum(o == r.label for o, r in zip(ours, rows))
    export_accuracy = sum(t == r.label for t, r in zip(theirs, rows))
    print(f"{name}: program {program_accuracy}/20, LlamaIndex export {export_accuracy}/20")
    assert export_accuracy == program_accuracy, (ours, theirs)
    assert theirs == ours  # the same label on every row, not only the same count
