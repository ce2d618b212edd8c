"""Streaming and tracing on real models: the embedded SmolLM2 (llama.cpp in process) and LiteLLM
against a real llama.cpp server (../shared/local-lm). Assertions hold on any CPU: structure,
counts and consistency, never a particular completion."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server import server as server

import lmbridge
from lmbridge.lm._cache import Cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LMBRIDGE_LOCAL_THREADS", "1")
    yield


def _fields(events: list[Any], field: str) -> list[int]:
    return [i for i, e in enumerate(events) if getattr(e, "field", None) == field]


@pytest.mark.real_model
def test_the_embedded_model_streams_token_by_token_and_counts_like_complete() -> None:
    messages = [{"role": "user", "content": "Name three fruits."}]
    lm = lmbridge.LM("local/smollm2", max_tokens=24, cache=False)
    *deltas, completion = list(lm.stream(messages))  # type: ignore[arg-type]
    assert len(deltas) > 3 and all(isinstance(d, str) and d for d in deltas)
    assert isinstance(completion, lmbridge.Completion) and "".join(deltas) == completion.text
    called = lm.complete(messages)  # type: ignore[arg-type]
    assert completion.usage.calls == 1 and completion.usage.prompt_tokens == called.usage.prompt_tokens > 0
    assert abs(completion.usage.completion_tokens - called.usage.completion_tokens) <= 2
    assert completion.usage.completion_tokens > 0 and len(lm.history) == 2 and lm.usage.calls == 2


@pytest.mark.real_model
def test_the_embedded_model_streams_chain_of_thought_reasoning_before_the_answer(tmp_path: Path) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=64, cache=Cache(tmp_path))
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm)
    try:
        events = list(cot.stream(question="What is the capital of France?"))
    except lmbridge.ParseError as error:  # both answers unreadable: loud, and counted
        assert error.attempts == 2 and error.usage is not None and error.usage.parse_retries == 1
        return
    except lmbridge.lm.TruncatedError as error:  # the answer ran past max_tokens: loud, never read
        assert error.limit == 64 and lm.usage.calls == 1
        return
    end = events[-1]
    assert isinstance(end, lmbridge.StreamEnd) and isinstance(end.prediction.answer, str)
    retries = [i for i, e in enumerate(events) if isinstance(e, lmbridge.ParseRetry)]
    last = events[retries[-1] + 1:] if retries else events  # the attempt the prediction comes from
    reasoning, answer = _fields(last, "reasoning"), _fields(last, "answer")
    assert reasoning and answer and reasoning[0] < answer[0]  # the reasoning streams first
    if not retries:
        assert sum(isinstance(last[i], lmbridge.FieldDelta) for i in reasoning) > 1  # in pieces, as written
    values = {e.field: e.value for e in last if isinstance(e, lmbridge.FieldValue)}
    assert values == {"reasoning": end.prediction.reasoning, "answer": end.prediction.answer}
    assert end.prediction.usage.calls == 1 + len(retries) and end.prediction.usage.parse_retries == len(retries)
    again = cot(question="What is the capital of France?")  # the streamed calls were cached
    assert again.usage.cache_hits >= 1 and again.usage.calls == 0 and again.answer == end.prediction.answer


@pytest.mark.real_model
def test_the_embedded_model_streams_a_program_asynchronously_with_a_trace() -> None:
    class Spans(lmbridge.Callback):
        def __init__(self) -> None:
            self.kinds: list[tuple[str, str | None]] = []
            self.tokens = 0
            self.ids: dict[str, str] = {}

        def on_module_start(self, run: lmbridge.Run, inputs: Any) -> None:
            self.ids[run.run_id] = run.kind
            self.kinds.append((run.kind, self.ids.get(run.parent_run_id or "")))

        def on_lm_start(self, run: lmbridge.Run, messages: Any, params: Any) -> None:
            self.ids[run.run_id] = run.kind
            self.kinds.append((run.kind, self.ids.get(run.parent_run_id or "")))

        def on_lm_token(self, run: lmbridge.Run, delta: str) -> None:
            self.tokens += 1

    spans = Spans()
    lm = lmbridge.LM("local/smollm2", max_tokens=24, cache=False)
    program = lmbridge.Predict("question -> answer", lm=lm)

    async def run() -> list[Any]:
        with lmbridge.context(callbacks=[spans]):
            return [e async for e in lmbridge.streamify(program)(question="What color is the sky?")]

    try:
        events = asyncio.run(run())
    except lmbridge.ParseError:
        return
    assert isinstance(events[-1], lmbridge.StreamEnd) and events[-1].prediction.usage.calls >= 1
    assert spans.kinds[:2] == [("predictor", None), ("lm", "predictor")] and spans.tokens > 1


@pytest.mark.real_model
@pytest.mark.parametrize("page", ["docs/streaming.md", "docs/tracing.md"])
def test_the_docs_examples_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    if page == "docs/tracing.md":
        pytest.importorskip("opentelemetry.sdk")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        try:
            exec(compile(block, f"{page}:example", "exec", dont_inherit=True), namespace)
        except lmbridge.ParseError:  # the tiny model may not answer in the format: loud, and the page is fine
            pass
    assert capsys.readouterr().out.strip()


# -- LiteLLM against the real llama.cpp server -----------------------------------------------------------
@pytest.mark.server
@pytest.mark.real_model
def test_litellm_streams_from_a_real_openai_compatible_server(server: dict[str, str],
                                                              tmp_path: Path) -> None:
    model = f"openai/{server.get('LOCAL_LM_MODEL', 'smollm2')}"
    lm = lmbridge.LM(model, api_base=server["LOCAL_LM_API_BASE"], api_key="none", max_tokens=24,
                   cache=Cache(tmp_path), timeout=120)
    messages = [{"role": "user", "content": "Name three fruits."}]
    *deltas, completion = list(lm.stream(messages))  # type: ignore[arg-type]
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert completion.usage.calls == 1 and completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    hit = list(lm.stream(messages))  # type: ignore[arg-type]
    assert hit == [completion.text, hit[-1]] and hit[-1].cached

    async def astream() -> list[Any]:
        return [item async for item in lm.astream([{"role": "user", "content": "Name a color."}])]

    *adeltas, acompletion = asyncio.run(astream())
    assert "".join(adeltas) == acompletion.text and acompletion.usage.calls == 1

    predict = lmbridge.Predict("question -> answer", lm=lm)
    try:
        events = list(predict.stream(question="What is the capital of France?"))
    except lmbridge.ParseError:
        return
    assert isinstance(events[-1], lmbridge.StreamEnd)
    assert any(isinstance(e, lmbridge.FieldValue) and e.field == "answer" for e in events)
