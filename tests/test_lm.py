"""BaseLM behaviour over ScriptedLM: retries and backoff, errors, usage, history, the cache path."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

import lmbridge
import lmbridge.lm._client
from lmbridge.lm._cache import Cache
from lmbridge.testing import ScriptedLM

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "hi"}]


def test_transient_errors_are_retried_and_counted(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("slow down", retry_after=1.5),
                     lmbridge.LMError("server error", status_code=503),
                     lmbridge.LMTimeoutError("timeout"),
                     "finally"], backoff=0.01)
    with lmbridge.track_usage() as tracker:
        completion = lm.complete(MESSAGES)
    assert completion.text == "finally"
    assert completion.usage.retries == 3
    assert completion.usage.calls == 1
    assert tracker.usage.retries == 3
    assert lm.usage.retries == 3
    assert len(lm.calls) == 4
    assert waits[0] == 1.5  # Retry-After honoured
    assert all(0 < w < 1 for w in waits[1:])  # exponential backoff from 0.01 s


def test_backoff_grows(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.LMError("e", status_code=500)] * 4 + ["ok"], num_retries=4, backoff=1.0)
    lm.complete(MESSAGES)
    assert len(waits) == 4
    # each wait is backoff * 2**attempt * a jitter in [0.5, 1.5)
    for attempt, w in enumerate(waits):
        assert 0.5 * 2**attempt <= w < 1.5 * 2**attempt


def test_retries_spent_raise_the_last_error(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("429")] * 3, num_retries=2)
    with lmbridge.track_usage() as tracker, pytest.raises(lmbridge.RateLimitError) as info:
        lm.complete(MESSAGES)
    assert info.value.attempts == 3
    assert len(lm.calls) == 3
    assert tracker.usage.retries == 2
    assert tracker.usage.calls == 0


@pytest.mark.parametrize("error", [lmbridge.AuthenticationError("bad key", status_code=401),
                                   lmbridge.ContextWindowError("too long", status_code=400),
                                   lmbridge.LMError("bad request", status_code=400)])
def test_non_retryable_errors_are_not_retried(error: lmbridge.LMError, waits: list[float]) -> None:
    lm = ScriptedLM([error, "never"])
    with pytest.raises(type(error)):
        lm.complete(MESSAGES)
    assert len(lm.calls) == 1
    assert waits == []
    assert lm.remaining == 1


def test_async_complete_retries_too(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("429", retry_after=0.25), "ok"])
    completion = asyncio.run(lm.acomplete(MESSAGES))
    assert completion.text == "ok"
    assert completion.usage.retries == 1
    assert waits == [0.25]


def test_retry_after_is_capped(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("429", retry_after=3600), "ok"])
    lm.complete(MESSAGES)
    assert waits == [60.0]


@pytest.mark.parametrize("hint", [float("nan"), float("inf"), -1.0, float("-inf")])
def test_a_retry_after_that_is_not_a_wait_never_reaches_sleep(waits: list[float], hint: float) -> None:
    """time.sleep(nan) raises ValueError, and inf would sleep forever: both fall back to the backoff."""
    lm = ScriptedLM([lmbridge.RateLimitError("429", retry_after=hint), "ok"], backoff=0.01)
    assert lm.complete(MESSAGES).text == "ok"
    assert len(waits) == 1 and math.isfinite(waits[0]) and 0 < waits[0] < 0.1
    assert asyncio.run(ScriptedLM([lmbridge.LMTimeoutError("t", retry_after=hint), "ok"], backoff=0.01)
                       .acomplete(MESSAGES)).text == "ok"
    assert len(waits) == 2 and math.isfinite(waits[1])


@pytest.mark.parametrize("value, expected", [
    ("2", 2.0), ("0", 0.0), (" 1.5 ", 1.5), ("nan", None), ("inf", None), ("-1", None), ("soon", None),
    ("", None), (None, None), ("1e999", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_retry_after_header_parsing(value: str | None, expected: float | None) -> None:
    from lmbridge.lm._litellm import parse_retry_after

    assert parse_retry_after(value) == expected
    assert parse_retry_after("250", millis=True) == 0.25
    assert parse_retry_after("nan", millis=True) is None


def test_usage_accumulates_on_the_lm() -> None:
    lm = ScriptedLM(["one answer", "two answers"])
    long: list[lmbridge.Message] = [{"role": "user", "content": "a prompt long enough to count"}]
    lm.complete(long)
    lm.complete(long, {"temperature": 0.5})
    assert lm.usage.calls == 2
    assert lm.usage.prompt_tokens > 0
    assert lm.usage.completion_tokens > 0


def test_history_is_bounded() -> None:
    lm = ScriptedLM(lambda m: m[-1]["content"].upper(), history_size=3)
    for i in range(10):
        lm.complete([{"role": "user", "content": f"prompt {i}"}])
    assert len(lm.history) == 3
    assert [h.completion for h in lm.history] == ["PROMPT 7", "PROMPT 8", "PROMPT 9"]


def test_inspect_history_prints_the_last_prompts(capsys: pytest.CaptureFixture[str]) -> None:
    lm = ScriptedLM(lambda m: "answer to " + m[-1]["content"])
    lmbridge.configure(lm=lm)
    for i in range(3):
        lm.complete([{"role": "user", "content": f"prompt {i}"}])
    text = lmbridge.inspect_history(2)
    out = capsys.readouterr().out
    assert "prompt 1" in out and "prompt 2" in out and "prompt 0" not in out
    assert "answer to prompt 2" in out
    assert text.strip() == out.strip()


def test_inspect_history_without_lm(capsys: pytest.CaptureFixture[str]) -> None:
    assert lmbridge.inspect_history() == ""
    assert "no LM" in capsys.readouterr().out


def test_call_shortcut() -> None:
    lm = ScriptedLM(lambda m: f"{len(m)}:{m[-1]['content']}")
    assert lm("hello") == "1:hello"


def test_cache_hit_does_not_call_the_backend(tmp_path: Path) -> None:
    lm = ScriptedLM(["first", "second"], cache=Cache(tmp_path))
    assert lm.complete(MESSAGES).text == "first"
    again = lm.complete(MESSAGES)
    assert again.text == "first"
    assert again.cached
    assert again.usage.cache_hits == 1 and again.usage.calls == 0
    assert len(lm.calls) == 1
    assert lm.complete(MESSAGES, {"temperature": 0.9}).text == "second"  # other params, other key


def test_rollout_id_busts_the_cache_without_being_sent(tmp_path: Path) -> None:
    sent: list[dict[str, object]] = []

    class Recording(ScriptedLM):
        def send(self, messages, params, signature, fmt):  # type: ignore[no-untyped-def]
            sent.append(dict(params))
            return super().send(messages, params, signature, fmt)

    lm = Recording(lambda m: f"call {len(sent)}", cache=Cache(tmp_path))
    a = lm.complete(MESSAGES, {"rollout_id": 1})
    b = lm.complete(MESSAGES, {"rollout_id": 2})
    c = lm.complete(MESSAGES, {"rollout_id": 1})
    assert a.text != b.text
    assert c.text == a.text and c.cached
    assert all("rollout_id" not in p for p in sent)


def test_cache_is_shared_between_lm_objects_with_the_same_model(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    ScriptedLM(["from first"], cache=cache).complete(MESSAGES)
    second = ScriptedLM(["never"], cache=cache)
    assert second.complete(MESSAGES).text == "from first"
    assert second.calls == []
    other_model = ScriptedLM(["other"], model="other", cache=cache)
    assert other_model.complete(MESSAGES).text == "other"


def test_failed_calls_are_not_cached(tmp_path: Path, waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.AuthenticationError("no"), "ok"], cache=Cache(tmp_path))
    with pytest.raises(lmbridge.AuthenticationError):
        lm.complete(MESSAGES)
    assert lm.complete(MESSAGES).text == "ok"


def test_usage_arithmetic() -> None:
    a = lmbridge.Usage(calls=1, prompt_tokens=10, completion_tokens=2, cost=None, retries=1)
    b = lmbridge.Usage(calls=2, cache_hits=1, prompt_tokens=5, cost=0.5, parse_retries=1)
    total = a + b
    assert (total.calls, total.cache_hits, total.prompt_tokens, total.completion_tokens) == (3, 1, 15, 2)
    assert total.cost == 0.5 and total.retries == 1 and total.parse_retries == 1
    assert total.total_tokens == 17
    assert (lmbridge.Usage() + lmbridge.Usage()).cost is None
    a.add(b)
    assert a == total


def test_function_calling_support_comes_from_litellm_unless_given() -> None:
    assert lmbridge.BaseLM("x").supports_function_calling() is False
    assert lmbridge.LM("openai/gpt-4o-mini").supports_function_calling() is True
    assert lmbridge.LM("openai/my-own-server-model").supports_function_calling() is False
    assert lmbridge.LM("openai/my-own-server-model", function_calling=True).supports_function_calling() is True
    assert lmbridge.LM("openai/gpt-4o-mini", function_calling=False).supports_function_calling() is False


def test_a_failing_support_lookup_means_no_native_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = lmbridge.lm._client._litellm()

    def broken(model: str) -> bool:
        raise RuntimeError("unknown provider")

    monkeypatch.setattr(litellm, "supports_function_calling", broken)
    assert lmbridge.LM("openai/gpt-4o-mini").supports_function_calling() is False


def test_function_calling_is_not_sent_as_a_request_parameter() -> None:
    lm = lmbridge.LM("openai/gpt-4o-mini", function_calling=True)
    assert "function_calling" not in lm.params


def test_tool_call_reading() -> None:
    from lmbridge.toolcalls import ToolCall, read_tool_calls

    built = ToolCall("add", {"a": 1})
    assert built.raw == '{"a": 1}' and built.error is None
    assert ToolCall.parse("finish", "").args == {} and ToolCall.parse("finish", None).args == {}
    assert ToolCall.parse("add", {"a": 1}).raw == '{"a": 1}'
    broken = ToolCall.parse("add", "{oops")
    assert broken.args is None and broken.raw == "{oops" and broken.error
    assert ToolCall.from_record(broken.to_record()) == broken
    calls = read_tool_calls([{"id": "c1", "function": {"name": "add", "arguments": '{"a": 2}'}},
                             {"function": {"name": ""}}])
    assert calls == (ToolCall("add", {"a": 2}, '{"a": 2}', "c1"),)
    assert read_tool_calls(None) == ()


# -- the embedded model's tool requests, through llama.cpp's real handler on a stand-in Llama ----

class FakeLlama:
    """Answers create_completion from a script and records each request; no model is loaded."""

    verbose = False

    def __init__(self, texts: list[str], template: str = "{{ '<|im_start|>' + m }}") -> None:
        self.texts = list(texts)
        self.requests: list[dict[str, object]] = []
        self.metadata = {"tokenizer.chat_template": template}

    def create_completion(self, **kwargs: object) -> dict[str, object]:
        self.requests.append(kwargs)
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "fake",
                "choices": [{"text": self.texts.pop(0), "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}

    def create_chat_completion(self, **kwargs: object) -> dict[str, object]:
        self.requests.append(kwargs)
        return {"choices": [{"message": {"role": "assistant", "content": self.texts.pop(0)}}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 1}}


def local_model(llama: FakeLlama, spec: Any = None) -> Any:
    pytest.importorskip("llama_cpp")
    from lmbridge.lm._local import LocalModel

    model = LocalModel(Path("/nowhere/fake.gguf"), spec)
    model._llama = llama
    return model


def add_spec() -> dict[str, object]:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return lmbridge.Tool(add).to_function_spec()


def test_local_tool_request_goes_through_the_function_calling_handler() -> None:
    llama = FakeLlama(["functions.add", '{"a": 1, "b": 2}'])
    model = local_model(llama)
    raw = model.chat(MESSAGES, {"tools": [add_spec()], "tool_choice": "required", "max_tokens": 50})
    (call,) = raw.tool_calls
    assert (call.name, call.args) == ("add", {"a": 1, "b": 2})
    assert len(llama.requests) == 2, "the name, the arguments; the 'more calls?' completion is not run"
    assert [r["max_tokens"] for r in llama.requests] == [50, 50], "the handler's unbounded completions are capped"
    prompt = str(llama.requests[0]["prompt"])
    assert prompt.startswith("<|im_start|>system") and "functions.add:" in prompt, "a system turn lists the tools"
    assert (raw.prompt_tokens, raw.completion_tokens) == (20, 4), "tokens of every completion are summed"


def test_local_tool_request_with_a_message_reply_and_with_a_named_tool() -> None:
    llama = FakeLlama(["message", ""])
    raw = local_model(llama).chat(MESSAGES, {"tools": [add_spec()]})
    assert raw.tool_calls == ()
    llama = FakeLlama(['{"a": 3, "b": 4}'])
    named = {"type": "function", "function": {"name": "add"}}
    raw = local_model(llama).chat(MESSAGES, {"tools": [add_spec()], "tool_choice": named})
    assert raw.tool_calls[0].args == {"a": 3, "b": 4} and len(llama.requests) == 1
    assert str(llama.requests[0]["prompt"]).endswith("functions.add:\n")


def test_local_plain_requests_keep_the_models_own_chat_template() -> None:
    llama = FakeLlama(["hello"])
    raw = local_model(llama).chat(MESSAGES, {"tools": [add_spec()], "tool_choice": "none"})
    assert raw.text == "hello" and raw.tool_calls == ()
    assert "messages" in llama.requests[0] and "tools" not in llama.requests[0]


def test_local_support_needs_a_chatml_template() -> None:
    pytest.importorskip("llama_cpp")
    from lmbridge.lm._local import KNOWN

    assert local_model(FakeLlama([])).supports_tools() is True
    assert local_model(FakeLlama([], template="{{ bos_token }}<start_of_turn>")).supports_tools() is False
    assert local_model(FakeLlama([]), KNOWN["gemma3"]).supports_tools() is False


def test_a_corrupt_tool_call_in_the_memory_cache_is_a_counted_miss(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    lm = ScriptedLM(["fresh"], cache=cache)
    key = lmbridge.lm._client.cache_key(lm.model, MESSAGES, lm.params)
    cache.set(key, {"text": "x", "tool_calls": [{"raw": "{}"}]})  # no name: from_record cannot read it
    completion = lm.complete(MESSAGES)
    assert (completion.text, completion.cached) == ("fresh", False)
    assert cache.disk is not None and cache.disk.corrupt_entries == 1


def test_provider_error_classifies_third_party_failures_by_status_class_and_message() -> None:
    from lmbridge.errors import provider_error

    class APIStatusError(Exception):
        def __init__(self, message: str, status_code: int) -> None:
            super().__init__(message)
            self.status_code = status_code

    class PermissionDeniedError(Exception):
        pass

    assert type(provider_error(APIStatusError("slow down", 429), "m")) is lmbridge.RateLimitError
    assert type(provider_error(APIStatusError("no", 401), "m")) is lmbridge.AuthenticationError
    assert type(provider_error(PermissionDeniedError("no"), "m")) is lmbridge.AuthenticationError
    assert type(provider_error(TimeoutError("read"), "m")) is lmbridge.LMTimeoutError
    overflow = provider_error(APIStatusError("This model's maximum context length is 8192 tokens", 400), "m")
    assert type(overflow) is lmbridge.ContextWindowError and overflow.status_code == 400
    other = provider_error(ValueError("boom"), "m")
    assert type(other) is lmbridge.LMError and "m: ValueError: boom" in str(other)
    kept = lmbridge.RateLimitError("already ours", status_code=429, model="m")
    assert provider_error(kept, "m") is kept
