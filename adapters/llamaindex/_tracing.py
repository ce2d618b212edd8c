"""lmbridge runs as LlamaIndex instrumentation spans and events.

``LlamaIndexInstrumentation()`` is a ``lmbridge.Callback``: install it (``lmbridge.configure(callbacks=
[...])`` or ``with lmbridge.context(callbacks=[...])``) and every program, predictor, retriever, tool
and LM call becomes a span of the ``lmbridge`` dispatcher (a child of LlamaIndex's root
dispatcher), so the span handlers a LlamaIndex user has installed (Arize Phoenix, Langfuse, the
``SimpleSpanHandler``) see one tree. A run's span is the parent of the runs inside it, and of the
LlamaIndex spans inside it (a LlamaIndex retriever's ``retrieve``, a LlamaIndex LLM's ``chat``); a
program run inside a LlamaIndex span (a query engine's ``query``) hangs below that span.

LM calls not made through a LlamaIndex LLM (``lmbridge.LM``, the embedded model, a cache hit) also
emit ``LLMChatStartEvent`` / ``LLMChatEndEvent``, and retrieval emits ``RetrievalStartEvent`` /
``RetrievalEndEvent``, so LlamaIndex event handlers count them too. Span ids read
``lmbridge.<kind>.<name>-<run_id>``; a cache hit's LM span carries the tag ``cached``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lmbridge import Callback, LMEnd, Message, Passage, Run
from lmbridge.adapters.llamaindex._nodes import require_llamaindex, to_node


def _payload(**kwargs: Any) -> None:
    """The signature the spans' bound arguments are bound to."""


_SIGNATURE = inspect.signature(_payload)


class LlamaIndexInstrumentation(Callback):
    """Export lmbridge runs to LlamaIndex instrumentation (see the module docstring). Thread-safe."""

    def __init__(self, dispatcher_name: str = "lmbridge") -> None:
        require_llamaindex()
        from llama_index.core.instrumentation.span import active_span_id

        instrumentation: Any = importlib.import_module("llama_index.core.instrumentation")
        self.dispatcher = instrumentation.get_dispatcher(dispatcher_name)
        self._active = active_span_id
        self._spans: dict[str, tuple[str, str | None]] = {}  # run id -> (span id, the span it replaced)
        self._queries: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- spans ----------------------------------------------------------------------------------------
    def _enter(self, run: Run, **args: Any) -> None:
        span_id = f"lmbridge.{run.kind}.{run.name}-{run.run_id}"
        outer = self._active.get()
        with self._lock:
            above = self._spans.get(run.parent_run_id) if run.parent_run_id is not None else None
            parent = above[0] if above is not None else outer
            self._spans[run.run_id] = (span_id, outer)
        tags = {"lmbridge.kind": run.kind, "lmbridge.run_id": run.run_id, **{t: True for t in run.tags}}
        self.dispatcher.span_enter(id_=span_id, bound_args=_SIGNATURE.bind(**args), instance=None,
                                   parent_id=parent, tags=tags)
        self._active.set(span_id)

    def _exit(self, run: Run, result: Any = None, error: BaseException | None = None, **args: Any) -> None:
        with self._lock:
            entry = self._spans.pop(run.run_id, None)
        if entry is None:
            return
        span_id, outer = entry
        if error is None:
            self.dispatcher.span_exit(id_=span_id, bound_args=_SIGNATURE.bind(**args), instance=None, result=result)
        else:
            self.dispatcher.span_drop(id_=span_id, bound_args=_SIGNATURE.bind(**args), instance=None, err=error)
        if self._active.get() == span_id:
            self._active.set(outer)

    # -- modules and predictors ------------------------------------------------------------------------
    def on_module_start(self, run: Run, inputs: Mapping[str, Any]) -> None:
        self._enter(run, **{"inputs": dict(inputs)})

    def on_module_end(self, run: Run, prediction: Any) -> None:
        self._exit(run, prediction)

    def on_module_error(self, run: Run, error: BaseException) -> None:
        self._exit(run, error=error)

    # -- LM calls ----------------------------------------------------------------------------------------
    def _native(self, run: Run) -> bool:
        return run.name.startswith("llamaindex/")  # a LlamaIndex LLM emits its own chat events

    def on_lm_start(self, run: Run, messages: Sequence[Message], params: Mapping[str, Any]) -> None:
        self._enter(run, messages=list(messages), params=dict(params))
        if not self._native(run):
            from llama_index.core.instrumentation.events.llm import LLMChatStartEvent

            self.dispatcher.event(LLMChatStartEvent(messages=_chat(messages), additional_kwargs=dict(params),
                                                    model_dict={"model": run.name}))

    def on_lm_end(self, run: Run, end: LMEnd) -> None:
        if not self._native(run):
            from llama_index.core.base.llms.types import ChatMessage, ChatResponse
            from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

            response = ChatResponse(message=ChatMessage(role="assistant", content=end.text),
                                    additional_kwargs={"prompt_tokens": end.usage.prompt_tokens,
                                                       "completion_tokens": end.usage.completion_tokens,
                                                       "cached": end.cached})
            self.dispatcher.event(LLMChatEndEvent(messages=_chat(end.messages), response=response))
        self._exit(run, end, cached=end.cached)

    def on_lm_error(self, run: Run, error: BaseException) -> None:
        self._exit(run, error=error)

    # -- tools and retrievers ------------------------------------------------------------------------------
    def on_tool_start(self, run: Run, args: Mapping[str, Any]) -> None:
        self._enter(run, args=dict(args))

    def on_tool_end(self, run: Run, result: Any) -> None:
        self._exit(run, result)

    def on_tool_error(self, run: Run, error: BaseException) -> None:
        self._exit(run, error=error)

    def on_retriever_start(self, run: Run, query: str, k: int) -> None:
        from llama_index.core.instrumentation.events.retrieval import RetrievalStartEvent

        self._enter(run, query=query, k=k)
        with self._lock:
            self._queries[run.run_id] = query
        self.dispatcher.event(RetrievalStartEvent(str_or_query_bundle=_query(query)))

    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None:
        from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent

        nodes = [to_node(p) for p in passages]
        with self._lock:
            query = self._queries.pop(run.run_id, "")
        self.dispatcher.event(RetrievalEndEvent(str_or_query_bundle=_query(query), nodes=nodes))
        self._exit(run, nodes)

    def on_retriever_error(self, run: Run, error: BaseException) -> None:
        with self._lock:
            self._queries.pop(run.run_id, None)
        self._exit(run, error=error)


def _chat(messages: Sequence[Message]) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    roles = {"system": "system", "user": "user", "assistant": "assistant", "tool": "user"}
    return [ChatMessage(role=roles[m["role"]], content=m["content"]) for m in messages]


def _query(query: Any) -> Any:
    from llama_index.core.schema import QueryBundle

    return query if isinstance(query, QueryBundle) else str(query)


__all__ = ["LlamaIndexInstrumentation"]
