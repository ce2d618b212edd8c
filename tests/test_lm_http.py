"""lmbridge.LM through the real LiteLLM against a scripted OpenAI-compatible server on 127.0.0.1.

The fake server counts every request it receives, so these tests also show that neither LiteLLM nor
the OpenAI SDK retries on its own: every retry is bridge's, and it is counted in Usage.retries.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Reply, calls, fail, ok, raw, slow

import lmbridge
import lmbridge.lm._client
from lmbridge.lm._cache import Cache

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "Say hi"}]
CONTEXT_MESSAGE = ("This model's maximum context length is 8192 tokens. However, your messages resulted in "
                   "9000 tokens. Please reduce the length of the messages.")


@pytest.fixture(scope="module")
def _shared_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as s:
        yield s


@pytest.fixture
def server(_shared_server: FakeOpenAI) -> FakeOpenAI:
    _shared_server.reset([ok()])
    return _shared_server


def make_lm(server: FakeOpenAI, **options: object) -> lmbridge.LM:
    options.setdefault("cache", False)
    return lmbridge.LM("openai/fake", api_base=server.base_url, api_key="none", backoff=0.01, **options)  # type: ignore[arg-type]


def script(server: FakeOpenAI, *replies: Reply) -> None:
    server.reset(list(replies))


def litellm_exception(exc: BaseException) -> BaseException:
    cause = exc.__cause__
    assert cause is not None, f"{type(exc).__name__} was not raised from the original error"
    origin = f"{type(cause).__module__}.{type(cause).__name__}"
    assert origin.startswith("litellm."), f"cause is {origin}"
    return cause


def test_success_returns_text_and_token_usage(server: FakeOpenAI) -> None:
    script(server, ok("Hello there"))
    completion = make_lm(server).complete(MESSAGES)
    assert completion.text == "Hello there"
    usage = completion.usage
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (1, 7, 3)
    assert server.count == 1
    body = server.requests[0]
    assert body["messages"] == MESSAGES
    assert body["temperature"] == 0.0


def test_429_is_retried_honouring_retry_after(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(429, "Rate limit reached", Retry_After="0.2"), fail(429, Retry_After="0"), ok("done"))
    completion = make_lm(server).complete(MESSAGES)
    assert completion.text == "done"
    assert completion.usage.retries == 2
    assert server.count == 3
    assert waits == [pytest.approx(0.2), 0.0]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_backoff(server: FakeOpenAI, waits: list[float], status: int) -> None:
    script(server, fail(status, "overloaded"), fail(status, "overloaded"), ok("done"))
    lm = make_lm(server)
    with lmbridge.track_usage() as tracker:
        assert lm.complete(MESSAGES).text == "done"
    assert server.count == 3
    assert tracker.usage.retries == 2
    assert len(waits) == 2 and all(0 < w < 0.1 for w in waits)  # backoff=0.01, doubled, with jitter


def test_503_retry_after_is_honoured(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(503, "maintenance", Retry_After="0.3"), ok("back"))
    assert make_lm(server).complete(MESSAGES).text == "back"
    assert waits == [pytest.approx(0.3)]


def test_timeout_is_retried(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, slow(1.5), ok("in time"))
    completion = make_lm(server, timeout=0.3).complete(MESSAGES)
    assert completion.text == "in time"
    assert completion.usage.retries == 1
    assert server.count == 2


def test_timeouts_spent_raise_lm_timeout_error(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, slow(1.0))
    with pytest.raises(lmbridge.LMTimeoutError) as info:
        make_lm(server, timeout=0.2, num_retries=1).complete(MESSAGES)
    assert info.value.attempts == 2
    assert server.count == 2
    litellm_exception(info.value)


def test_rate_limit_retries_spent_raise_rate_limit_error(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(429, "quota", Retry_After="0"))
    lm = make_lm(server, num_retries=2)
    with lmbridge.track_usage() as tracker, pytest.raises(lmbridge.RateLimitError) as info:
        lm.complete(MESSAGES)
    assert server.count == 3
    assert info.value.attempts == 3
    assert info.value.status_code == 429
    assert tracker.usage.retries == 2
    assert isinstance(info.value, lmbridge.LMError)
    litellm_exception(info.value)


@pytest.mark.parametrize("reply", [fail(401, "Invalid API Key"),
                                   fail(401, "bad key", error_type="invalid_request_error"),
                                   fail(403, "forbidden")])
def test_auth_errors_are_not_retried(server: FakeOpenAI, waits: list[float], reply: Reply) -> None:
    script(server, reply, ok("never"))
    with pytest.raises(lmbridge.AuthenticationError) as info:
        make_lm(server).complete(MESSAGES)
    assert server.count == 1
    assert waits == []
    assert info.value.status_code == reply.status
    litellm_exception(info.value)


def test_context_window_error_is_not_retried(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(400, CONTEXT_MESSAGE), ok("never"))
    with pytest.raises(lmbridge.ContextWindowError) as info:
        make_lm(server).complete(MESSAGES)
    assert server.count == 1
    assert waits == []
    assert "maximum context length" in str(info.value)
    litellm_exception(info.value)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_client_errors_are_lm_errors_not_retried(server: FakeOpenAI, waits: list[float],
                                                        status: int) -> None:
    script(server, fail(status, "nope"), ok("never"))
    with pytest.raises(lmbridge.LMError) as info:
        make_lm(server).complete(MESSAGES)
    assert type(info.value) is lmbridge.LMError
    assert info.value.status_code == status
    assert server.count == 1
    litellm_exception(info.value)


UNREADABLE_200 = [
    raw('{"choices": []}'), raw("not json"), raw('{"id": "no choices key"}'), raw(""), raw('{"choices": null}'),
    raw('{"choices": [{"index": 0, "message": null}]}'), raw("[1, 2, 3]"), raw('"just a string"'),
    raw('{"choices": [{"message": {"role": "assistant", "content": 42}}]}'),
    raw("<html><body><h1>502 Bad Gateway</h1> proxy says hello</body></html>", Content_Type="text/html"),
    raw("<html><body>login page of a captive portal</body></html>"),
    raw('{"choices": [{"index": 0, "message": {"role": "assistant", "content": "cut'),
]


@pytest.mark.parametrize("reply", UNREADABLE_200, ids=lambda r: (r.body or "empty")[:30])
def test_a_completed_answer_that_cannot_be_read_is_never_re_sent(server: FakeOpenAI, waits: list[float],
                                                                 reply: Reply) -> None:
    """The server completed (and billed) the request: it raises at once, with the real status."""
    script(server, reply, ok("never"))
    with pytest.raises(lmbridge.LMError) as info:
        make_lm(server, num_retries=3).complete(MESSAGES)
    assert server.count == 1, "a completed request was sent again"
    assert waits == []
    assert info.value.status_code == 200
    assert info.value.attempts == 1
    assert "not re-sent" in str(info.value)


@pytest.mark.parametrize("body", ["not json at all", "<html><body>Bad Gateway</body></html>"])
def test_the_error_quotes_an_excerpt_of_the_body(server: FakeOpenAI, waits: list[float], body: str) -> None:
    script(server, raw(body * 50))
    with pytest.raises(lmbridge.LMError) as info:
        make_lm(server).complete(MESSAGES)
    assert body[:12] in str(info.value)
    assert len(str(info.value)) < 600  # an excerpt, not the whole body


def test_the_async_path_never_re_sends_a_completed_answer(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, raw("not json"), ok("never"))
    with pytest.raises(lmbridge.LMError) as info:
        asyncio.run(make_lm(server).acomplete(MESSAGES))
    assert server.count == 1 and waits == [] and info.value.status_code == 200


def test_an_unreadable_error_page_from_a_failing_server_is_retried(server: FakeOpenAI, waits: list[float]) -> None:
    """A 502 with an HTML body: the server did not complete the request, so it is sent again."""
    script(server, raw("<html>Bad Gateway</html>", status=502, Content_Type="text/html"), ok("back"))
    completion = make_lm(server).complete(MESSAGES)
    assert completion.text == "back" and server.count == 2 and completion.usage.retries == 1


def test_a_missing_api_key_is_an_authentication_error_and_not_retried(
        server: FakeOpenAI, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lm = lmbridge.LM("openai/gpt-4o-mini", api_base=server.base_url, cache=False, backoff=0.01)
    with pytest.raises(lmbridge.AuthenticationError) as info:
        lm.complete(MESSAGES)
    assert waits == [] and info.value.attempts == 1
    assert server.count == 0  # refused before anything was sent
    assert "api_key" in str(info.value).lower() or "api key" in str(info.value).lower()
    assert info.value.status_code is None  # no server answered; not LiteLLM's made-up 500


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-5", "soon", "", "1e999", "0x10"])
def test_a_retry_after_that_is_not_a_wait_falls_back_to_backoff(server: FakeOpenAI, waits: list[float],
                                                              value: str) -> None:
    script(server, fail(429, "slow down", Retry_After=value), fail(503, Retry_After=value), ok("done"))
    assert make_lm(server).complete(MESSAGES).text == "done"
    assert len(waits) == 2
    assert all(math.isfinite(w) and 0 < w < 0.1 for w in waits), waits  # the backoff, from 0.01 s


def test_retry_after_is_filled_on_the_error_from_the_real_response(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(429, "quota", Retry_After="7"))
    with pytest.raises(lmbridge.RateLimitError) as info:
        make_lm(server, num_retries=0).complete(MESSAGES)
    assert info.value.retry_after == 7.0
    script(server, fail(503, "later", Retry_After_Ms="1500"))
    with pytest.raises(lmbridge.LMError) as info:
        make_lm(server, num_retries=1).complete(MESSAGES)
    assert info.value.retry_after == 1.5 and waits == [1.5]
    script(server, fail(400, "bad request"))
    with pytest.raises(lmbridge.LMError) as info:
        make_lm(server).complete(MESSAGES)
    assert info.value.retry_after is None


def test_retry_after_as_an_http_date(server: FakeOpenAI, waits: list[float]) -> None:
    from email.utils import formatdate

    script(server, fail(429, Retry_After=formatdate(time.time() + 30, usegmt=True)), ok("done"))
    assert make_lm(server).complete(MESSAGES).text == "done"
    assert 25 < waits[0] <= 31


def test_null_content_is_an_empty_completion(server: FakeOpenAI) -> None:
    message = '{"role": "assistant", "content": null}'
    script(server, raw(f'{{"choices": [{{"index": 0, "message": {message}, "finish_reason": "stop"}}]}}'))
    assert make_lm(server).complete(MESSAGES).text == ""


def test_unreachable_server_is_an_lm_error(waits: list[float]) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lm = lmbridge.LM("openai/fake", api_base=f"http://127.0.0.1:{port}/v1", api_key="none", cache=False,
                   num_retries=1, backoff=0.01)
    with pytest.raises(lmbridge.LMError) as info:
        lm.complete(MESSAGES)
    assert info.value.attempts == 2  # a connection error is transient
    litellm_exception(info.value)


def test_async_path_retries_and_maps_errors(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(503), ok("async ok"), fail(401, "Invalid API Key"))
    lm = make_lm(server)
    completion = asyncio.run(lm.acomplete(MESSAGES))
    assert completion.text == "async ok"
    assert completion.usage.retries == 1
    with pytest.raises(lmbridge.AuthenticationError) as info:
        asyncio.run(lm.acomplete(MESSAGES))
    litellm_exception(info.value)
    assert server.count == 3


def test_predict_over_http_with_json_mode(server: FakeOpenAI) -> None:
    script(server, ok('{"answer": 42}'))
    predict = lmbridge.Predict("question -> answer: int", lm=make_lm(server), format=lmbridge.JSONFormat())
    assert predict(question="6*7?").answer == 42
    assert server.requests[0]["response_format"] == {"type": "json_object"}


def test_cache_hit_skips_the_server_and_keys_hold_no_secrets(server: FakeOpenAI, tmp_path: Path) -> None:
    script(server, ok("cached answer"))
    first = make_lm(server, cache=Cache(tmp_path))
    assert first.complete(MESSAGES).text == "cached answer"
    other_key = lmbridge.LM("openai/fake", api_base=server.base_url, api_key="a-different-key",
                          cache=Cache(tmp_path), backoff=0.01)
    again = other_key.complete(MESSAGES)
    assert again.cached and again.text == "cached answer"
    assert server.count == 1
    assert b"a-different-key" not in (tmp_path / "completions.sqlite").read_bytes()


def test_network_beyond_loopback_is_blocked_in_tests() -> None:
    with socket.socket() as s, pytest.raises(RuntimeError, match="tests may not reach the network"):
        s.connect(("93.184.216.34", 80))
    with socket.socket(socket.AF_INET6) as s, pytest.raises(RuntimeError, match="blocked"):
        s.connect_ex(("2606:2800:220:1::", 443, 0, 0))


def test_network_guard_stops_litellm_too(waits: list[float]) -> None:
    lm = lmbridge.LM("openai/gpt-4o-mini", api_base="http://10.255.255.1:9/v1", api_key="sk-test", cache=False,
                   num_retries=0)
    with pytest.raises(lmbridge.LMError) as info:
        lm.complete(MESSAGES)
    assert "tests may not reach the network" in repr(_root_cause(info.value))


def _root_cause(exc: BaseException) -> BaseException:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            return exc
        exc = nxt
    return exc


# -- native tool calls ---------------------------------------------------------------------------

ADD_SPEC = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
TOOLS = {"tools": [ADD_SPEC], "tool_choice": "auto"}


def test_tools_are_sent_and_tool_calls_come_back_parsed(server: FakeOpenAI) -> None:
    script(server, calls(("add", {"a": 2, "b": 3}), ("add", '{"a": 1,'), content="Let me add."))
    completion = make_lm(server).complete(MESSAGES, TOOLS)
    body = server.requests[0]
    assert body["tools"] == [ADD_SPEC] and body["tool_choice"] == "auto"
    assert not any(k.startswith("_") for k in body), "no LiteLLM-internal flag reaches the server"
    good, bad = completion.tool_calls
    assert (good.name, good.args, good.raw, good.id, good.error) == ("add", {"a": 2, "b": 3}, '{"a": 2, "b": 3}',
                                                                     "call_0", None)
    assert bad.args is None and bad.raw == '{"a": 1,' and "not valid JSON" in (bad.error or "")
    assert completion.text == "Let me add."
    assert (completion.usage.calls, completion.usage.prompt_tokens) == (1, 7)


def test_a_plain_reply_to_a_tool_request_has_no_tool_calls(server: FakeOpenAI) -> None:
    script(server, ok("no tools needed"))
    completion = make_lm(server).complete(MESSAGES, TOOLS)
    assert completion.tool_calls == () and completion.text == "no tools needed"


def test_tool_requests_are_retried_and_mapped_like_plain_ones(server: FakeOpenAI, waits: list[float]) -> None:
    script(server, fail(503), calls(("add", {"a": 1, "b": 1})))
    completion = make_lm(server).complete(MESSAGES, TOOLS)
    assert completion.tool_calls[0].args == {"a": 1, "b": 1}
    assert completion.usage.retries == 1 and server.count == 2
    assert all(r["tools"] == [ADD_SPEC] for r in server.requests)
    script(server, fail(401, "bad key"))
    with pytest.raises(lmbridge.AuthenticationError):
        make_lm(server).complete(MESSAGES, TOOLS)


def test_async_tool_request(server: FakeOpenAI) -> None:
    script(server, calls(("add", {"a": 5, "b": 6})))
    completion = asyncio.run(make_lm(server).acomplete(MESSAGES, TOOLS))
    assert completion.tool_calls[0].args == {"a": 5, "b": 6}
    assert server.requests[0]["tools"] == [ADD_SPEC]


def test_tool_calls_are_cached_under_a_key_that_includes_the_tools(server: FakeOpenAI, tmp_path: Path) -> None:
    script(server, calls(("add", {"a": 2, "b": 2})), ok("plain"))
    lm = make_lm(server, cache=Cache(tmp_path))
    first = lm.complete(MESSAGES, TOOLS)
    again = make_lm(server, cache=Cache(tmp_path)).complete(MESSAGES, TOOLS)  # the disk copy
    assert again.cached and again.tool_calls == first.tool_calls and server.count == 1
    plain = lm.complete(MESSAGES)
    assert not plain.cached and plain.text == "plain" and server.count == 2
    assert "[tool call] add(" in lm.inspect_history(2)
