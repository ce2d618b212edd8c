"""Streaming and tracing for ``BaseLM`` (mixed into it): ``stream`` / ``astream`` yield the text as
it is written and end with the same ``Completion`` that ``complete`` returns; the traced twins of
``complete`` report each call to the installed callbacks.

A streamed call goes through the same cache, retries, usage and history as ``complete``: a cache
hit yields its text as one chunk; a transient failure is retried only before the first chunk (a
request that already produced text is never re-sent); the finished answer is stored and counted.

A subclass streams by implementing ``_send_stream`` (and ``_asend_stream`` for native async): yield
``str`` deltas, then the ``RawResult`` of the whole answer. An LM that does not gets the default,
which yields its ``_send`` answer as one chunk.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lmbridge.settings import current
from lmbridge.tracing import NO_RUN, Callback, LMEnd, RunScope, start_run, watched

if TYPE_CHECKING:
    from lmbridge.errors import LMError
    from lmbridge.formats import PromptFormat
    from lmbridge.lm._client import Completion, RawResult, TransientError
    from lmbridge.signatures import Signature
    from lmbridge.types import Message


class StreamingMixin:
    """The streaming and tracing half of ``BaseLM``."""

    if TYPE_CHECKING:  # what the mixin uses of BaseLM
        model: str
        params: dict[str, Any]
        num_retries: int

        def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                  fmt: PromptFormat | None) -> RawResult: ...
        async def _asend(self, messages: list[Message], params: dict[str, Any],
                         signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult: ...
        def _prepare(self, messages: list[Message],
                     params: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]: ...
        def _hit(self, key: str | None, messages: list[Message]) -> Completion | None: ...
        def _outgoing(self, messages: list[Message], merged: dict[str, Any]) -> dict[str, Any]: ...
        def _store(self, key: str | None, messages: list[Message], raw: RawResult, retries: int) -> Completion: ...
        def _wait(self, attempt: int, error: TransientError) -> float: ...
        def _failed(self, error: TransientError, attempts: int, retries: int) -> LMError: ...
        def _complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                      signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion: ...
        async def _acomplete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                             signature: type[Signature] | None = None,
                             fmt: PromptFormat | None = None) -> Completion: ...

    # -- what a subclass provides --------------------------------------------------------------
    def _send_stream(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        """Default for an LM that cannot stream: its whole answer as one chunk."""
        raw = self._send(messages, params, signature, fmt)
        if raw.text:
            yield raw.text
        yield raw

    async def _asend_stream(self, messages: list[Message], params: dict[str, Any],
                            signature: type[Signature] | None,
                            fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        """Default: the sync stream on worker threads when the LM streams, else ``_asend`` as one chunk."""
        if type(self)._send_stream is StreamingMixin._send_stream:
            raw = await self._asend(messages, params, signature, fmt)
            if raw.text:
                yield raw.text
            yield raw
            return
        import asyncio

        chunks = self._send_stream(messages, params, signature, fmt)
        done = object()
        try:
            while True:
                item = await asyncio.to_thread(next, chunks, done)
                if item is done:
                    return
                yield item  # type: ignore[misc]
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    # -- streaming -------------------------------------------------------------------------------
    def stream(self, messages: list[Message], params: dict[str, Any] | None = None, *,
               signature: type[Signature] | None = None,
               fmt: PromptFormat | None = None) -> Iterator[str | Completion]:
        """Yield the completion's text deltas as the model writes them, then the ``Completion``."""
        items = self._stream(messages, params, signature, fmt)
        callbacks = current().callbacks
        if not callbacks:
            return items
        scope, merged = _lm_run(self, callbacks, messages, params)
        return items if scope is NO_RUN else _traced_stream(scope, items, messages, self.model, merged)

    def astream(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                signature: type[Signature] | None = None,
                fmt: PromptFormat | None = None) -> AsyncIterator[str | Completion]:
        """The async twin of ``stream``."""
        items = self._astream(messages, params, signature, fmt)
        callbacks = current().callbacks
        if not callbacks:
            return items
        scope, merged = _lm_run(self, callbacks, messages, params)
        return items if scope is NO_RUN else _atraced_stream(scope, items, messages, self.model, merged)

    def _stream(self, messages: list[Message], params: dict[str, Any] | None,
                signature: type[Signature] | None, fmt: PromptFormat | None) -> Iterator[str | Completion]:
        from lmbridge.lm._client import TransientError

        merged, key = self._prepare(messages, params)
        hit = self._hit(key, messages)
        if hit is not None:
            if hit.text:
                yield hit.text
            yield hit
            return
        send_params = self._outgoing(messages, merged)
        for attempt in range(self.num_retries + 1):
            started = False
            try:
                for item in self._send_stream(messages, send_params, signature, fmt):
                    if not isinstance(item, str):
                        yield self._store(key, messages, item, attempt)
                        return
                    if item:
                        started = True
                        yield item
            except TransientError as error:
                if started or attempt >= self.num_retries:
                    raise self._failed(error, attempt + 1, attempt) from error.error.__cause__
                time.sleep(self._wait(attempt, error))
                continue
            raise _no_result(self.model)
        raise AssertionError("unreachable")

    async def _astream(self, messages: list[Message], params: dict[str, Any] | None,
                       signature: type[Signature] | None,
                       fmt: PromptFormat | None) -> AsyncIterator[str | Completion]:
        import asyncio

        from lmbridge.lm._client import TransientError

        merged, key = self._prepare(messages, params)
        hit = self._hit(key, messages)
        if hit is not None:
            if hit.text:
                yield hit.text
            yield hit
            return
        send_params = self._outgoing(messages, merged)
        for attempt in range(self.num_retries + 1):
            started = False
            try:
                async for item in self._asend_stream(messages, send_params, signature, fmt):
                    if not isinstance(item, str):
                        yield self._store(key, messages, item, attempt)
                        return
                    if item:
                        started = True
                        yield item
            except TransientError as error:
                if started or attempt >= self.num_retries:
                    raise self._failed(error, attempt + 1, attempt) from error.error.__cause__
                await asyncio.sleep(self._wait(attempt, error))
                continue
            raise _no_result(self.model)
        raise AssertionError("unreachable")

    # -- tracing ----------------------------------------------------------------------------------
    def _traced_complete(self, callbacks: Sequence[Callback], messages: list[Message],
                         params: dict[str, Any] | None, signature: type[Signature] | None,
                         fmt: PromptFormat | None) -> Completion:
        if not watched(callbacks, "lm"):
            return self._complete(messages, params, signature=signature, fmt=fmt)
        scope, merged = _lm_run(self, callbacks, messages, params)
        try:
            completion = self._complete(messages, params, signature=signature, fmt=fmt)
        except BaseException as error:
            scope.error(error)
            raise
        scope.end(_lm_end(messages, self.model, completion, merged, streamed=False))
        return completion

    async def _atraced_complete(self, callbacks: Sequence[Callback], messages: list[Message],
                                params: dict[str, Any] | None, signature: type[Signature] | None,
                                fmt: PromptFormat | None) -> Completion:
        if not watched(callbacks, "lm"):
            return await self._acomplete(messages, params, signature=signature, fmt=fmt)
        scope, merged = _lm_run(self, callbacks, messages, params)
        try:
            completion = await self._acomplete(messages, params, signature=signature, fmt=fmt)
        except BaseException as error:
            scope.error(error)
            raise
        scope.end(_lm_end(messages, self.model, completion, merged, streamed=False))
        return completion


def _lm_run(lm: StreamingMixin, callbacks: Sequence[Callback], messages: list[Message],
            params: dict[str, Any] | None) -> tuple[RunScope, dict[str, Any]]:
    merged = {**lm.params, **params} if params else dict(lm.params)
    return start_run("lm", lm.model, messages, merged, callbacks=callbacks), merged


def _lm_end(messages: list[Message], model: str, completion: Completion, params: dict[str, Any], *,
            streamed: bool) -> LMEnd:
    return LMEnd(messages, completion.text, model, completion.usage, completion.cached, completion.tool_calls,
                 params, streamed)


def _traced_stream(scope: RunScope, items: Iterator[str | Completion], messages: list[Message], model: str,
                   params: dict[str, Any]) -> Iterator[str | Completion]:
    try:
        for item in items:
            if isinstance(item, str):
                scope.emit("token", item)
            else:
                scope.end(LMEnd(messages, item.text, model, item.usage, item.cached, item.tool_calls, params, True))
            yield item
    except BaseException as error:
        scope.error(error)
        raise


async def _atraced_stream(scope: RunScope, items: AsyncIterator[str | Completion], messages: list[Message],
                          model: str, params: dict[str, Any]) -> AsyncIterator[str | Completion]:
    try:
        async for item in items:
            if isinstance(item, str):
                scope.emit("token", item)
            else:
                scope.end(LMEnd(messages, item.text, model, item.usage, item.cached, item.tool_calls, params, True))
            yield item
    except BaseException as error:
        scope.error(error)
        raise


def _no_result(model: str) -> Exception:
    from lmbridge.errors import LMError

    return LMError(f"{model}: the stream ended without a final result", model=model)

