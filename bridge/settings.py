"""Configuration: one frozen ``Settings`` value, read through a ContextVar.

Precedence, highest first: an argument given to a module or call, then the innermost
``lmbridge.context(...)``, then ``lmbridge.configure(...)``. ``configure`` replaces the process-wide
default (it never mutates it); ``context`` applies to the current thread or task and to the worker
threads started through ``context_executor``, which copy the caller's context into each task.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lmbridge._hooks import Callback, CallbackSet
from lmbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from lmbridge.formats import PromptFormat
    from lmbridge.lm import BaseLM

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    """The settings in force. Frozen: change them with ``configure`` or ``context``."""

    lm: BaseLM | None = None
    """The LM that Predict uses when it was given none."""
    format: PromptFormat | None = None
    """The prompt format; None means ChatFormat()."""
    num_threads: int = 8
    """Default worker threads for Evaluate and the optimizers."""
    callbacks: tuple[Callback, ...] = ()
    """The tracing hooks (``lmbridge.Callback``) that see every call; given as any sequence."""


_default = Settings()
_current: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("bridge_settings", default=None)
_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))


def _check(changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - _FIELDS)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {unknown}; known: {sorted(_FIELDS)}")
    lm = changes.get("lm")
    if lm is not None and not callable(getattr(lm, "complete", None)):
        raise ConfigurationError(f"lm must be a bridge LM (lmbridge.LM(...)), got {type(lm).__name__}")
    if "callbacks" in changes:
        changes["callbacks"] = _callbacks(changes["callbacks"])


def _callbacks(value: Any) -> tuple[Callback, ...]:
    if value is None:
        return ()
    if isinstance(value, Callback) or not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"callbacks must be a list of lmbridge.Callback, got {type(value).__name__}")
    wrong = [type(c).__name__ for c in value if not isinstance(c, Callback)]
    if wrong:
        raise ConfigurationError(f"callbacks must be lmbridge.Callback instances (subclass it); got {wrong}")
    return CallbackSet(value)


def configure(**changes: Any) -> None:
    """Set process-wide defaults, for example ``lmbridge.configure(lm=lmbridge.LM("local/smollm2"))``."""
    global _default
    _check(changes)
    _default = dataclasses.replace(_default, **changes)


@contextmanager
def context(**changes: Any) -> Iterator[Settings]:
    """Override settings inside a ``with`` block, for this thread or task and its workers."""
    _check(changes)
    token = _current.set(dataclasses.replace(current(), **changes))
    try:
        yield _current.get() or _default
    finally:
        _current.reset(token)


def current() -> Settings:
    """The settings in force here."""
    return _current.get() or _default


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitting caller's context."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


def context_executor(max_workers: int | None = None) -> ContextThreadPool:
    """A thread pool that carries the caller's settings into its workers."""
    return ContextThreadPool(max_workers=max_workers or current().num_threads)
