"""Predict and ChainOfThought over ScriptedLM: the call path, the re-ask, errors, settings, async."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM


class Sentiment(lmbridge.Signature):
    """Classify the sentiment."""

    text: str = lmbridge.InputField()
    label: Literal["positive", "negative"] = lmbridge.OutputField()


def test_predict_returns_typed_values_and_usage() -> None:
    lm = ScriptedLM([{"answer": 42}])
    predict = lmbridge.Predict("question -> answer: int", lm=lm)
    pred = predict(question="6 times 7?")
    assert pred.answer == 42
    assert pred["answer"] == 42
    assert pred.usage.calls == 1
    assert pred.usage.parse_retries == 0
    assert pred.completion == "42"
    assert "Question: 6 times 7?" in lm.calls[0][-1]["content"]


def test_messages_shows_the_request_without_calling_a_model() -> None:
    predict = lmbridge.Predict("question -> answer", demos=[{"question": "q1", "answer": "a1"}])
    messages = predict.messages(question="q2")
    assert messages[-1]["content"].endswith("Question: q2\nAnswer:")
    assert messages[1] == {"role": "assistant", "content": "a1"}


def test_unparseable_completion_is_reasked_once_with_the_error() -> None:
    lm = ScriptedLM(["I am not sure", {"label": "positive"}])
    predict = lmbridge.Predict(Sentiment, lm=lm)
    pred = predict(text="great film")
    assert pred.label == "positive"
    assert len(lm.calls) == 2
    second = lm.calls[1]
    assert second[: len(lm.calls[0])] == lm.calls[0]  # the first request, then the repair
    assert second[-2] == {"role": "assistant", "content": "I am not sure"}
    assert second[-1]["role"] == "user"
    assert "expected exactly one of [positive, negative]" in second[-1]["content"]
    assert pred.usage.calls == 2
    assert pred.usage.parse_retries == 1


def test_second_failure_raises_parse_error_with_completion_and_signature() -> None:
    lm = ScriptedLM(["maybe", "still not sure"])
    predict = lmbridge.Predict(Sentiment, lm=lm)
    with lmbridge.track_usage() as tracker, pytest.raises(lmbridge.ParseError) as info:
        predict(text="meh")
    error = info.value
    assert error.completion == "still not sure"
    assert error.signature == Sentiment.spec()
    assert error.attempts == 2
    assert error.field == "label"
    assert error.usage is not None and error.usage.calls == 2 and error.usage.parse_retries == 1
    assert isinstance(error.__cause__, lmbridge.ParseError)
    assert tracker.usage.calls == 2
    assert tracker.usage.parse_retries == 1
    assert len(lm.calls) == 2  # re-asked once, not more


def test_missing_and_unknown_inputs_raise_input_error() -> None:
    lm = ScriptedLM([{"answer": "x"}])
    predict = lmbridge.Predict("question, context -> answer", lm=lm)
    with pytest.raises(lmbridge.InputError, match=r"missing.*'context'"):
        predict(question="q")
    with pytest.raises(lmbridge.InputError, match=r"unknown.*'config'"):
        predict(question="q", context="c", config="x")
    with pytest.raises(TypeError):  # InputError is also a TypeError
        predict()
    assert lm.calls == []


def test_no_lm_configured_raises_configuration_error() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="no LM"):
        lmbridge.Predict("question -> answer")(question="q")


def test_configure_rejects_non_lms_and_unknown_settings() -> None:
    with pytest.raises(lmbridge.ConfigurationError):
        lmbridge.configure(lm="openai/gpt-4o")
    with pytest.raises(lmbridge.ConfigurationError, match="unknown"):
        lmbridge.configure(temperature=0.5)


def test_chain_of_thought_returns_reasoning() -> None:
    lm = ScriptedLM([{"reasoning": "6*7 is 42", "answer": 42}])
    cot = lmbridge.ChainOfThought("question -> answer: int", lm=lm)
    pred = cot(question="6 times 7?")
    assert pred.reasoning == "6*7 is 42"
    assert pred.answer == 42
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]
    assert [name for name, _ in cot.named_predictors()] == ["predict"]
    assert lm.calls[0][-1]["content"].endswith("Reasoning:")


def test_async_acall_uses_the_native_async_path() -> None:
    main_thread = threading.get_ident()
    seen: list[int] = []

    def answer(messages: list[lmbridge.Message]) -> object:
        seen.append(threading.get_ident())
        return "maybe" if len(seen) == 1 else {"label": "negative"}

    lm = ScriptedLM(answer)
    predict = lmbridge.Predict(Sentiment, lm=lm)
    pred = asyncio.run(predict.acall(text="awful"))
    assert pred.label == "negative"
    assert pred.usage.calls == 2 and pred.usage.parse_retries == 1
    assert seen == [main_thread, main_thread]  # awaited in the event loop, no worker thread


def test_async_chain_of_thought_and_gather() -> None:
    def echo(messages: list[lmbridge.Message]) -> dict[str, str]:
        return {"reasoning": "r", "answer": messages[-1]["content"].split("Question: ")[1].split("\n")[0]}

    lm = ScriptedLM(echo)
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm)

    async def main() -> list[lmbridge.Prediction]:
        return await asyncio.gather(*(cot.acall(question=f"q{i}") for i in range(5)))

    preds = asyncio.run(main())
    assert [p.answer for p in preds] == [f"q{i}" for i in range(5)]


def test_precedence_explicit_then_context_then_configure() -> None:
    configured = ScriptedLM(lambda m: {"answer": "configured"})
    contextual = ScriptedLM(lambda m: {"answer": "context"})
    explicit = ScriptedLM(lambda m: {"answer": "explicit"})
    lmbridge.configure(lm=configured)
    plain = lmbridge.Predict("question -> answer")
    pinned = lmbridge.Predict("question -> answer", lm=explicit)
    assert plain(question="q").answer == "configured"
    with lmbridge.context(lm=contextual):
        assert plain(question="q").answer == "context"
        assert pinned(question="q").answer == "explicit"
        with lmbridge.context(lm=configured):
            assert plain(question="q").answer == "configured"
        assert plain(question="q").answer == "context"
    assert plain(question="q").answer == "configured"


def test_format_precedence() -> None:
    lm = ScriptedLM(lambda m: '{"answer": "json"}' if "JSON" in m[0]["content"] else "chat")
    plain = lmbridge.Predict("question -> answer", lm=lm)
    assert plain(question="q").answer == "chat"
    with lmbridge.context(format=lmbridge.JSONFormat()):
        assert plain(question="q").answer == "json"
        pinned = lmbridge.Predict("question -> answer", lm=lm, format=lmbridge.ChatFormat())
        assert pinned(question="q").answer == "chat"


def test_json_format_asks_for_json_mode_only_when_the_lm_supports_it() -> None:
    seen: list[dict[str, object]] = []

    class JsonModeLM(ScriptedLM):
        def supports_json_mode(self) -> bool:
            return True

        def send(self, messages, params, signature, fmt):  # type: ignore[no-untyped-def]
            seen.append(dict(params))
            return super().send(messages, params, signature, fmt)

    lmbridge.Predict("q -> a", lm=JsonModeLM([{"a": "x"}]), format=lmbridge.JSONFormat(), temperature=0.3)(q="1")
    assert seen == [{"response_format": {"type": "json_object"}, "temperature": 0.3}]


def test_context_executor_workers_inherit_the_context() -> None:
    lm = ScriptedLM(lambda m: {"answer": "from context"})
    predict = lmbridge.Predict("question -> answer")
    with lmbridge.context(lm=lm), lmbridge.context_executor(3) as pool:
        answers = list(pool.map(lambda i: predict(question=str(i)).answer, range(6)))
    assert answers == ["from context"] * 6


def test_contexts_in_two_threads_stay_apart() -> None:
    barrier = threading.Barrier(2)
    results: dict[str, list[str]] = {}
    predict = lmbridge.Predict("question -> answer")

    def worker(name: str) -> None:
        lm = ScriptedLM(lambda m: {"answer": name})
        with lmbridge.context(lm=lm):
            barrier.wait()  # both contexts are now open at once
            got = [predict(question="q").answer for _ in range(20)]
            barrier.wait()
        results[name] = got

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"left": ["left"] * 20, "right": ["right"] * 20}
    assert lmbridge.current().lm is None


def test_plain_threads_do_not_see_a_context_but_do_see_configure() -> None:
    lm = ScriptedLM(lambda m: {"answer": "x"})
    seen: list[object] = []
    with lmbridge.context(lm=lm):
        t = threading.Thread(target=lambda: seen.append(lmbridge.current().lm))
        t.start()
        t.join()
    assert seen == [None]
    lmbridge.configure(lm=lm)
    t = threading.Thread(target=lambda: seen.append(lmbridge.current().lm))
    t.start()
    t.join()
    assert seen[-1] is lm


def test_trace_records_each_predict_call() -> None:
    lm = ScriptedLM(lambda m: {"answer": "a"})

    class TwoStep(lmbridge.Module):
        def __init__(self) -> None:
            self.first = lmbridge.Predict("question -> answer", lm=lm)
            self.second = lmbridge.Predict("question -> answer", lm=lm)

        def forward(self, question: str) -> lmbridge.Prediction:
            return self.second(question=self.first(question=question).answer)

    program = TwoStep()
    with lmbridge.trace() as steps:
        pred = program(question="q")
    assert [s[0] for s in steps] == [program.first, program.second]
    assert steps[0][1] == {"question": "q"}
    assert steps[1][2] is pred
    assert pred.usage.calls == 2  # the module's prediction carries both calls


def test_instructions_property_replaces_the_signature() -> None:
    predict = lmbridge.Predict(Sentiment)
    predict.instructions = "Label it."
    assert predict.signature.instructions == "Label it."
    assert Sentiment.instructions == "Classify the sentiment."


def test_deepcopy_and_reset_copy_share_the_lm_but_not_demos() -> None:
    lm = ScriptedLM(lambda m: {"answer": "a"})
    predict = lmbridge.Predict("question -> answer", lm=lm, demos=[{"question": "q", "answer": "a"}])
    copy = predict.deepcopy()
    assert isinstance(copy, lmbridge.Predict)
    assert copy.lm is lm
    copy.demos.append(lmbridge.Example(question="q2", answer="a2"))
    assert len(predict.demos) == 1
    reset = predict.reset_copy()
    assert isinstance(reset, lmbridge.Predict)
    assert reset.demos == [] and len(predict.demos) == 1


def test_missing_later_field_is_reasked_by_continuation() -> None:
    lm = ScriptedLM(["6 times 7 makes forty-two", " 42"])
    predict = lmbridge.Predict("question -> reasoning, answer: int", lm=lm)
    pred = predict(question="6*7?")
    assert (pred.reasoning, pred.answer) == ("6 times 7 makes forty-two", 42)
    repair = lm.calls[1][-1]["content"]
    assert repair.endswith("Answer:")
    assert "integer" in repair
    assert pred.usage.parse_retries == 1 and pred.usage.calls == 2


def test_async_reask_matches_sync() -> None:
    sync_lm = ScriptedLM(["no answer here", "still none"])
    async_lm = ScriptedLM(["no answer here", "still none"])
    sig = "question -> reasoning, answer: int"
    with pytest.raises(lmbridge.ParseError) as sync_error:
        lmbridge.Predict(sig, lm=sync_lm)(question="q")
    with pytest.raises(lmbridge.ParseError) as async_error:
        asyncio.run(lmbridge.Predict(sig, lm=async_lm).acall(question="q"))
    assert sync_lm.calls == async_lm.calls
    assert sync_error.value.completion == async_error.value.completion == "still none"
    assert str(sync_error.value) == str(async_error.value)
