"""The embedded models themselves: both run in-process, and the split gemma3 file is joined once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest

import lmbridge
from lmbridge.lm._local import KNOWN, model_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_classification

pytestmark = pytest.mark.real_model


class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the movie review as negative or positive."""

    text: str = lmbridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")


def test_gemma3_parts_are_joined_once_into_the_cache() -> None:
    first = model_path("gemma3")
    stamp = first.stat().st_mtime_ns
    again = model_path("gemma3")
    assert first == again and again.stat().st_mtime_ns == stamp
    assert first.stat().st_size > 200_000_000 and first.name == KNOWN["gemma3"].filename


def test_gemma3_base_model_follows_demonstrations(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/gemma3", max_tokens=8, cache=lmbridge.lm._cache.Cache(tmp_path))
    demos = load_classification("sst2", "train", 6)
    program = lmbridge.Predict(Sentiment, lm=lm, demos=demos)
    answers = []
    failures = 0
    for example in load_classification("sst2", "test", 4):
        try:
            answers.append(program(text=example.text).label)
        except lmbridge.ParseError as error:
            assert error.attempts == 2 and error.usage is not None and error.usage.parse_retries == 1
            failures += 1
    # how many greedy answers of a 270M base model parse depends on the CPU; on any CPU each is a
    # typed label the model wrote, or a counted ParseError after one re-ask
    assert len(answers) + failures == 4
    assert set(answers) <= {"negative", "positive"}
    for label in answers:
        assert any(label in entry.completion.lower() for entry in lm.history), "a label the model did not write"
    history = lm.history[-1]
    assert history.messages[1]["role"] == "assistant"  # demos went as chat turns through the template
    assert demos[0].label in history.messages[1]["content"]  # the first demo's gold label, as the model's turn


def test_unknown_local_model_names_the_known_ones() -> None:
    with pytest.raises(lmbridge.LMError, match="smollm2"):
        lmbridge.LM("local/no-such-model")


def test_sampled_answers_depend_on_the_request_not_on_earlier_calls() -> None:
    # What makes a sampling compile (SIMBA, COPRO with a temperature) repeat: the embedded model's
    # random state is seeded from each request, so the calls that ran before do not move a sample.
    ask = [{"role": "user", "content": "Write a four-word name for a cat."}]
    fresh = lmbridge.LM("local/smollm2", temperature=1.0, max_tokens=12, cache=False)
    first = fresh.complete(ask, {"rollout_id": 1}).text
    for n in range(3):  # move the model's own random state
        fresh.complete([{"role": "user", "content": f"Count to {n + 2}."}])
    assert fresh.complete(ask, {"rollout_id": 1}).text == first
    samples = {fresh.complete(ask, {"rollout_id": r}).text for r in range(2, 6)}
    assert len(samples | {first}) > 1  # another rollout_id is another sample
