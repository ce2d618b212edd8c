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

The hook's interface (``Callback``, ``Run``, ``LMEnd``, ``RunScore``, ``CallbackSet``) lives in
``lmbridge._hooks``, below the settings; this module starts runs and routes their events.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from lmbridge._hooks import GROUP, METHODS, Callback, CallbackSet, Run, RunKind
from lmbridge.settings import current

T = TypeVar("T")

logger = logging.getLogger("lmbridge.callbacks")

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
        self._methods = METHODS[run.kind]
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

def watched(callbacks: Sequence[Callback], kind: RunKind) -> bool:
    """Whether any of ``callbacks`` overrides a method of ``kind`` (a run of it would be made)."""
    if not callbacks:
        return False
    if not isinstance(callbacks, CallbackSet):
        callbacks = CallbackSet(callbacks)
    return bool(callbacks.targets[GROUP[kind]])


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
        callbacks = current().callbacks
    if not callbacks:
        return NO_RUN
    if not isinstance(callbacks, CallbackSet):
        callbacks = CallbackSet(callbacks)
    targets = callbacks.targets[GROUP[kind]]
    if not targets:
        return NO_RUN
    run = Run(new_run_id(), _parent.get(), kind, name, tags if isinstance(tags, tuple) else tuple(tags),
              metadata if metadata is not None else _NO_METADATA, time.time())
    scope = RunScope(targets, run)
    scope.emit("start", *start)
    return scope
