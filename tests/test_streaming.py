"""Streaming on ScriptedLM: LM deltas and the Completion, Predict's field events in both formats,
ChainOfThought, the parse re-ask, cache hits, retries, async, and streamify over a whole program."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.lm._cache import Cache
from lmbridge.testing import CutStream, ScriptedLM


def _text(events: Iterable[Any], field: str, predictor: str | None = None) -> str:
    return "".join(e.delta for e in events if isinstance(e, lmbridge.FieldDelta) and e.field == field
                   and (predictor is None or e.predictor == predictor))


def _kinds(events: list[Any]) -> list[tuple[str, str]]:
    return [(type(e).__name__, getattr(e, "field", "")) for e in events]


def _first(events: list[Any], kind: type, field: str = "") -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, kind) and getattr(e, "field", "") == field)


# -- BaseLM.stream ----------------------------------------------------------------------------------
def test_lm_stream_yields_deltas_then_the_completion_and_counts_it_like_complete() -> None:
    lm = ScriptedLM(["The capital of France is Paris."], chunk_size=5)
    items = list(lm.stream([{"role": "user", "content": "capital?"}]))
    *deltas, completion = items
    assert len(deltas) > 3 and all(isinstance(d, str) for d in deltas)
    assert isinstance(completion, lmbridge.Completion)
    assert "".join(deltas) == completion.text == "The capital of France is Paris."
    assert completion.usage.calls == 1 and completion.usage.completion_tokens > 0
    assert lm.usage.calls == 1 and len(lm.history) == 1 and lm.history[-1].completion == completion.text


def test_an_lm_that_cannot_stream_yields_its_answer_as_one_chunk() -> None:
    class Whole(lmbridge.BaseLM):
        def send(self, messages: Any, params: Any, signature: Any, fmt: Any) -> lmbridge.RawResult:
            return lmbridge.RawResult("all at once", prompt_tokens=3, completion_tokens=3)

    items = list(Whole("whole", cache=False).stream([{"role": "user", "content": "hi"}]))
    assert items[0] == "all at once" and isinstance(items[1], lmbridge.Completion) and len(items) == 2
    async_items = asyncio.run(_collect(Whole("whole", cache=False).astream([{"role": "user", "content": "hi"}])))
    assert async_items[0] == "all at once" and async_items[1].usage.prompt_tokens == 3


def test_a_streamed_call_is_cached_and_a_cache_hit_streams_the_text_at_once(tmp_path: Path) -> None:
    lm = ScriptedLM(["a long streamed answer"], chunk_size=2, cache=Cache(tmp_path))  # type: ignore[arg-type]
    messages = [{"role": "user", "content": "q"}]
    first = list(lm.stream(messages))  # type: ignore[arg-type]
    assert len(first) > 3
    again = list(lm.stream(messages))  # type: ignore[arg-type]
    assert again[0] == "a long streamed answer" and len(again) == 2 and again[1].cached
    assert lm.complete(messages).cached  # type: ignore[arg-type]
    assert lm.usage.calls == 1 and lm.usage.cache_hits == 2 and lm.remaining == 0


def test_a_stream_is_retried_before_its_first_chunk_only(waits: list[float]) -> None:
    lm = ScriptedLM([lmbridge.RateLimitError("slow down"), "second try"], chunk_size=3)
    *deltas, completion = list(lm.stream([{"role": "user", "content": "q"}]))
    assert "".join(deltas) == "second try" and completion.usage.retries == 1 and len(waits) == 1

    cut = ScriptedLM([CutStream("half an ans", lmbridge.LMError("reset", status_code=503)), "never sent"])
    received: list[Any] = []
    with pytest.raises(lmbridge.LMError, match="reset"):
        for item in cut.stream([{"role": "user", "content": "q"}]):
            received.append(item)
    assert "".join(received) == "half an ans" and cut.remaining == 1  # a started answer is never re-sent


# -- Predict.stream -----------------------------------------------------------------------------------
def test_chat_format_streams_each_field_then_its_value_before_the_next_field() -> None:
    lm = ScriptedLM([{"summary": "Two birds on a wire.", "count": 2}], chunk_size=3)
    events = list(lmbridge.Predict("text -> summary, count: int", lm=lm).stream(text="two birds sat on a wire"))
    assert _text(events, "summary") == "Two birds on a wire."
    assert _first(events, lmbridge.FieldValue, "summary") < _first(events, lmbridge.FieldDelta, "count")
    values = [(e.field, e.value) for e in events if isinstance(e, lmbridge.FieldValue)]
    assert values == [("summary", "Two birds on a wire."), ("count", 2)]
    assert isinstance(events[-1], lmbridge.StreamEnd) and events[-1].prediction.count == 2
    assert sum(isinstance(e, lmbridge.FieldDelta) for e in events) > 4


def test_json_format_streams_string_fields_and_typed_values_in_order() -> None:
    lm = ScriptedLM([{"reasoning": "Three apples and one more.", "answer": 4}], chunk_size=4)
    predict = lmbridge.Predict("question -> reasoning, answer: int", lm=lm, format=lmbridge.JSONFormat())
    events = list(predict.stream(question="3 + 1?"))
    assert _text(events, "reasoning") == "Three apples and one more."
    assert sum(isinstance(e, lmbridge.FieldDelta) for e in events) > 3
    assert _first(events, lmbridge.FieldValue, "reasoning") < _first(events, lmbridge.FieldValue, "answer")
    assert events[-2] == lmbridge.FieldValue("self", "answer", 4)
    assert events[-1].prediction.answer == 4  # type: ignore[union-attr]


def test_chain_of_thought_streams_its_reasoning_first() -> None:
    lm = ScriptedLM([{"reasoning": "France's capital city is Paris.", "answer": "Paris"}], chunk_size=4)
    events = list(lmbridge.ChainOfThought("question -> answer", lm=lm).stream(question="capital of France?"))
    reasoning = [i for i, e in enumerate(events) if getattr(e, "field", "") == "reasoning"]
    answer = [i for i, e in enumerate(events) if getattr(e, "field", "") == "answer"]
    assert reasoning and answer and max(reasoning) < min(answer)
    assert _text(events, "reasoning") == "France's capital city is Paris."
    assert events[-1].prediction.answer == "Paris"  # type: ignore[union-attr]


def test_a_streamed_answer_that_does_not_parse_is_re_asked_and_the_second_answer_streams() -> None:
    lm = ScriptedLM(["I think it is about four", "4"], chunk_size=3)
    predict = lmbridge.Predict("question -> reasoning, answer: int", lm=lm)
    events = list(predict.stream(question="2 + 2?"))
    retry = _first(events, lmbridge.ParseRetry)
    assert _text(events[:retry], "reasoning") == "I think it is about four"
    after = events[retry + 1:]
    assert _text(after, "answer") == "4"
    assert lmbridge.FieldValue("self", "answer", 4) in after
    end = events[-1]
    assert isinstance(end, lmbridge.StreamEnd)
    assert end.prediction.answer == 4 and end.prediction.usage.parse_retries == 1 and end.prediction.usage.calls == 2
    assert "Answer" in lm.calls[1][-1]["content"]  # the re-ask showed the model what was missing


def test_a_streamed_answer_that_never_parses_raises_parse_error() -> None:
    lm = ScriptedLM(["no number here", "still none"], chunk_size=3)
    with pytest.raises(lmbridge.ParseError):
        list(lmbridge.Predict("question -> answer: int", lm=lm).stream(question="2 + 2?"))


def test_streamed_predictions_match_called_ones_and_stream_from_the_cache(tmp_path: Path) -> None:
    lm = ScriptedLM([{"answer": "Paris"}], chunk_size=2, cache=Cache(tmp_path))  # type: ignore[arg-type]
    predict = lmbridge.Predict("question -> answer", lm=lm)
    called = predict(question="capital of France?")
    events = list(predict.stream(question="capital of France?"))
    assert events[-1].prediction.answer == called.answer  # type: ignore[union-attr]
    assert events[-1].prediction.usage.cache_hits == 1 and lm.remaining == 0  # type: ignore[union-attr]
    assert _text(events, "answer") == "Paris"


def test_predict_astream_gives_the_same_events_as_stream() -> None:
    script = [{"reasoning": "Two and two.", "answer": 4}]
    sync = list(lmbridge.Predict("q -> reasoning, answer: int", lm=ScriptedLM(script, chunk_size=3)).stream(q="2+2"))
    predict = lmbridge.Predict("q -> reasoning, answer: int", lm=ScriptedLM(script, chunk_size=3))
    got = asyncio.run(_collect(predict.astream(q="2+2")))
    assert _kinds(got) == _kinds(sync) and got[-1].prediction.answer == 4


def test_predict_stream_checks_its_inputs() -> None:
    with pytest.raises(lmbridge.InputError):
        list(lmbridge.Predict("question -> answer", lm=ScriptedLM([])).stream(query="x"))


# -- streamify ------------------------------------------------------------------------------------------
class Pipeline(lmbridge.Module):
    def __init__(self) -> None:
        self.draft = lmbridge.Predict("topic -> outline")
        self.write = lmbridge.ChainOfThought("outline -> title")

    def forward(self, topic: str) -> lmbridge.Prediction:  # type: ignore[override]
        outline = self.draft(topic=topic).outline
        return self.write(outline=outline)


def test_streamify_streams_each_predictor_of_a_program_under_its_name() -> None:
    lm = ScriptedLM([{"outline": "Birds, wires, sky."}, {"reasoning": "Short and vivid.", "title": "Wired"}],
                    chunk_size=3)
    lmbridge.configure(lm=lm)
    events = asyncio.run(_collect(lmbridge.streamify(Pipeline())(topic="birds")))
    assert _text(events, "outline", "draft") == "Birds, wires, sky."
    assert _text(events, "reasoning", "write.predict") == "Short and vivid."
    assert _first(events, lmbridge.FieldValue, "outline") < _first(events, lmbridge.FieldDelta, "reasoning")
    assert isinstance(events[-1], lmbridge.StreamEnd) and events[-1].prediction.title == "Wired"
    assert events[-1].prediction.usage.calls == 2


def test_streamify_raises_the_program_error() -> None:
    lmbridge.configure(lm=ScriptedLM([lmbridge.LMError("boom")], num_retries=0))
    with pytest.raises(lmbridge.LMError, match="boom"):
        asyncio.run(_collect(lmbridge.streamify(Pipeline())(topic="birds")))


def test_streamify_of_a_single_predictor_async_path() -> None:
    lm = ScriptedLM([{"answer": "Paris"}], chunk_size=2)
    events = asyncio.run(_collect(lmbridge.streamify(lmbridge.Predict("question -> answer", lm=lm))(question="?")))
    assert _text(events, "answer", "self") == "Paris" and events[-1].prediction.answer == "Paris"


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]


# -- the server-sent events example ------------------------------------------------------------------
def _read_sse(port: int, query: str) -> list[tuple[str, dict[str, Any]]]:
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"/?{query}")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    events = []
    for block in response.read().decode().split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_the_sse_example_serves_a_program_as_server_sent_events() -> None:
    import threading

    from examples.stream_sse import make_server

    lm = ScriptedLM([{"reasoning": "It is the capital of France.", "answer": "Paris"}], chunk_size=3)
    server = make_server(lmbridge.ChainOfThought("question -> answer", lm=lm), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        events = _read_sse(server.server_address[1], "question=What+is+the+capital+of+France%3F")
    finally:
        server.shutdown()
        server.server_close()
    names = [name for name, _ in events]
    assert names[0] == "delta" and names[-1] == "end" and names.count("value") == 2
    reasoning = "".join(d["text"] for n, d in events if n == "delta" and d["field"] == "reasoning")
    assert reasoning == "It is the capital of France." and events[0][1]["predictor"] == "predict"
    assert events[-1][1] == {"prediction": {"reasoning": "It is the capital of France.", "answer": "Paris"},
                             "lm_calls": 1}
    assert "What is the capital of France?" in lm.calls[0][-1]["content"]


def test_the_sse_example_reports_a_failure_as_an_error_event() -> None:
    import threading

    from examples.stream_sse import make_server

    server = make_server(lmbridge.Predict("question -> answer", lm=ScriptedLM([])), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        events = _read_sse(server.server_address[1], "query=wrong+field")
    finally:
        server.shutdown()
        server.server_close()
    assert [name for name, _ in events] == ["error"] and "InputError" in events[0][1]["error"]


# -- the incremental readers, without any LM ----------------------------------------------------------
def test_chat_format_partial_holds_back_a_line_that_may_become_a_label() -> None:
    sig = lmbridge.Predict("question -> reasoning, answer: int").signature
    fmt = lmbridge.ChatFormat()
    early = fmt.partial(sig, "Two and two\nAns")
    assert early.texts == {"reasoning": "Two and two"} and early.complete == ()
    labelled = fmt.partial(sig, "Two and two\nAnswer: 4")
    assert labelled.texts == {"reasoning": "Two and two", "answer": "4"} and labelled.complete == ("reasoning",)
    assert fmt.parse(lmbridge.make_signature("question -> reasoning"), labelled.complete_text) == {
        "reasoning": "Two and two"}
    prose = fmt.partial(sig, "Two and two\nA dog")  # "A d" can no longer become "Answer:"
    assert prose.texts == {"reasoning": "Two and two\nA dog"}
    closed = fmt.partial(sig, "Two and two\nAnswer: 4\nQuestion: and 3 + 3?")  # a new example begins
    assert closed.complete == ("reasoning", "answer") and closed.texts["answer"] == "4"


def test_json_format_partial_reads_an_unfinished_object() -> None:
    sig = lmbridge.Predict("question -> reasoning, answer: int").signature
    fmt = lmbridge.JSONFormat()
    assert fmt.partial(sig, "Sure: ").texts == {}
    growing = fmt.partial(sig, '{"reasoning": "Two and t')
    assert growing.texts == {"reasoning": "Two and t"} and growing.complete == ()
    next_key = fmt.partial(sig, '{"reasoning": "Two and two", "answer": 4')
    assert next_key.complete == ("reasoning",) and "answer" not in next_key.texts  # numbers are not text
    whole = fmt.partial(sig, '```json\n{"Reasoning": "Two and two", "answer": 4}')
    assert whole.complete == ("reasoning", "answer")
    assert fmt.parse(sig, whole.complete_text) == {"reasoning": "Two and two", "answer": 4}


# -- LiteLLM streaming, against a scripted OpenAI-compatible server on 127.0.0.1 ---------------------------
@pytest.fixture
def openai_server() -> Any:
    pytest.importorskip("litellm")
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


def test_litellm_streams_deltas_usage_and_tool_calls(openai_server: Any) -> None:
    from fake_openai import calls, ok

    openai_server.reset([ok("Hello from a streamed answer"), calls(("add", {"a": 1, "b": 2}), content="")])
    lm = lmbridge.LM("openai/fake", api_base=openai_server.base_url, api_key="none", cache=False)
    *deltas, completion = list(lm.stream([{"role": "user", "content": "hi"}]))
    assert len(deltas) > 3 and "".join(deltas) == completion.text == "Hello from a streamed answer"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)  # from include_usage
    sent = openai_server.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    *_, with_tools = list(lm.stream([{"role": "user", "content": "add"}],
                                    {"tools": [lmbridge.Tool(_add).to_function_spec()]}))
    assert [(c.name, c.args) for c in with_tools.tool_calls] == [("add", {"a": 1, "b": 2})]


def test_litellm_stream_is_not_resent_once_text_came_back(openai_server: Any) -> None:
    from fake_openai import Reply

    openai_server.reset([Reply(200, "a long answer that breaks", cut_after=3), Reply(200, "never")])
    lm = lmbridge.LM("openai/fake", api_base=openai_server.base_url, api_key="none", cache=False, backoff=0.0)
    received: list[Any] = []
    with pytest.raises(lmbridge.LMError):
        for item in lm.stream([{"role": "user", "content": "hi"}]):
            received.append(item)
    assert received and all(isinstance(r, str) for r in received) and openai_server.count == 1


def test_litellm_astream_retries_a_failure_before_the_first_chunk(openai_server: Any) -> None:
    from fake_openai import fail, ok

    openai_server.reset([fail(503, Retry_After="0"), ok("second time lucky")])
    lm = lmbridge.LM("openai/fake", api_base=openai_server.base_url, api_key="none", cache=False, backoff=0.0)
    *deltas, completion = asyncio.run(_collect(lm.astream([{"role": "user", "content": "hi"}])))
    assert "".join(deltas) == "second time lucky" and completion.usage.retries == 1 and openai_server.count == 2


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
