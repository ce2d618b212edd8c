"""Per-run data: usage accumulated over a block of work, and the trace of predictor calls.

Both live in ContextVars of their own, never in Settings and never in global lists. A tracker is
shared with the worker threads that copied the context, and guarded by a lock.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lmbridge.types import Usage


@dataclass
class UsageTracker:
    """Usage summed over every LM call made inside ``track_usage()``, thread-safe."""

    usage: Usage = field(default_factory=Usage)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, usage: Usage) -> None:
        with self._lock:
            self.usage.add(usage)


_trackers: contextvars.ContextVar[tuple[UsageTracker, ...]] = contextvars.ContextVar("bridge_usage", default=())
_trace: contextvars.ContextVar[list[tuple[Any, dict[str, Any], Any]] | None] = contextvars.ContextVar(
    "bridge_trace", default=None)


@contextmanager
def track_usage() -> Iterator[UsageTracker]:
    """Sum the usage of every LM call in the block (nested trackers each see the calls)."""
    tracker = UsageTracker()
    token = _trackers.set((*_trackers.get(), tracker))
    try:
        yield tracker
    finally:
        _trackers.reset(token)


def record_usage(usage: Usage) -> None:
    for tracker in _trackers.get():
        tracker.add(usage)


@contextmanager
def trace() -> Iterator[list[tuple[Any, dict[str, Any], Any]]]:
    """Record ``(predictor, inputs, prediction)`` for each Predict call in the block."""
    steps: list[tuple[Any, dict[str, Any], Any]] = []
    token = _trace.set(steps)
    try:
        yield steps
    finally:
        _trace.reset(token)


def record_step(predictor: Any, inputs: dict[str, Any], prediction: Any) -> None:
    steps = _trace.get()
    if steps is not None:
        steps.append((predictor, inputs, prediction))


def current_trace() -> list[tuple[Any, dict[str, Any], Any]] | None:
    return _trace.get()
