"""The tracing hook on ScriptedLM: runs form a tree (module -> predictor -> lm, tools, retrievers,
compile -> trial -> example), across Evaluate's worker threads; LM events carry what a call cost;
callbacks are scoped by settings; OpenTelemetry spans follow the GenAI conventions."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM


class Recorder(lmbridge.Callback):
    """Records every event as (event, run, payload), thread-safely."""

    raise_error = True

    def __init__(self) -> None:
        self.events: list[tuple[str, lmbridge.Run, Any]] = []
        self.threads: dict[str, int] = {}
        self._lock = threading.Lock()

    def _add(self, event: str, run: lmbridge.Run, payload: Any = None) -> None:
        with self._lock:
            self.events.append((event, run, payload))
            self.threads.setdefault(run.run_id, threading.get_ident())

    def on_module_start(self, run: lmbridge.Run, inputs: Mapping[str, Any]) -> None:
        self._add("start", run, dict(inputs))

    def on_module_end(self, run: lmbridge.Run, prediction: Any) -> None:
        self._add("end", run, prediction)

    def on_module_error(self, run: lmbridge.Run, error: BaseException) -> None:
        self._add("error", run, error)

    def on_lm_start(self, run: lmbridge.Run, messages: Sequence[Any], params: Mapping[str, Any]) -> None:
        self._add("start", run, list(messages))

    def on_lm_token(self, run: lmbridge.Run, delta: str) -> None:
        self._add("token", run, delta)

    def on_lm_end(self, run: lmbridge.Run, end: lmbridge.LMEnd) -> None:
        self._add("end", run, end)

    def on_lm_error(self, run: lmbridge.Run, error: BaseException) -> None:
        self._add("error", run, error)

    def on_tool_start(self, run: lmbridge.Run, args: Mapping[str, Any]) -> None:
        self._add("start", run, dict(args))

    def on_tool_end(self, run: lmbridge.Run, result: Any) -> None:
        self._add("end", run, result)

    def on_retriever_start(self, run: lmbridge.Run, query: str, k: int) -> None:
        self._add("start", run, (query, k))

    def on_retriever_end(self, run: lmbridge.Run, passages: Sequence[lmbridge.Passage]) -> None:
        self._add("end", run, list(passages))

    def on_compile_start(self, run: lmbridge.Run, settings: Mapping[str, Any]) -> None:
        self._add("start", run, settings)

    def on_compile_end(self, run: lmbridge.Run, result: lmbridge.RunScore) -> None:
        self._add("end", run, result)

    def on_evaluate_start(self, run: lmbridge.Run, size: int) -> None:
        self._add("start", run, size)

    def on_evaluate_end(self, run: lmbridge.Run, result: lmbridge.RunScore) -> None:
        self._add("end", run, result)

    def on_trial_start(self, run: lmbridge.Run, size: int) -> None:
        self._add("start", run, size)

    def on_trial_end(self, run: lmbridge.Run, result: lmbridge.RunScore) -> None:
        self._add("end", run, result)

    def on_example_start(self, run: lmbridge.Run, example: lmbridge.Example) -> None:
        self._add("start", run, example)

    def on_example_end(self, run: lmbridge.Run, result: lmbridge.RunScore) -> None:
        self._add("end", run, result)

    # -- views ---------------------------------------------------------------------------------------
    def runs(self, kind: str | None = None) -> list[lmbridge.Run]:
        return [r for e, r, _ in self.events if e == "start" and (kind is None or r.kind == kind)]

    def payload(self, event: str, run: lmbridge.Run) -> Any:
        return next(p for e, r, p in self.events if e == event and r.run_id == run.run_id)

    def parent(self, run: lmbridge.Run) -> lmbridge.Run | None:
        return next((r for r in self.runs() if r.run_id == run.parent_run_id), None)


class TwoSteps(lmbridge.Module):
    def __init__(self) -> None:
        self.first = lmbridge.Predict("question -> keywords")
        self.second = lmbridge.ChainOfThought("keywords -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        return self.second(keywords=self.first(question=question).keywords)


def test_a_program_call_is_a_tree_of_module_predictor_and_lm_runs() -> None:
    recorder = Recorder()
    lm = ScriptedLM([{"keywords": "France capital"}, {"reasoning": "It is Paris.", "answer": "Paris"}])
    with lmbridge.context(lm=lm, callbacks=[recorder]):
        prediction = TwoSteps()(question="What is the capital of France?")
    assert prediction.answer == "Paris"
    (root,) = [r for r in recorder.runs() if r.parent_run_id is None]
    assert (root.kind, root.name) == ("module", "TwoSteps")
    children = [r for r in recorder.runs() if r.parent_run_id == root.run_id]
    assert [(r.kind, r.name) for r in children] == [("predictor", "Predict"), ("module", "ChainOfThought")]
    lm_runs = recorder.runs("lm")
    assert len(lm_runs) == 2 and all(recorder.parent(r).kind == "predictor" for r in lm_runs)  # type: ignore[union-attr]
    assert recorder.parent(recorder.parent(lm_runs[1])).name == "ChainOfThought"  # type: ignore[arg-type,union-attr]
    assert recorder.payload("end", root).answer == "Paris"
    assert all(r.run_id != "" and len(r.run_id) == 32 for r in recorder.runs())
    assert recorder.runs("predictor")[0].metadata["signature"] == "question: str -> keywords: str"
    assert lmbridge.current_run_id() is None  # the parent is reset after the call


def test_lm_end_carries_messages_text_model_usage_and_cache_hit() -> None:
    recorder = Recorder()
    lm = ScriptedLM([{"answer": "Paris"}], model="scripted/x", cache=True, temperature=0.3)
    predict = lmbridge.Predict("question -> answer", lm=lm)
    with lmbridge.context(callbacks=[recorder]):
        predict(question="Capital of France, asked for the tracing test?")
        predict(question="Capital of France, asked for the tracing test?")
    first, second = (recorder.payload("end", r) for r in recorder.runs("lm"))
    assert isinstance(first, lmbridge.LMEnd) and first.model == "scripted/x" and first.text == "Paris"
    assert first.messages[-1]["content"].startswith("Capital of France") or "Capital" in str(first.messages)
    assert first.usage.calls == 1 and first.usage.prompt_tokens > 0 and not first.cached
    assert first.params["temperature"] == 0.3 and first.retries == 0
    assert second.cached and second.usage.cache_hits == 1 and second.usage.calls == 0


def test_a_failed_lm_call_ends_its_runs_with_errors() -> None:
    recorder = Recorder()
    predict = lmbridge.Predict("question -> answer", lm=ScriptedLM([lmbridge.LMError("down")], num_retries=0))
    with lmbridge.context(callbacks=[recorder]), pytest.raises(lmbridge.LMError):
        predict(question="?")
    errors = [(r.kind, p) for e, r, p in recorder.events if e == "error"]
    assert [k for k, _ in errors] == ["lm", "predictor"] and all(isinstance(p, lmbridge.LMError) for _, p in errors)


def test_streamed_lm_calls_report_each_token() -> None:
    recorder = Recorder()
    lm = ScriptedLM([{"answer": "Paris is the capital"}], chunk_size=4)
    with lmbridge.context(callbacks=[recorder]):
        events = list(lmbridge.Predict("question -> answer", lm=lm).stream(question="?"))
    (lm_run,) = recorder.runs("lm")
    tokens = [p for e, r, p in recorder.events if e == "token"]
    assert "".join(tokens) == "Paris is the capital" and len(tokens) > 2
    end = recorder.payload("end", lm_run)
    assert end.streamed and end.text == "Paris is the capital"
    (predictor,) = recorder.runs("predictor")
    assert lm_run.parent_run_id == predictor.run_id
    assert recorder.payload("end", predictor) is events[-1].prediction  # type: ignore[union-attr]


def test_tools_and_retrievers_are_runs_with_their_payloads() -> None:
    recorder = Recorder()

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def search(query: str, k: int) -> list[str]:
        return ["Paris is in France.", "Lyon too."][:k]

    with lmbridge.context(callbacks=[recorder]):
        assert lmbridge.Tool(add)(a=2, b=3) == 5
        passages = lmbridge.Retrieve(search, k=2)("France").passages
    tool, retriever = recorder.runs("tool")[0], recorder.runs("retriever")[0]
    assert tool.name == "add" and recorder.payload("start", tool) == {"a": 2, "b": 3}
    assert recorder.payload("end", tool) == 5
    assert retriever.name == "search" and recorder.payload("start", retriever) == ("France", 2)
    assert [p.text for p in recorder.payload("end", retriever)] == passages


def test_evaluate_builds_the_tree_across_its_worker_threads() -> None:
    recorder = Recorder()
    devset = [lmbridge.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(6)]
    # The first example runs alone (a configuration error costs one call); the next two calls wait
    # for each other: two threads at once.
    gate = threading.Barrier(2, timeout=30)
    calls = itertools.count()

    def answer(messages: list[dict[str, str]]) -> dict[str, str]:
        if 1 <= next(calls) < 3:
            gate.wait()
        return {"answer": messages[-1]["content"].split("Question: ")[-1].split("\n")[0].replace("q", "a")}

    with lmbridge.context(lm=ScriptedLM(answer), callbacks=[recorder]):
        result = lmbridge.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer == p.answer,
                                 num_threads=3, display_progress=False)(lmbridge.Predict("question -> answer"))
    assert result.score == 100.0
    (evaluate,) = recorder.runs("evaluate")
    examples = recorder.runs("example")
    assert len(examples) == 6 and all(r.parent_run_id == evaluate.run_id for r in examples)
    for predictor in recorder.runs("predictor"):
        assert recorder.parent(predictor).kind == "example"  # type: ignore[union-attr]
    for lm_run in recorder.runs("lm"):
        assert recorder.parent(lm_run).kind == "predictor"  # type: ignore[union-attr]
    assert len({recorder.threads[r.run_id] for r in examples}) > 1  # the examples ran on several threads
    assert threading.get_ident() not in {recorder.threads[r.run_id] for r in examples}
    end = recorder.payload("end", evaluate)
    assert end.score == 100.0 and end.errors == 0 and end.usage.calls == 6
    assert {recorder.payload("end", r).score for r in examples} == {1.0}


def test_a_compile_shows_its_trials_and_examples() -> None:
    recorder = Recorder()
    train = [lmbridge.Example(question=f"q{i}", answer="yes").with_inputs("question") for i in range(4)]
    lm = ScriptedLM(lambda messages: {"answer": "yes"})
    with lmbridge.context(lm=lm, callbacks=[recorder]):
        lmbridge.BootstrapFewShot(metric=lambda e, p, t=None: e.answer == p.answer, max_bootstrapped_demos=2,
                                display_progress=False).compile(lmbridge.Predict("question -> answer"), trainset=train)
    (compile_run,) = recorder.runs("compile")
    assert compile_run.name == "BootstrapFewShot" and compile_run.parent_run_id is None
    trials = recorder.runs("trial")
    assert trials and all(r.parent_run_id == compile_run.run_id for r in trials)
    examples = recorder.runs("example")
    assert examples and all(recorder.parent(r).kind == "trial" for r in examples)  # type: ignore[union-attr]
    assert recorder.payload("end", compile_run).usage.calls == lm.usage.calls


def test_callbacks_are_scoped_by_context_and_a_failing_callback_does_not_break_the_call(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(lmbridge.Callback):
        def on_module_start(self, run: lmbridge.Run, inputs: Mapping[str, Any]) -> None:
            raise RuntimeError("exporter down")

    recorder = Recorder()
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}])
    predict = lmbridge.Predict("question -> answer", lm=lm)
    with lmbridge.context(callbacks=[Broken(), recorder]):
        assert predict(question="?").answer == "a"
    assert predict(question="?").answer == "b"  # outside the block: no callbacks
    assert len(recorder.runs("predictor")) == 1
    assert "exporter down" in caplog.text


def test_a_callback_with_raise_error_propagates() -> None:
    class Strict(lmbridge.Callback):
        raise_error = True

        def on_lm_start(self, run: lmbridge.Run, messages: Sequence[Any], params: Mapping[str, Any]) -> None:
            raise RuntimeError("strict")

    with lmbridge.context(callbacks=[Strict()]), pytest.raises(RuntimeError, match="strict"):
        lmbridge.Predict("question -> answer", lm=ScriptedLM([{"answer": "a"}]))(question="?")


def test_configure_checks_the_callbacks() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=r"list of lmbridge\.Callback"):
        lmbridge.configure(callbacks=Recorder())
    with pytest.raises(lmbridge.ConfigurationError, match="subclass"):
        lmbridge.configure(callbacks=[object()])
    try:
        lmbridge.configure(callbacks=[Recorder()])
        assert isinstance(lmbridge.current().callbacks, tuple) and len(lmbridge.current().callbacks) == 1
    finally:
        lmbridge.configure(callbacks=[])
    assert lmbridge.current().callbacks == ()


def test_with_no_callback_no_run_is_made() -> None:
    seen: list[str | None] = []
    lm = ScriptedLM(lambda messages: seen.append(lmbridge.current_run_id()) or {"answer": "a"})
    lmbridge.Predict("question -> answer", lm=lm)(question="?")
    assert seen == [None]


# -- OpenTelemetry --------------------------------------------------------------------------------------
def _otel() -> tuple[Any, Any]:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_opentelemetry_spans_follow_the_genai_conventions_across_evaluate_threads() -> None:
    provider, exporter = _otel()
    devset = [lmbridge.Example(question=f"q{i}", answer="yes").with_inputs("question") for i in range(4)]
    lm = ScriptedLM(lambda messages: {"answer": "yes"}, model="openai/tiny")
    with lmbridge.context(lm=lm, callbacks=[lmbridge.OpenTelemetryCallback(provider)]):
        lmbridge.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer == p.answer, num_threads=2,
                        display_progress=False)(lmbridge.ChainOfThought("question -> answer"))
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "evaluate ChainOfThought" and root.attributes["lmbridge.score"] == 100.0
    chats = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(chats) == 4
    for chat in chats:
        assert chat.name == "chat tiny" and chat.attributes["gen_ai.request.model"] == "tiny"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0 and "gen_ai.usage.output_tokens" in chat.attributes
        chain = [chat]
        while chain[-1].parent is not None:
            chain.append(by_id[chain[-1].parent.span_id])
        assert [s.attributes["lmbridge.kind"] for s in chain] == ["lm", "predictor", "module", "example", "evaluate"]
        assert len({s.context.trace_id for s in chain}) == 1
    assert "gen_ai.input.messages" not in chats[0].attributes  # content is opt-in


def test_opentelemetry_records_errors_and_content_when_asked() -> None:
    provider, exporter = _otel()
    lm = ScriptedLM([{"answer": "Paris"}, lmbridge.LMError("down")], num_retries=0)
    predict = lmbridge.Predict("question -> answer", lm=lm)
    with lmbridge.context(callbacks=[lmbridge.OpenTelemetryCallback(provider, capture_content=True)]):
        predict(question="capital?")
        with pytest.raises(lmbridge.LMError):
            predict(question="again?")
    spans = exporter.get_finished_spans()
    ok = next(s for s in spans if s.name.startswith("chat") and s.status.is_ok)
    assert "Paris" in ok.attributes["gen_ai.output.messages"] and "capital?" in ok.attributes["gen_ai.input.messages"]
    failed = [s for s in spans if not s.status.is_ok]
    assert {s.attributes["lmbridge.kind"] for s in failed} == {"lm", "predictor"}
    assert all(s.attributes["error.type"] == "LMError" for s in failed)


def test_a_streamed_chain_of_thought_is_the_same_tree_as_a_call() -> None:
    recorder = Recorder()
    lm = ScriptedLM([{"reasoning": "Paris is the capital.", "answer": "Paris"}] * 2, chunk_size=5)
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm)
    with lmbridge.context(callbacks=[recorder]):
        cot(question="capital?")
        called = [(r.kind, recorder.parent(r).kind if recorder.parent(r) else None) for r in recorder.runs()]
        recorder.events.clear()
        events = list(cot.stream(question="capital of France?"))
    streamed = [(r.kind, recorder.parent(r).kind if recorder.parent(r) else None) for r in recorder.runs()]
    assert streamed == called == [("module", None), ("predictor", "module"), ("lm", "predictor")]
    (module,) = recorder.runs("module")
    assert recorder.payload("end", module) is events[-1].prediction  # type: ignore[union-attr]


def test_a_callback_that_watches_lm_calls_alone_gets_lm_runs_alone() -> None:
    class Calls(lmbridge.Callback):
        def __init__(self) -> None:
            self.runs: list[lmbridge.Run] = []

        def on_lm_start(self, run: lmbridge.Run, messages: Sequence[Any], params: Mapping[str, Any]) -> None:
            self.runs.append(run)

    calls = Calls()
    lm = ScriptedLM([{"reasoning": "r", "answer": "a"}] * 2, chunk_size=2)
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm)
    with lmbridge.context(callbacks=[calls]):
        cot(question="?")
        list(cot.stream(question="again?"))
    assert [(r.kind, r.parent_run_id) for r in calls.runs] == [("lm", None), ("lm", None)]
