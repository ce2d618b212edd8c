"""The core's tracing hook feeding LangChain callbacks: ``LangChainCallback``.

A ``lmbridge.Callback`` that turns each bridge run into a LangChain run under a parent LangChain run,
so LangChain handlers (LangSmith's tracer, ``astream_events``, your own ``BaseCallbackHandler``) see
the whole tree:

* a module or predictor run: a chain run (its inputs and output fields);
* an LM call: a chat-model run with the messages, the text (and tool calls), the token usage, the
  model name and whether it came from the cache; streamed tokens as ``on_llm_new_token``;
* a tool call: a tool run; a retrieval: a retriever run whose documents are the passages.

``ProgramRunnable`` installs one for each call, under its own chain run: the program's own run is
that chain run, so a Predict shows as one chain run with its LM call inside. A ``LangChainLM`` call
is shown by the LangChain model's own run (it gets the parent's callbacks), not a second time here.
Tags and metadata of the LangChain config reach every run through the inherited callback managers.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForChainRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

from lmbridge import Callback, LMEnd, Message, Passage, Prediction, Run, context, current, current_run_id
from lmbridge.adapters.langchain._messages import REPORTING_MODELS, to_langchain_messages
from lmbridge.signatures import to_jsonable


class LangChainCallback(Callback):
    """Report bridge runs as LangChain runs under ``parent`` (a LangChain chain run manager).

    ``program`` names the program whose own (outermost) run *is* ``parent``; its runs are not
    repeated. Thread-safe: a program may run its predictors on worker threads.
    """

    def __init__(self, parent: CallbackManagerForChainRun, *, program: str | None = None,
                 outer: str | None = None) -> None:
        self.parent = parent
        self.program = program
        self.outer = outer
        self._managers: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- where a run goes --------------------------------------------------------------------------
    def child_manager(self, run_id: str | None) -> CallbackManager:
        """The callback manager for runs started inside the bridge run ``run_id``."""
        with self._lock:
            manager = self._managers.get(run_id) if run_id is not None else None
        return (manager or self.parent).get_child()

    def _parent_of(self, run: Run, metadata: Mapping[str, Any] | None = None) -> CallbackManager:
        manager = self.child_manager(run.parent_run_id)
        if metadata:
            manager.add_metadata(dict(metadata), inherit=False)
        return manager

    def _keep(self, run: Run, manager: Any) -> None:
        with self._lock:
            self._managers[run.run_id] = manager

    def _take(self, run: Run) -> Any:
        with self._lock:
            return self._managers.pop(run.run_id, None)

    def _is_program(self, run: Run) -> bool:
        return self.program is not None and run.parent_run_id == self.outer and run.name == self.program

    # -- modules and predictors ----------------------------------------------------------------------
    def on_module_start(self, run: Run, inputs: Mapping[str, Any]) -> None:
        if self._is_program(run):
            self._keep(run, _Alias(self.parent))
            return
        manager = self._parent_of(run, {k: str(v) for k, v in run.metadata.items()}).on_chain_start(
            None, _plain(dict(inputs)), run_id=uuid.UUID(run.run_id), name=run.name)
        self._keep(run, manager)

    def on_module_end(self, run: Run, prediction: Any) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_chain_end(_outputs(prediction))

    def on_module_error(self, run: Run, error: BaseException) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_chain_error(error)

    # -- LM calls ------------------------------------------------------------------------------------
    def on_lm_start(self, run: Run, messages: Sequence[Message], params: Mapping[str, Any]) -> None:
        if run.name in REPORTING_MODELS:
            return  # a LangChainLM: its LangChain model reports its own run
        shown = {k: v for k, v in params.items() if k not in ("tools", "tool_choice")}
        metadata = {"ls_model_name": run.name, "ls_provider": "lmbridge", "ls_model_type": "chat",
                    **({"ls_temperature": params["temperature"]} if "temperature" in params else {})}
        managers = self._parent_of(run, metadata).on_chat_model_start(
            {"name": run.name}, [to_langchain_messages(list(messages))], run_id=uuid.UUID(run.run_id),
            name=run.name, invocation_params={**_plain(shown), "model": run.name})
        self._keep(run, managers[0])

    def on_lm_token(self, run: Run, delta: str) -> None:
        with self._lock:
            manager = self._managers.get(run.run_id)
        if manager is not None:
            manager.on_llm_new_token(delta, chunk=ChatGenerationChunk(message=AIMessageChunk(content=delta)))

    def on_lm_end(self, run: Run, end: LMEnd) -> None:
        manager = self._take(run)
        if manager is None:
            return
        usage = {"input_tokens": end.usage.prompt_tokens, "output_tokens": end.usage.completion_tokens,
                 "total_tokens": end.usage.total_tokens}
        calls = [{"name": c.name, "args": c.args if isinstance(c.args, dict) else {}, "id": c.id or f"call_{i}"}
                 for i, c in enumerate(end.tool_calls)]
        message = AIMessage(content=end.text, tool_calls=calls, usage_metadata=usage,
                            response_metadata={"model_name": end.model, "cached": end.cached,
                                               "retries": end.retries, "cost": end.cost})
        manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]],
                                     llm_output={"token_usage": {"prompt_tokens": usage["input_tokens"],
                                                                 "completion_tokens": usage["output_tokens"],
                                                                 "total_tokens": usage["total_tokens"]},
                                                 "model_name": end.model}))

    def on_lm_error(self, run: Run, error: BaseException) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_llm_error(error)

    # -- tools and retrievers ----------------------------------------------------------------------
    def on_tool_start(self, run: Run, args: Mapping[str, Any]) -> None:
        shown = _plain(dict(args))
        manager = self._parent_of(run).on_tool_start(
            {"name": run.name, "description": str(run.metadata.get("description", ""))},
            json.dumps(shown, ensure_ascii=False, default=str), run_id=uuid.UUID(run.run_id), name=run.name,
            inputs=shown)
        self._keep(run, manager)

    def on_tool_end(self, run: Run, result: Any) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_tool_end(result)

    def on_tool_error(self, run: Run, error: BaseException) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_tool_error(error)

    def on_retriever_start(self, run: Run, query: str, k: int) -> None:
        manager = self._parent_of(run, {"k": k}).on_retriever_start({"name": run.name}, query,
                                                                    run_id=uuid.UUID(run.run_id), name=run.name)
        self._keep(run, manager)

    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_retriever_end([Document(page_content=p.text, metadata={**p.metadata, "score": p.score})
                                      for p in passages])

    def on_retriever_error(self, run: Run, error: BaseException) -> None:
        manager = self._take(run)
        if manager is not None:
            manager.on_retriever_error(error)


class _Alias:
    """Stands for the parent chain run itself: the program's own run is not reported twice."""

    def __init__(self, manager: CallbackManagerForChainRun) -> None:
        self.manager = manager

    def get_child(self) -> CallbackManager:
        return self.manager.get_child()

    def on_chain_end(self, outputs: Any) -> None:
        pass

    def on_chain_error(self, error: BaseException) -> None:
        pass


def _plain(value: Any) -> Any:
    try:
        return to_jsonable(value)
    except Exception:
        return str(value)


def _outputs(prediction: Any) -> dict[str, Any]:
    if isinstance(prediction, Prediction):
        return dict(_plain(prediction.to_dict()))
    return {"output": _plain(prediction)}


@contextmanager
def traced(run_manager: Any, program: Any) -> Iterator[None]:
    """Run the block with bridge runs reported under ``run_manager`` (a sync or async chain run).
    With no LangChain handler to report to, nothing is installed (tracing then costs nothing)."""
    if not (run_manager.handlers or run_manager.inheritable_handlers):
        yield
        return
    parent = run_manager.get_sync() if hasattr(run_manager, "get_sync") else run_manager
    callback = LangChainCallback(parent, program=type(program).__name__, outer=current_run_id())
    with context(callbacks=[*current().callbacks, callback]):
        yield


def langchain_config() -> dict[str, Any] | None:
    """The LangChain config a ``LangChainLM`` call should run with: callbacks under the bridge run it
    happens in, when a ``LangChainCallback`` is installed; else None (LangChain's own context)."""
    for callback in current().callbacks:
        if isinstance(callback, LangChainCallback):
            return {"callbacks": callback.child_manager(current_run_id())}
    return None


__all__ = ["LangChainCallback", "langchain_config", "traced"]

