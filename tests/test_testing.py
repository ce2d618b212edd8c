"""lmbridge.testing.ScriptedLM: the double users test their own programs with."""

from __future__ import annotations

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM


def test_dict_responses_go_through_the_active_format() -> None:
    lm = ScriptedLM([{"answer": 3, "note": "n"}, {"answer": 4, "note": "m"}])
    chat = lmbridge.Predict("q -> answer: int, note", lm=lm)
    assert chat(q="x").answer == 3
    json_predict = lmbridge.Predict("q -> answer: int, note", lm=lm, format=lmbridge.JSONFormat())
    pred = json_predict(q="x")
    assert (pred.answer, pred.note) == (4, "m")
    assert pred.completion == '{"answer": 4, "note": "m"}'


def test_string_responses_are_raw_completions() -> None:
    lm = ScriptedLM(["  42  "])
    assert lmbridge.Predict("q -> a: int", lm=lm)(q="x").a == 42
    assert lm.remaining == 0


def test_exceptions_are_raised_as_the_models_failure() -> None:
    lm = ScriptedLM([lmbridge.ContextWindowError("too long")])
    with pytest.raises(lmbridge.ContextWindowError):
        lmbridge.Predict("q -> a", lm=lm)(q="x")


def test_transient_errors_are_retried_like_a_real_lm() -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("429"), lmbridge.LMError("boom", status_code=500), {"a": "ok"}])
    pred = lmbridge.Predict("q -> a", lm=lm)(q="x")
    assert pred.a == "ok"
    assert pred.usage.retries == 2
    assert len(lm.calls) == 3


def test_callable_per_response_and_for_all() -> None:
    per = ScriptedLM([lambda m: {"a": "one"}, lambda m: "two"])
    p = lmbridge.Predict("q -> a", lm=per)
    assert [p(q="x").a, p(q="y").a] == ["one", "two"]
    echo = ScriptedLM(lambda m: {"a": m[-1]["content"].split("Q: ")[1].split("\n")[0]})
    p = lmbridge.Predict("q -> a", lm=echo)
    assert [p(q=str(i)).a for i in range(3)] == ["0", "1", "2"]
    assert echo.remaining == -1


def test_running_out_of_responses_is_an_lm_error() -> None:
    lm = ScriptedLM([{"a": "only"}])
    p = lmbridge.Predict("q -> a", lm=lm)
    p(q="1")
    with pytest.raises(lmbridge.LMError, match="ran out"):
        p(q="2")


def test_calls_record_the_messages() -> None:
    lm = ScriptedLM([{"a": "x"}])
    lmbridge.Predict("q -> a", lm=lm)(q="hello")
    assert len(lm.calls) == 1
    assert lm.calls[0][-1]["role"] == "user"
    assert "Q: hello" in lm.calls[0][-1]["content"]


def test_dict_response_without_signature_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="signature"):
        ScriptedLM([{"a": 1}]).complete([{"role": "user", "content": "x"}])


def test_no_cache_by_default() -> None:
    lm = ScriptedLM(["one", "two"])
    messages: list[lmbridge.Message] = [{"role": "user", "content": "same"}]
    assert [lm.complete(messages).text, lm.complete(messages).text] == ["one", "two"]


def test_is_a_bridge_lm_usable_in_configure() -> None:
    lm = ScriptedLM([{"a": "configured"}])
    assert isinstance(lm, lmbridge.BaseLM)
    lmbridge.configure(lm=lm)
    assert lmbridge.Predict("q -> a")(q="x").a == "configured"
