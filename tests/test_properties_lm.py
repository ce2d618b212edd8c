"""Property tests for the LM, cache and persistence boundaries: adversarial saved state, cache
entries and HTTP bodies. Each asserts the contract of its entry point: loading raises only
StateError and a failed load changes nothing; a cache entry is a valid hit or a counted miss, never
an error; an HTTP answer gives a completion or an LMError, and a request the server completed is
never sent again (the fake server on 127.0.0.1 counts what it receives).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from fake_openai import FakeOpenAI, Reply, fail, raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.lm._cache import Cache
from lmbridge.testing import ScriptedLM

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HTTP = settings(FAST, max_examples=20)  # each example is a real LiteLLM request to the loopback server

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
hostile_text = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, "NaN", "-Infinity", "null",
                     "\x00\x1b[31m", "1" * 5000, '"\\ud800"', "{}", "[]", "\ufeff{}"]),
)


# -- saved state --------------------------------------------------------------------------------------

class Classify(lmbridge.Signature):
    """Label the text."""

    text: str = lmbridge.InputField(desc="the text")
    label: Literal["a", "b"] = lmbridge.OutputField()


class Pipeline(lmbridge.Module):
    def __init__(self) -> None:
        self.classify = lmbridge.Predict(Classify, format=lmbridge.JSONFormat())
        self.explain = lmbridge.ChainOfThought("text, label -> explanation")

    def forward(self, text: str) -> lmbridge.Prediction:
        return self.explain(text=text, label=self.classify(text=text).label)


def _program() -> Pipeline:
    program = Pipeline()
    program.classify.instructions = "Pick a or b."
    program.classify.demos = [lmbridge.Example(text="t", label="a")]
    return program


GOOD_STATE = _program().dump_state()


def _snapshot(program: lmbridge.Module) -> str:
    return json.dumps(program.dump_state()["predictors"], sort_keys=True, default=repr) + repr(program.report)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


ALL_PATHS = list(_paths(GOOD_STATE))


@st.composite
def mutated_states(draw: st.DrawFn) -> Any:
    """The good state with one to three places replaced by arbitrary JSON (or removed)."""
    state = json.loads(json.dumps(GOOD_STATE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        replacement = draw(json_values | st.sampled_from(["lmbridge.program", 1, 0, -1, True, {}, []]))
        if not path:
            state = replacement
            continue
        holder = state
        try:
            for key in path[:-1]:
                holder = holder[key]
            if draw(st.booleans()) and isinstance(holder, dict):
                holder.pop(path[-1], None)
            else:
                holder[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            continue
    return state


@FAST
@given(state=mutated_states() | json_values)
def test_loading_adversarial_state_raises_only_state_error_and_changes_nothing(state: Any) -> None:
    program = _program()
    before = _snapshot(program)
    try:
        program.load_state(state)
    except lmbridge.StateError:
        assert _snapshot(program) == before
    else:
        assert program.dump_state()["format"] == "lmbridge.program"


@FAST
@given(content=hostile_text | json_values.map(lambda v: json.dumps(v)) | mutated_states().map(json.dumps))
def test_loading_adversarial_files_raises_only_state_error(content: str) -> None:
    program = _program()
    before = _snapshot(program)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.json"
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            program.load(path)
        except lmbridge.StateError:
            assert _snapshot(program) == before


# -- cache entries ------------------------------------------------------------------------------------

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "hi"}]


@FAST
@given(value=hostile_text | json_values.map(lambda v: json.dumps(v))
       | st.fixed_dictionaries({"text": json_values, "tool_calls": json_values}).map(json.dumps)
       | st.fixed_dictionaries({"text": st.text(max_size=5), "prompt_tokens": json_values,
                                "tool_calls": st.lists(st.dictionaries(st.sampled_from(["name", "raw", "id"]),
                                                                       json_values), max_size=2)}).map(json.dumps))
def test_an_adversarial_cache_entry_is_a_valid_hit_or_a_miss(value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ScriptedLM(["stored"], cache=Cache(Path(tmp))).complete(MESSAGES)
        with sqlite3.connect(Path(tmp) / "completions.sqlite") as conn:
            conn.execute("UPDATE completions SET value = ?", (value,))
        cache = Cache(Path(tmp))
        completion = ScriptedLM(["fresh"], cache=cache).complete(MESSAGES)
        assert cache.disk is not None
        if completion.cached:  # a hit only for a record of the right shape
            record = json.loads(value)
            assert completion.text == record["text"] and cache.disk.corrupt_entries == 0
        else:
            assert completion.text == "fresh" and cache.disk.corrupt_entries == 1


# -- HTTP bodies from a fake server -------------------------------------------------------------------

def _completion(choices: Any) -> str:
    return json.dumps({"id": "x", "object": "chat.completion", "model": "fake", "choices": choices,
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


message_like = st.fixed_dictionaries({"role": st.sampled_from(["assistant", "user", None]), "content": json_values})
bodies = st.one_of(
    hostile_text,
    json_values.map(json.dumps),
    st.lists(st.fixed_dictionaries({"index": json_values, "message": message_like | json_values}), max_size=2)
    .map(_completion),
    json_values.map(_completion),
    st.sampled_from(["<html><body>502</body></html>", "", " ", "data: [DONE]\n\n"]),
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as s:
        yield s


@HTTP
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/html", "text/plain"]))
def test_an_adversarial_200_body_gives_a_completion_or_an_lm_error_and_is_never_re_sent(
        server: FakeOpenAI, waits: list[float], body: str, content_type: str) -> None:
    server.reset([raw(body, Content_Type=content_type)])
    lm = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", cache=False, num_retries=2,
                   backoff=0.001)
    try:
        completion = lm.complete(MESSAGES)
    except lmbridge.LMError as exc:
        assert exc.attempts == 1
    else:
        assert isinstance(completion.text, str)
    assert server.count == 1, "a completed request was sent again"


@HTTP
@given(status=st.sampled_from([400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]),
       body=bodies, retry_after=st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=8)
       | st.sampled_from(["nan", "inf", "-1", "0"]))
def test_an_adversarial_error_answer_is_an_lm_error_and_only_unfinished_ones_are_retried(
        server: FakeOpenAI, waits: list[float], status: int, body: str, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    reply = Reply(status, body=body, headers=headers) if body.strip() else fail(status, **headers)
    server.reset([reply])
    waits.clear()
    lm = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", cache=False, num_retries=1,
                   backoff=0.001)
    with pytest.raises(lmbridge.LMError) as info:
        lm.complete(MESSAGES)
    retried = status in (408, 429) or status >= 500
    assert server.count == (2 if retried else 1), f"status {status}: {server.count} requests"
    assert info.value.status_code == status
    assert all(0 <= w <= 60 for w in waits)
