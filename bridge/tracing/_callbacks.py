"""The tracing hook: ``lmbridge.Callback`` sees every module, predictor, LM, tool and retriever call,
and every evaluation run, compile trial and example, as a tree of runs.

Install callbacks in the settings, ``lmbridge.configure(callbacks=[...])`` or
``with lmbridge.context(callbacks=[...]):``; worker threads started through ``context_executor``
(Evaluate, the optimizers) inherit them with the rest of the settings. Each call made while a
callback is installed becomes a ``Run``: a fresh ``run_id``, the ``parent_run_id`` of the run it
happened inside (tracked in a ContextVar, so it follows threads and asyncio tasks), a ``kind``, a
``name``, tags and metadata. An exporter (OpenTelemetry in ``lmbridge.otel``, the LangChain and
LlamaIndex adapters) rebuilds the tree from those ids.

With no callback installed, the only cost is one check of ``current().callbacks`` per call.
A callback that raises is logged and skipped, so tracing never changes a program's result; set
``raise_error = True`` on a callback to let its errors through (useful in tests).

Events, by kind (each method receives the ``Run`` first):

    module, predictor   on_module_start(run, inputs)        on_module_end(run, prediction)
                        on_module_error(run, error)
    lm                  on_lm_start(run, messages, params)  on_lm_token(run, delta)
                        on_lm_end(run, LMEnd)               on_lm_error(run, error)
    tool                on_tool_start(run, args)            on_tool_end(run, result)
                        on_tool_error(run, error)
    retriever           on_retriever_start(run, query, k)   on_retriever_end(run, passages)
                        on_retriever_error(run, error)
    compile             on_compile_start(run, settings)     on_compile_end(run, RunScore)
                        on_compile_error(run, error)
    evaluate            on_evaluate_start(run, size)        on_evaluate_end(run, RunScore)
                        on_evaluate_error(run, error)
    trial               on_trial_start(run, size)           on_trial_end(run, RunScore)
                        on_trial_error(run, error)
    example             on_example_start(run, example)      on_example_end(run, RunScore)
                        on_example_error(run, error)
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from lmbridge.toolcalls import ToolCall
    from lmbridge.types import Example, Message, Passage, Prediction, Usage

T = TypeVar("T")
RunKind = Literal["module", "predictor", "lm", "tool", "retriever", "compile", "evaluate", "trial", "example"]

logger = logging.getLogger("lmbridge.callbacks")


@dataclass(slots=True)
class Run:
    """One traced call. Every event of the call carries the same ``Run``; treat it as read-only.
    (Not frozen: building a frozen dataclass costs several times more, on every traced call.)"""

    run_id: str
    """32 hex digits, unique per call (``uuid.UUID(run_id)`` reads it as a UUID)."""
    parent_run_id: str | None
    """The run this call happened inside, or None for a root."""
    kind: RunKind
    name: str
    """The module's class name, the LM's model, the tool's name, the retriever's name, ..."""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """What is known at the start: a predictor's signature, an example's index, ..."""
    start_time: float = 0.0
    """``time.time()`` when the run started."""


@dataclass(slots=True)
class LMEnd:
    """What an LM call produced: the ``on_lm_end`` payload."""

    messages: Sequence[Message]
    text: str
    """The completion text."""
    model: str
    usage: Usage
    """Tokens, cost, retries of this one call (a cache hit counts ``cache_hits=1`` and no tokens)."""
    cached: bool
    """Whether the answer came from the cache."""
    tool_calls: tuple[ToolCall, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    """The request parameters (temperature, max_tokens, tools, ...)."""
    streamed: bool = False
    """Whether the call was streamed (its deltas went to ``on_lm_token``)."""

    @property
    def cost(self) -> float | None:
        return self.usage.cost

    @property
    def retries(self) -> int:
        return self.usage.retries


@dataclass(slots=True)
class RunScore:
    """The end payload of an evaluation run, a trial or an example."""

    score: float | None
    """Percent (0-100) for a run or trial; the metric's score for an example; the best score for a
    compile; None if there is none."""
    errors: int = 0
    """Examples that failed (for an example: 1 when it failed)."""
    error: str | None = None
    """For an example: why it failed."""
    prediction: Prediction | None = None
    """For an example: what the program returned."""
    usage: Usage | None = None
    """For a compile or an Evaluate run: the LM usage of the whole run."""


class Callback:
    """Base class of the tracing hooks: every method is a no-op; override the ones you need.

    Methods are called on the thread (or asyncio task) that makes the call, so a callback used
    with Evaluate or an optimizer must be thread-safe.
    """

    raise_error: bool = False
    """Let exceptions raised by this callback's methods propagate (default: log and go on)."""

    # modules and predictors (kind "module" / "predictor")
    def on_module_start(self, run: Run, inputs: Mapping[str, Any]) -> None: ...
    def on_module_end(self, run: Run, prediction: Any) -> None: ...
    def on_module_error(self, run: Run, error: BaseException) -> None: ...

    # LM calls (kind "lm")
    def on_lm_start(self, run: Run, messages: Sequence[Message], params: Mapping[str, Any]) -> None: ...
    def on_lm_token(self, run: Run, delta: str) -> None:
        """One text delta of a streamed call (``BaseLM.stream``), in order."""

    def on_lm_end(self, run: Run, end: LMEnd) -> None: ...
    def on_lm_error(self, run: Run, error: BaseException) -> None: ...

    # tools (kind "tool")
    def on_tool_start(self, run: Run, args: Mapping[str, Any]) -> None: ...
    def on_tool_end(self, run: Run, result: Any) -> None: ...
    def on_tool_error(self, run: Run, error: BaseException) -> None: ...

    # retrievers (kind "retriever")
    def on_retriever_start(self, run: Run, query: str, k: int) -> None: ...
    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None: ...
    def on_retriever_error(self, run: Run, error: BaseException) -> None: ...

    # evaluation and compiles: an optimizer's compile, an Evaluate run, a trial, one example
    def on_compile_start(self, run: Run, settings: Mapping[str, Any]) -> None: ...
    def on_compile_end(self, run: Run, result: RunScore) -> None: ...
    def on_compile_error(self, run: Run, error: BaseException) -> None: ...
    def on_evaluate_start(self, run: Run, size: int) -> None: ...
    def on_evaluate_end(self, run: Run, result: RunScore) -> None: ...
    def on_evaluate_error(self, run: Run, error: BaseException) -> None: ...
    def on_trial_start(self, run: Run, size: int) -> None: ...
    def on_trial_end(self, run: Run, result: RunScore) -> None: ...
    def on_trial_error(self, run: Run, error: BaseException) -> None: ...
    def on_example_start(self, run: Run, example: Example) -> None: ...
    def on_example_end(self, run: Run, result: RunScore) -> None: ...
    def on_example_error(self, run: Run, error: BaseException) -> None: ...


_GROUP: dict[str, str] = {"module": "module", "predictor": "module", "lm": "lm", "tool": "tool",
                          "retriever": "retriever", "compile": "compile", "evaluate": "evaluate", "trial": "trial",
                          "example": "example"}
_METHODS: dict[str, dict[str, str]] = {
    kind: {event: f"on_{group}_{event}" for event in ("start", "end", "error", "token")}
    for kind, group in _GROUP.items()}
_parent: contextvars.ContextVar[str | None] = contextvars.ContextVar("bridge_parent_run", default=None)


def current_run_id() -> str | None:
    """The id of the innermost traced run here (None outside any, or with no callback installed)."""
    return _parent.get()


class _RunIds:
    """Run ids: a random 64-bit prefix per process (drawn again in a forked child) and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counter = itertools.count(int.from_bytes(os.urandom(8), "big") << 64)

    def next(self) -> str:
        return format(next(self.counter), "032x")


_ids = _RunIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.reset)


def new_run_id() -> str:
    """A fresh run id: 32 hex digits, unique across threads and processes."""
    return _ids.next()


class RunScope:
    """A started run: emits its events to the callbacks and, used as a context manager, makes it
    the parent of the runs started inside (and emits ``on_<kind>_error`` for an exception)."""

    __slots__ = ("_ended", "_methods", "_token", "callbacks", "run")

    def __init__(self, callbacks: Sequence[Callback], run: Run) -> None:
        self.callbacks = callbacks
        self.run = run
        self._methods = _METHODS[run.kind]
        self._token: contextvars.Token[str | None] | None = None
        self._ended = False

    def emit(self, event: str, *payload: Any) -> None:
        """Call ``on_<group>_<event>(run, *payload)`` on every callback (``event``: start, end, error, token)."""
        method = self._methods[event]
        for callback in self.callbacks:
            try:
                getattr(callback, method)(self.run, *payload)
            except Exception:
                if callback.raise_error:
                    raise
                logger.warning("callback %s.%s failed", type(callback).__name__, method, exc_info=True)

    def end(self, payload: Any) -> None:
        if not self._ended:
            self._ended = True
            self.emit("end", payload)

    def error(self, error: BaseException) -> None:
        if not self._ended:
            self._ended = True
            self.emit("error", error)

    def __enter__(self) -> RunScope:
        self._token = _parent.set(self.run.run_id)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            _parent.reset(self._token)
            self._token = None
        if exc is not None:
            self.error(exc)

    def each(self, items: Iterator[T]) -> Iterator[T]:
        """Iterate ``items`` with this run as the parent while each item is produced (for generators,
        whose body runs in the consumer's context between items)."""
        while True:
            token = _parent.set(self.run.run_id)
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                _parent.reset(token)
            yield item

    async def aeach(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``each`` for an async iterator."""
        while True:
            token = _parent.set(self.run.run_id)
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _parent.reset(token)
            yield item


class _NoRun(RunScope):
    """The scope used when no callback is installed: every method does nothing."""

    def emit(self, event: str, *payload: Any) -> None:
        pass

    def __enter__(self) -> RunScope:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass

    def each(self, items: Iterator[T]) -> Iterator[T]:
        return items

    def aeach(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        return items


_NO_METADATA: Mapping[str, Any] = MappingProxyType({})
NO_RUN: RunScope = _NoRun((), Run("", None, "module", ""))
"""The scope ``start_run`` returns when no callback is installed."""


class CallbackSet(tuple[Callback, ...]):
    """The installed callbacks (what ``Settings.callbacks`` holds): a tuple that also knows, for
    each kind of run, which callbacks override one of its methods. A run is made only for those,
    so a callback that watches LM calls alone costs nothing on the other runs."""

    targets: dict[str, tuple[Callback, ...]]

    def __new__(cls, callbacks: Iterable[Callback] = ()) -> CallbackSet:
        self = super().__new__(cls, callbacks)
        self.targets = {group: tuple(c for c in self if _overrides(type(c), group)) for group in set(_GROUP.values())}
        return self


def _overrides(cls: type[Callback], group: str) -> bool:
    return any(getattr(cls, name) is not getattr(Callback, name) for name in _METHODS[group].values()
               if hasattr(Callback, name))


def watched(callbacks: Sequence[Callback], kind: RunKind) -> bool:
    """Whether any of ``callbacks`` overrides a method of ``kind`` (a run of it would be made)."""
    if not callbacks:
        return False
    if not isinstance(callbacks, CallbackSet):
        callbacks = CallbackSet(callbacks)
    return bool(callbacks.targets[_GROUP[kind]])


def start_run(kind: RunKind, name: str, *start: Any, callbacks: Sequence[Callback] | None = None,
              metadata: Mapping[str, Any] | None = None, tags: Sequence[str] = ()) -> RunScope:
    """Start a run of ``kind`` under the current parent and emit its start event with ``start``.

    ``callbacks`` defaults to the installed ones. The run goes to those that override a method of
    its kind; when there are none (no callback installed, or none that watches this kind), this
    returns ``NO_RUN``, and the runs inside have the nearest run made as their parent. Use the
    scope as a context manager to make it the parent of the runs inside it, and call
    ``scope.end(payload)`` when the call succeeds.
    """
    if callbacks is None:
        from lmbridge.settings import current

        callbacks = current().callbacks
    if not callbacks:
        return NO_RUN
    if not isinstance(callbacks, CallbackSet):
        callbacks = CallbackSet(callbacks)
    targets = callbacks.targets[_GROUP[kind]]
    if not targets:
        return NO_RUN
    run = Run(new_run_id(), _parent.get(), kind, name, tags if isinstance(tags, tuple) else tuple(tags),
              metadata if metadata is not None else _NO_METADATA, time.time())
    scope = RunScope(targets, run)
    scope.emit("start", *start)
    return scope
