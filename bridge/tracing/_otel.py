"""OpenTelemetry export: every traced run becomes a span, following the GenAI semantic conventions.

    from lmbridge.tracing._otel import OpenTelemetryCallback
    lmbridge.configure(callbacks=[OpenTelemetryCallback()])

Spans go to the tracer provider you set up (``opentelemetry.trace.set_tracer_provider``) or the one
given. A root run is a child of the span active where the program was called, so lmbridge's spans
nest inside your service's trace. ``opentelemetry-api`` is imported when the callback is created
(``pip install 'lmbridge[otel]'``).

=================  ==========================  =================================================
run kind           span name                   main attributes
=================  ==========================  =================================================
lm                 ``chat {model}`` (CLIENT)   gen_ai.operation.name=chat, gen_ai.provider.name,
                                               gen_ai.request.model, gen_ai.request.temperature,
                                               gen_ai.request.max_tokens, gen_ai.usage.input_tokens,
                                               gen_ai.usage.output_tokens, lmbridge.cost,
                                               lmbridge.cache_hit, lmbridge.retries
tool               ``execute_tool {name}``     gen_ai.operation.name=execute_tool, gen_ai.tool.name
retriever          ``retrieval {name}``        gen_ai.operation.name=retrieval, lmbridge.k,
                                               lmbridge.passages
module, predictor  ``invoke_workflow {name}``  gen_ai.operation.name=invoke_workflow, lmbridge.signature
compile, evaluate, ``{kind} {name}``           lmbridge.score, lmbridge.errors, lmbridge.size
trial, example
=================  ==========================  =================================================

Every span carries ``lmbridge.kind`` and ``lmbridge.run_id``. Message and output text are recorded
only with ``capture_content=True`` (``gen_ai.input.messages``, ``gen_ai.output.messages``), since
they may hold personal data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lmbridge._hooks import Callback, LMEnd, Run, RunScore
from lmbridge._version import __version__
from lmbridge.errors import MissingDependencyError
from lmbridge.types import Message, Passage

_REQUEST_PARAMS = ("temperature", "max_tokens", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty")


class OpenTelemetryCallback(Callback):
    """Export lmbridge runs as OpenTelemetry spans (GenAI semantic conventions). Thread-safe."""

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise MissingDependencyError("opentelemetry-api", "otel") from exc
        self._trace = trace
        self.tracer = trace.get_tracer("lmbridge", __version__, tracer_provider=tracer_provider)
        self.capture_content = capture_content
        self._spans: dict[str, Any] = {}
        self._streaming: set[str] = set()
        self._lock = threading.Lock()

    # -- span bookkeeping ------------------------------------------------------------------------
    def _start(self, run: Run, name: str, attributes: dict[str, Any], *, client: bool = False) -> None:
        with self._lock:
            parent = self._spans.get(run.parent_run_id) if run.parent_run_id else None
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        kind = self._trace.SpanKind.CLIENT if client else self._trace.SpanKind.INTERNAL
        attributes = {"lmbridge.kind": run.kind, "lmbridge.run_id": run.run_id, **attributes}
        for key, value in run.metadata.items():
            if isinstance(value, (str, bool, int, float)):
                attributes.setdefault(f"lmbridge.{key}", value)
        if run.tags:
            attributes["lmbridge.tags"] = list(run.tags)
        span = self.tracer.start_span(name, context=context, kind=kind, attributes=_clean(attributes),
                                      start_time=int(run.start_time * 1e9) if run.start_time else None)
        with self._lock:
            self._spans[run.run_id] = span

    def _end(self, run: Run, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            span = self._spans.pop(run.run_id, None)
        if span is None:
            return
        if attributes:
            span.set_attributes(_clean(dict(attributes)))
        span.end()

    def _fail(self, run: Run, error: BaseException) -> None:
        with self._lock:
            span = self._spans.pop(run.run_id, None)
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", type(error).__qualname__)
        if isinstance(error, Exception):
            span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
        span.end()

    def _content(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str)[:20_000]

    # -- modules and predictors ----------------------------------------------------------------------
    def on_module_start(self, run: Run, inputs: Mapping[str, Any]) -> None:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_workflow"}
        if self.capture_content:
            attributes["lmbridge.inputs"] = self._content(dict(inputs))
        self._start(run, f"invoke_workflow {run.name}", attributes)

    def on_module_end(self, run: Run, prediction: Any) -> None:
        attributes: dict[str, Any] = {}
        usage = getattr(prediction, "usage", None)
        if usage is not None:
            attributes.update({"gen_ai.usage.input_tokens": usage.prompt_tokens,
                               "gen_ai.usage.output_tokens": usage.completion_tokens,
                               "lmbridge.lm_calls": usage.calls, "lmbridge.cost": usage.cost})
        if self.capture_content and hasattr(prediction, "to_dict"):
            attributes["lmbridge.outputs"] = self._content(prediction.to_dict())
        self._end(run, attributes)

    def on_module_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    # -- LM calls ------------------------------------------------------------------------------------
    def on_lm_start(self, run: Run, messages: Sequence[Message], params: Mapping[str, Any]) -> None:
        model = run.name
        provider, _, short = model.partition("/")
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": short or provider,
                                      "gen_ai.provider.name": provider if short else "unknown"}
        for name in _REQUEST_PARAMS:
            if name in params:
                attributes[f"gen_ai.request.{name}"] = params[name]
        if "tools" in params:
            attributes["lmbridge.tools"] = [t.get("function", {}).get("name", "?") for t in params["tools"]
                                            if isinstance(t, Mapping)]
        if self.capture_content:
            attributes["gen_ai.input.messages"] = self._content(
                [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages])
        self._start(run, f"chat {short or provider}", attributes, client=True)

    def on_lm_token(self, run: Run, delta: str) -> None:
        with self._lock:
            span = self._spans.get(run.run_id)
            first = span is not None and run.run_id not in self._streaming
            if first:
                self._streaming.add(run.run_id)
        if first and span is not None:
            span.add_event("gen_ai.first_token")

    def on_lm_end(self, run: Run, end: LMEnd) -> None:
        with self._lock:
            self._streaming.discard(run.run_id)
        usage = end.usage
        attributes: dict[str, Any] = {
            "gen_ai.usage.input_tokens": usage.prompt_tokens, "gen_ai.usage.output_tokens": usage.completion_tokens,
            "lmbridge.cache_hit": end.cached, "lmbridge.retries": usage.retries, "lmbridge.streamed": end.streamed,
            "lmbridge.cost": usage.cost,
        }
        if end.tool_calls:
            attributes["lmbridge.tool_calls"] = [c.name for c in end.tool_calls]
        if self.capture_content:
            parts: list[dict[str, Any]] = [{"type": "text", "content": end.text}] if end.text else []
            parts += [{"type": "tool_call", "name": c.name, "arguments": c.raw} for c in end.tool_calls]
            attributes["gen_ai.output.messages"] = self._content([{"role": "assistant", "parts": parts}])
        self._end(run, attributes)

    def on_lm_error(self, run: Run, error: BaseException) -> None:
        with self._lock:
            self._streaming.discard(run.run_id)
        self._fail(run, error)

    # -- tools and retrievers ------------------------------------------------------------------------
    def on_tool_start(self, run: Run, args: Mapping[str, Any]) -> None:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": run.name}
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = self._content(dict(args))
        self._start(run, f"execute_tool {run.name}", attributes)

    def on_tool_end(self, run: Run, result: Any) -> None:
        self._end(run, {"gen_ai.tool.call.result": self._content(result)} if self.capture_content else None)

    def on_tool_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    def on_retriever_start(self, run: Run, query: str, k: int) -> None:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "retrieval", "lmbridge.k": k}
        if self.capture_content:
            attributes["lmbridge.query"] = query
        self._start(run, f"retrieval {run.name}", attributes)

    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None:
        attributes: dict[str, Any] = {"lmbridge.passages": len(passages)}
        if self.capture_content:
            attributes["lmbridge.documents"] = self._content([{"text": p.text, "score": p.score} for p in passages])
        self._end(run, attributes)

    def on_retriever_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    # -- compiles, evaluation runs, trials, examples -------------------------------------------------
    def on_compile_start(self, run: Run, settings: Mapping[str, Any]) -> None:
        self._start(run, f"compile {run.name}", {})

    def on_compile_end(self, run: Run, result: RunScore) -> None:
        self._end(run, _score(result))

    def on_compile_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    def on_evaluate_start(self, run: Run, size: int) -> None:
        self._start(run, f"evaluate {run.name}", {"lmbridge.size": size})

    def on_evaluate_end(self, run: Run, result: RunScore) -> None:
        self._end(run, _score(result))

    def on_evaluate_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    def on_trial_start(self, run: Run, size: int) -> None:
        self._start(run, "trial", {"lmbridge.size": size})

    def on_trial_end(self, run: Run, result: RunScore) -> None:
        self._end(run, _score(result))

    def on_trial_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)

    def on_example_start(self, run: Run, example: Any) -> None:
        attributes: dict[str, Any] = {}
        if self.capture_content and hasattr(example, "to_dict"):
            attributes["lmbridge.example"] = self._content(example.to_dict())
        self._start(run, "example", attributes)

    def on_example_end(self, run: Run, result: RunScore) -> None:
        attributes = _score(result)
        if result.error is not None:
            attributes["lmbridge.error"] = result.error[:500]
        self._end(run, attributes)

    def on_example_error(self, run: Run, error: BaseException) -> None:
        self._fail(run, error)


def _score(result: RunScore) -> dict[str, Any]:
    attributes: dict[str, Any] = {"lmbridge.score": result.score, "lmbridge.errors": result.errors}
    if result.usage is not None:
        attributes.update({"gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                           "gen_ai.usage.output_tokens": result.usage.completion_tokens,
                           "lmbridge.lm_calls": result.usage.calls, "lmbridge.cost": result.usage.cost})
    return attributes


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: no None values."""
    return {k: v for k, v in attributes.items() if v is not None}
