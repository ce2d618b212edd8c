"""Issue 24's LM-layer defects, through the real LiteLLM against a scripted OpenAI-compatible server:
a streamed 200 that holds no events is refused (never an empty answer, never cached), an answer cut at
its token limit raises ``TruncatedError`` (streamed or not, fresh or from the cache, never re-sent), and
a cache file locked by another process is skipped quickly, with one warning."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, ok, raw

import lmbridge
from lmbridge.lm import Cache, TruncatedError

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "Capital of France?"}]
SSE = {"Content_Type": "text/event-stream"}


def _chunk(delta: dict[str, Any], finish: str | None) -> str:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n"


def completion_json(content: str, finish: str) -> str:
    return json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": finish}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


NO_EVENTS = {
    "an HTML page": raw("<html><body>Bad gateway</body></html>", Content_Type="text/html"),
    "an empty stream": raw("", **SSE),
    "a lone [DONE]": raw("data: [DONE]\n\n", **SSE),
    "a plain JSON completion": raw(completion_json("Answer: Paris", "stop"), Content_Type="application/json"),
}
CUT_STREAM = raw(_chunk({"role": "assistant", "content": "Answer: Par"}, None) + _chunk({}, "length")
                 + "data: [DONE]\n\n", **SSE)


def make_lm(server: FakeOpenAI, **options: Any) -> lmbridge.LM:
    options.setdefault("cache", False)
    return lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", backoff=0.01, **options)


def predictor(lm: lmbridge.LM) -> lmbridge.Predict:
    return lmbridge.Predict("question -> answer", lm=lm)


async def _drain(events: Any) -> list[Any]:
    return [e async for e in events]


@pytest.mark.parametrize("body", list(NO_EVENTS))
@pytest.mark.parametrize("way", ["stream", "astream", "streamify"])
def test_a_streamed_body_without_events_is_an_lm_error_never_an_empty_answer(body: str, way: str,
                                                                            tmp_path: Path) -> None:
    with FakeOpenAI([NO_EVENTS[body], ok("Answer: Paris")]) as server:
        lm = make_lm(server, cache=Cache(tmp_path))
        program = predictor(lm)
        with pytest.raises(lmbridge.LMError, match="no stream events"):
            if way == "stream":
                list(program.stream(question="Capital of France?"))
            elif way == "astream":
                asyncio.run(_drain(program.astream(question="Capital of France?")))
            else:
                asyncio.run(_drain(lmbridge.streamify(program)(question="Capital of France?")))
        assert server.count == 1  # answered, so not re-sent
        assert program(question="Capital of France?").answer == "Paris"  # the failure was not cached
        assert server.count == 2


def test_a_truncated_answer_raises_and_reading_it_from_the_cache_raises_the_same(tmp_path: Path) -> None:
    with FakeOpenAI([raw(completion_json("Answer: Par", "length"), Content_Type="application/json")]) as server:
        lm = make_lm(server, cache=Cache(tmp_path), max_tokens=3)
        with pytest.raises(TruncatedError) as info:
            predictor(lm)(question="Capital of France?")
        assert info.value.limit == 3 and "max_tokens" in str(info.value)
        assert server.count == 1 and lm.usage.calls == 1  # billed once, never re-sent
        with pytest.raises(TruncatedError):
            predictor(lm)(question="Capital of France?")
        assert server.count == 1  # from the cache, with the same error


@pytest.mark.parametrize("way", ["stream", "astream"])
def test_a_truncated_stream_raises_before_a_value_is_read(way: str) -> None:
    with FakeOpenAI([CUT_STREAM]) as server:
        program = predictor(make_lm(server, max_tokens=3))
        with pytest.raises(TruncatedError):
            if way == "stream":
                list(program.stream(question="Capital of France?"))
            else:
                asyncio.run(_drain(program.astream(question="Capital of France?")))
        assert server.count == 1


def test_a_raw_call_gets_the_cut_text_with_the_reason_it_stopped() -> None:
    cut = raw(completion_json("Par", "length"), Content_Type="application/json")
    with FakeOpenAI([ok("Paris"), cut]) as server:
        lm = make_lm(server, max_tokens=3)
        assert lm.complete(MESSAGES).finish_reason == "stop"
        cut_off = lm.complete(MESSAGES)  # no signature: no value is read, the caller sees why it stopped
        assert (cut_off.text, cut_off.finish_reason) == ("Par", "length")


def test_a_cache_file_locked_by_another_process_is_skipped_at_once_with_one_warning(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "completions.sqlite", isolation_level=None)  # another tool's handle
    holder.execute("CREATE TABLE completions (key TEXT PRIMARY KEY, value TEXT, created REAL)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with FakeOpenAI([ok("Answer: Paris")]) as server:
            lm = make_lm(server, cache=Cache(tmp_path))
            started = time.monotonic()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(3):
                    lm.complete(MESSAGES, {"rollout_id": _})
            elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert elapsed < 3.0, f"three calls took {elapsed:.1f}s behind a locked cache"
    notes = [w for w in caught if "disk cache" in str(w.message)]
    assert len(notes) == 1 and "locked" in str(notes[0].message)


def test_a_truncated_answer_in_evaluate_fails_that_example_only_and_is_counted() -> None:
    cut = raw(completion_json("Answer: Par", "length"), Content_Type="application/json")
    with FakeOpenAI([cut, ok("Answer: Rome")]) as server:
        program = predictor(make_lm(server, cache=False, max_tokens=3))
        devset = [lmbridge.Example(question="Capital of France?", answer="Paris").with_inputs("question"),
                  lmbridge.Example(question="Capital of Italy?", answer="Rome").with_inputs("question")]
        result = lmbridge.Evaluate(devset=devset, metric=lmbridge.metrics.exact_match("answer"), num_threads=1,
                                   display_progress=False)(program)
    assert result.errors == 1 and result.score == 50.0  # the cut answer scores 0 and is counted, the run goes on


@pytest.mark.parametrize(("text", "read"), [
    ("Answer: Paris\n\nQuestion: and the capital of Sp", "Paris"),  # answered, then ran on into a new block
    ("Answer: Paris\nThe capital of France is a ci", None),  # the answer's own lines were cut
    ("Answer: Paris, the capital of", None),  # cut inside the one line the answer stands on
])
def test_a_cut_off_answer_is_read_only_when_its_values_were_stated_before_the_cut(text: str, read: str | None) -> None:
    with FakeOpenAI([raw(completion_json(text, "length"), Content_Type="application/json")]) as server:
        program = predictor(make_lm(server, max_tokens=12))
        if read is None:
            with pytest.raises(TruncatedError):
                program(question="Capital of France?")
        else:
            assert program(question="Capital of France?").answer == read


def test_a_cut_off_answer_keeps_its_call_in_a_compile_budget() -> None:
    from lmbridge.optimizers._support.budget import Budget

    cut = raw(completion_json("Answer: Par", "length"), Content_Type="application/json")
    with FakeOpenAI([cut]) as server:
        budget = Budget(max_lm_calls=1)
        program = predictor(budget.wrap(make_lm(server, max_tokens=3)))  # type: ignore[arg-type]
        with pytest.raises(TruncatedError):
            program(question="Capital of France?")
        assert budget.calls == 1 and server.count == 1  # billed, so counted: the cap is not exceeded later
