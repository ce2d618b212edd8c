"""BestOfN, Refine and Parallel on ScriptedLM."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

import lmbridge
from lmbridge.lm import Completion
from lmbridge.signatures._signature import Signature
from lmbridge.testing import ScriptedLM
from lmbridge.types import Message

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="none")


class RecordingLM(ScriptedLM):
    """A ScriptedLM that also records the parameters of each request (rollout_id included)."""

    def __init__(self, responses: Any) -> None:
        super().__init__(responses)
        self.params_seen: list[dict[str, Any]] = []

    def complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                 signature: type[Signature] | None = None, fmt: Any = None) -> Completion:
        self.params_seen.append(dict(params or {}))
        return super().complete(messages, params, signature=signature, fmt=fmt)


def one_word(args: dict[str, Any], pred: lmbridge.Prediction) -> float:
    return 1.0 if len(str(pred.answer).split()) == 1 else 0.0


def words_reward(args: dict[str, Any], pred: lmbridge.Prediction) -> float:
    return -len(str(pred.answer).split())


def test_best_of_n_stops_at_the_first_attempt_over_the_threshold() -> None:
    lm = RecordingLM([{"answer": "it is Brussels"}, {"answer": "Brussels"}, {"answer": "never asked"}])
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=3, reward_fn=one_word, threshold=1.0)
    pred = best(question="Capital of Belgium?")
    assert pred.answer == "Brussels"
    assert len(lm.calls) == 2
    assert pred.usage.calls == 2, "the prediction carries the usage of every attempt"


def test_attempts_after_the_first_are_distinct_samples() -> None:
    lm = RecordingLM([{"answer": "a b"}, {"answer": "a b c"}, {"answer": "a b c d"}])
    base = lmbridge.Predict("question -> answer", lm=lm, temperature=0.0)
    lmbridge.BestOfN(base, N=3, reward_fn=one_word, threshold=1.0)(question="?")
    first, second, third = lm.params_seen
    assert "rollout_id" not in first and first["temperature"] == 0.0
    assert second["rollout_id"] == 1 and second["temperature"] == 1.0
    assert third["rollout_id"] == 2 and third["temperature"] > 0
    assert base.lm_params == {"temperature": 0.0}, "the wrapped module is never changed"


def test_rollout_ids_give_each_attempt_its_own_cache_entry() -> None:
    from lmbridge.lm._cache import Cache

    lm = ScriptedLM([{"answer": "one two"}, {"answer": "three four"}], cache=Cache(disk=False))
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=2, reward_fn=one_word, threshold=1.0)
    best(question="?")
    assert len(lm.calls) == 2, "the second attempt must not be served the first attempt's cached answer"
    best(question="?")
    assert len(lm.calls) == 2, "a re-run replays both attempts from the cache"


def test_best_of_n_returns_the_best_when_none_passes() -> None:
    lm = ScriptedLM([{"answer": "a b c"}, {"answer": "a"}, {"answer": "a b"}])
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=3, reward_fn=words_reward,
                          threshold=0.0)
    assert best(question="?").answer == "a"
    assert len(lm.calls) == 3


def test_failed_attempts_are_skipped_until_fail_count() -> None:
    lm = ScriptedLM([lmbridge.LMError("boom"), {"answer": "fine"}])
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=3, reward_fn=one_word, threshold=1.0)
    assert best(question="?").answer == "fine"

    lm = ScriptedLM([lmbridge.LMError("boom"), {"answer": "never"}])
    strict = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=3, reward_fn=one_word,
                            threshold=1.0, fail_count=1)
    with pytest.raises(lmbridge.LMError, match="boom"):
        strict(question="?")


def test_a_raising_reward_counts_as_a_failure() -> None:
    def picky(args: dict[str, Any], pred: lmbridge.Prediction) -> float:
        if pred.answer == "bad":
            raise ValueError("cannot score")
        return 1.0

    lm = ScriptedLM([{"answer": "bad"}, {"answer": "good"}])
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=2, reward_fn=picky, threshold=1.0)
    assert best(question="?").answer == "good"
    lm = ScriptedLM([{"answer": "bad"}, {"answer": "bad"}])
    best = lmbridge.BestOfN(lmbridge.Predict("question -> answer", lm=lm), N=2, reward_fn=picky, threshold=1.0)
    with pytest.raises(ValueError, match="cannot score"):
        best(question="?")


def test_best_of_n_exposes_the_inner_predictors() -> None:
    best = lmbridge.BestOfN(lmbridge.ChainOfThought("question -> answer"), N=2, reward_fn=one_word, threshold=1)
    assert [n for n, _ in best.named_predictors()] == ["module.predict"]
    with pytest.raises(ValueError):
        lmbridge.BestOfN(lmbridge.Predict("q -> a"), N=0, reward_fn=one_word, threshold=1)


def test_refine_shows_the_models_feedback_to_the_next_attempt() -> None:
    lm = ScriptedLM([
        {"answer": "The capital is Brussels"},
        {"advice": "Answer with the city name only."},
        {"answer": "Brussels"},
    ])
    refine = lmbridge.Refine(lmbridge.Predict("question -> answer", lm=lm), N=3, reward_fn=one_word, threshold=1.0,
                           lm=lm)
    pred = refine(question="Capital of Belgium?")
    assert pred.answer == "Brussels"
    feedback_prompt = lm.calls[1][-1]["content"]
    assert "The capital is Brussels" in feedback_prompt and "target: 1" in feedback_prompt
    retry_prompt = lm.calls[2][0]["content"]
    assert "Advice from an earlier attempt: Answer with the city name only." in retry_prompt
    assert "Advice" not in lm.calls[0][0]["content"]
    assert pred.usage.calls == 3
    assert {n for n, _ in refine.named_predictors()} == {"module", "feedback"}


def test_refine_returns_the_best_attempt_and_asks_no_feedback_after_the_last() -> None:
    lm = ScriptedLM([{"answer": "a b c"}, {"advice": "shorter"}, {"answer": "a b"}])
    refine = lmbridge.Refine(lmbridge.Predict("question -> answer", lm=lm), N=2, reward_fn=words_reward,
                           threshold=0.0, lm=lm)
    assert refine(question="?").answer == "a b"
    assert len(lm.calls) == 3


class Tagger(lmbridge.Module):
    """Sets a ContextVar of its own, then reads it back after the other tasks had a chance to run."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def forward(self, name: str) -> lmbridge.Prediction:  # type: ignore[override]
        inherited = tag.get()
        tag.set(name)
        with lmbridge.context(num_threads=len(name)):
            self.barrier.wait(5)
            return lmbridge.Prediction(inherited=inherited, mine=tag.get(), threads=lmbridge.current().num_threads)


def test_parallel_keeps_each_tasks_context_apart() -> None:
    barrier = threading.Barrier(3)
    module = Tagger(barrier)
    token = tag.set("caller")
    try:
        results = lmbridge.Parallel(num_threads=3)([(module, {"name": n}) for n in ("a", "bb", "ccc")])
    finally:
        tag.reset(token)
    assert [r.inherited for r in results] == ["caller"] * 3
    assert [r.mine for r in results] == ["a", "bb", "ccc"]
    assert [r.threads for r in results] == [1, 2, 3]
    assert tag.get() == "none"


def test_parallel_workers_see_the_callers_settings_and_trackers() -> None:
    lm = ScriptedLM(lambda messages: {"answer": messages[-1]["content"].split("Question: ")[1].split("\n")[0]})
    qa = lmbridge.Predict("question -> answer")
    examples = [lmbridge.Example(question=f"q{i}", answer="x").with_inputs("question") for i in range(5)]
    with lmbridge.context(lm=lm), lmbridge.track_usage() as tracker:
        results = lmbridge.Parallel(num_threads=2)([(qa, ex) for ex in examples])
    assert [r.answer for r in results] == [f"q{i}" for i in range(5)]
    assert tracker.usage.calls == 5


def test_parallel_error_budget() -> None:
    def flaky(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x * 10

    results, failed, errors = lmbridge.Parallel(num_threads=2, return_failed_examples=True)(
        [(flaky, {"x": i}) for i in range(4)])
    assert results == [0, None, 20, None]
    assert sorted(f["x"] for f in failed) == [1, 3] and len(errors) == 2
    with pytest.raises(lmbridge.EvaluationError, match="max_errors=1") as info:
        lmbridge.Parallel(num_threads=1, max_errors=1)([(flaky, {"x": i}) for i in range(6)])
    assert isinstance(info.value.__cause__, ValueError)


def test_parallel_takes_positional_and_single_inputs() -> None:
    def pair(a: int, b: int) -> int:
        return a - b

    assert lmbridge.Parallel(num_threads=2)([(pair, (5, 2)), (pair, [1, 1]), (str, 7)]) == [3, 0, "7"]
    assert lmbridge.Parallel()([]) == []
