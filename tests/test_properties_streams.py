"""Property suites for streamed answers and stop reasons, generated rather than listed:

* through the real LiteLLM against the loopback server, streamed bodies of every kind (empty, HTML, a
  JSON completion, SSE events with garbage among them, truncated ones, a connection cut midway) give a
  prediction whose answer the events state, or a documented error; an answer cut at its token limit
  never gives a value;
* in process, a backend whose stream yields any mix of text, a final result with any ``finish_reason``,
  transient and final failures, or no result at all: ``stream``/``complete`` return only what the
  backend stated, untruncated, or raise an ``LMError``; nothing else escapes.

``LMBRIDGE_PROPERTY_EXAMPLES`` sets the number of cases per property (the suite runs few; a benchmark
run sets 50000).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.lm import RawResult, TransientError, TruncatedError

EXAMPLES = int(os.environ.get("LMBRIDGE_PROPERTY_EXAMPLES", "0") or 0)
HTTP = settings(max_examples=EXAMPLES or 25, deadline=None, suppress_health_check=list(HealthCheck))
LOCAL = settings(max_examples=EXAMPLES or 200, deadline=None, suppress_health_check=list(HealthCheck))
REASONS = st.one_of(st.sampled_from(["stop", "length", "max_tokens", "tool_calls", "content_filter", "LENGTH"]),
                    st.none(), st.text(max_size=8))
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def _chunk(delta: dict[str, Any], finish: str | None) -> str:
    return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"


event = st.one_of(
    words.map(lambda text: ("text", text)),
    REASONS.map(lambda reason: ("finish", reason)),
    st.sampled_from([("line", "data: {not json\n\n"), ("line", ": a comment\n\n"), ("line", "\n"),
                     ("line", "event: ping\n\n"), ("line", "data: [DONE]\n\n"), ("line", "data: \n\n")]),
)
whole_body = st.sampled_from([
    "", "<html><body>502 Bad Gateway</body></html>", "data: [DONE]\n\n", "not an event stream",
    json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Answer: Paris"},
                             "finish_reason": "stop"}]}),
])


def _body(events: list[tuple[str, Any]], done: bool) -> tuple[str, str, str | None]:
    """The SSE body, the text its events state, and the stop reason of its last finish event."""
    parts, stated, reason = [], "", None
    for kind, value in events:
        if kind == "text":
            parts.append(_chunk({"content": value}, None))
            stated += value
        elif kind == "finish":
            parts.append(_chunk({}, value))
            reason = value
        else:
            parts.append(value)
    return "".join(parts) + ("data: [DONE]\n\n" if done else ""), stated, reason


@pytest.fixture(scope="module")
def server() -> Any:
    with FakeOpenAI() as s:
        yield s


def _predict(server: FakeOpenAI, reply: Reply, streamed: str) -> tuple[Any, BaseException | None]:
    server.reset([reply])
    lm = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", cache=False, num_retries=0,
                     max_tokens=5)
    program = lmbridge.Predict("question -> answer", lm=lm)
    try:
        if streamed == "stream":
            return list(program.stream(question="Capital of France?"))[-1].prediction, None
        if streamed == "astream":
            async def drain() -> Any:
                return [e async for e in program.astream(question="Capital of France?")][-1].prediction
            return asyncio.run(drain()), None
        return program(question="Capital of France?"), None
    except (lmbridge.LMError, lmbridge.ParseError) as error:  # the documented ones; anything else fails
        return None, error


@pytest.mark.parametrize("way", ["stream", "astream"])
@HTTP
@given(events=st.lists(event, max_size=8), done=st.booleans(), header=st.sampled_from(["Answer: ", "", "answer:"]))
def test_a_streamed_body_gives_only_what_its_events_state(server: FakeOpenAI, way: str,
                                                          events: list[tuple[str, Any]], done: bool,
                                                          header: str) -> None:
    body, stated, reason = _body([("text", header), *events], done)
    prediction, error = _predict(server, raw(body, Content_Type="text/event-stream"), way)
    if prediction is not None:
        assert prediction.answer.strip() in stated, (body, prediction.answer)  # an empty field is stated too
        assert reason != "length"  # OpenAI's word for a cut answer (LiteLLM maps other spellings its own way)
    else:
        assert error is not None
    assert server.count == 1  # an answered request is never sent again


@pytest.mark.parametrize("way", ["stream", "astream", "complete"])
@HTTP
@given(body=whole_body, cut=st.integers(min_value=0, max_value=3))
def test_a_body_that_is_not_an_event_stream_or_a_cut_stream_never_gives_an_empty_answer(
        server: FakeOpenAI, way: str, body: str, cut: int) -> None:
    for reply in (raw(body, Content_Type="text/html"), Reply(content="Answer: Paris is the capital", cut_after=cut)):
        prediction, error = _predict(server, reply, way)
        if prediction is not None:
            assert prediction.answer.strip() and prediction.answer in "Paris is the capital"
        else:
            assert error is not None


# -- in process: any stream a backend can produce --------------------------------------------------------

step = st.one_of(
    words.map(lambda text: ("text", text)),
    st.tuples(words, REASONS).map(lambda pair: ("result", pair)),
    st.sampled_from([("transient", None), ("final", None), ("stop", None)]),
)


class Scripted(lmbridge.BaseLM):
    """Each attempt plays the next script: text deltas, a result, a failure, or an end without result."""

    def __init__(self, attempts: list[list[tuple[str, Any]]]) -> None:
        super().__init__("scripted-stream", cache=False, num_retries=2, backoff=0.0)
        self.attempts = attempts
        self.stated: list[RawResult] = []

    def send(self, messages: Any, params: Any, signature: Any, fmt: Any) -> RawResult:
        items = list(self.send_stream(messages, params, signature, fmt))
        if not items or not isinstance(items[-1], RawResult):
            raise lmbridge.LMError("the backend ended without a result")
        return items[-1]

    def send_stream(self, messages: Any, params: Any, signature: Any, fmt: Any) -> Any:
        script = self.attempts.pop(0) if self.attempts else [("stop", None)]
        for kind, value in script:
            if kind == "text":
                yield value
            elif kind == "result":
                raw_result = RawResult(value[0], 1, 1, finish_reason=value[1])
                self.stated.append(raw_result)
                yield raw_result
                return
            elif kind == "transient":
                raise TransientError(lmbridge.LMError("lost", status_code=503), 0.0)
            elif kind == "final":
                raise lmbridge.LMError("refused", status_code=400)
            else:
                return


@LOCAL
@given(attempts=st.lists(st.lists(step, max_size=5), min_size=1, max_size=4), streamed=st.booleans())
def test_a_backend_stream_gives_what_it_stated_untruncated_or_an_lm_error(
        attempts: list[list[tuple[str, Any]]], streamed: bool) -> None:
    lm = Scripted([list(a) for a in attempts])
    reads = lmbridge.Predict("question -> answer").signature  # a caller that reads values
    try:
        if streamed:
            *deltas, completion = list(lm.stream([{"role": "user", "content": "q"}], signature=reads))
        else:
            deltas, completion = [], lm.complete([{"role": "user", "content": "q"}], signature=reads)
    except TruncatedError:
        assert lm.stated and lm.stated[-1].finish_reason is not None
        assert lm.stated[-1].finish_reason.strip().lower() in ("length", "max_tokens")
        return
    except lmbridge.LMError:
        return
    assert isinstance(completion, lmbridge.Completion) and lm.stated
    assert completion.text == lm.stated[-1].text and completion.finish_reason == lm.stated[-1].finish_reason
    assert (completion.finish_reason or "").strip().lower() not in ("length", "max_tokens")
    assert all(isinstance(d, str) for d in deltas)
