"""``BaseLM``: the backend protocol and everything common to every backend (cache, retries with
backoff, usage, bounded history, streaming, tracing). A backend implements the four public hooks
``send``, ``asend``, ``send_stream`` and ``asend_stream`` (only ``send`` is required); callers use
``complete``, ``acomplete``, ``stream`` and ``astream``.

Each request runs one flow (``_request_flow``), written once for sync and async, whole and streamed
(see ``lmbridge.lm._flow``): a cache hit is answered at once; a ``TransientError`` from the backend
is retried with backoff (a stream only before its first chunk: text already shown is never sent
again); the finished answer is stored, counted and recorded. A completed answer is never re-sent.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lmbridge.errors import LMError, LogprobsUnavailableError, ParseError, TruncatedError
from lmbridge.lm._cache import Cache, cache_key
from lmbridge.lm._cache_redis import default_cache
from lmbridge.lm._flow import END, Emit, Flow, Item, Open, Pull, Sleep, adrive, alast, drive, last, tapped
from lmbridge.lm._scoring import OptionScores
from lmbridge.lm._types import Completion, HistoryEntry, RawResult, TransientError, truncated
from lmbridge.settings import current
from lmbridge.toolcalls import ToolCall
from lmbridge.tracing import NO_RUN, Callback, LMEnd, RunScope, record_usage, start_run, watched
from lmbridge.types import Message, Usage

if TYPE_CHECKING:
    from lmbridge.formats import Constraint, PromptFormat
    from lmbridge.signatures import Signature

_KEY_ONLY_PARAMS = frozenset({"rollout_id"})  # part of the cache key, never sent


class BaseLM:
    """The interface Predict talks to. A backend subclasses it and implements ``send`` (and, when it
    can, ``asend``, ``send_stream``, ``asend_stream``); the base class adds the cache, retries with
    backoff, usage, history and tracing around them.

    A request may offer the model tools: ``params["tools"]`` (OpenAI function specs) and
    ``params["tool_choice"]``. Being parameters, they are part of the cache key; the model's calls
    come back as ``RawResult.tool_calls`` / ``Completion.tool_calls`` and are cached and recorded
    in the history with the text. A subclass that sends them says so in ``supports_function_calling``.
    """

    model: str = "lm"

    def __init__(self, model: str, *, cache: bool | Cache = True, num_retries: int = 3, backoff: float = 0.5,
                 history_size: int = 100, **params: Any) -> None:
        self.model = model
        self.params = params
        self.num_retries = num_retries
        self.backoff = backoff
        self._cache: Cache | None = (default_cache() if cache is True else cache) if cache is not False else None
        self.history: deque[HistoryEntry] = deque(maxlen=history_size)
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    # -- the backend protocol: what a subclass provides ----------------------------------------------
    def send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
             fmt: PromptFormat | None) -> RawResult:
        """Send one request and return the whole answer. Required.

        ``messages`` are the chat messages; ``params`` the request parameters (the LM's own merged
        with the call's, without cache-only keys; ``tools``/``tool_choice`` when tools are offered);
        ``signature`` and ``fmt`` say what the answer should hold, for backends that need it (test
        doubles); most ignore them. Return a ``RawResult`` with the text, token counts, tool calls
        and the ``finish_reason`` the backend reported (``"length"`` marks a truncated answer).

        Raise ``TransientError(error)`` for a failure worth retrying (the request was not completed:
        a connection error, a timeout, HTTP 408/429/5xx); any ``LMError`` subclass for a failure that
        is final. Raise nothing else: map the client's exceptions to bridge errors, ``from`` them."""
        raise NotImplementedError(f"{type(self).__name__} must implement send()")

    async def asend(self, messages: list[Message], params: dict[str, Any],
                    signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        """``send`` for async callers, with the same arguments, result and errors. The default runs
        ``send`` on a worker thread; a backend with a native async client overrides it."""
        import asyncio  # imported here: `import lmbridge` stays fast, and sync callers never load asyncio

        return await asyncio.to_thread(self.send, messages, params, signature, fmt)

    def send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                    fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        """Send one request streamed: yield the text deltas (``str``) as they come, then the
        ``RawResult`` of the whole answer, last. Raises as ``send`` does; a ``TransientError`` is
        retried only before the first non-empty delta. The default yields ``send``'s answer as one
        chunk."""
        raw = self.send(messages, params, signature, fmt)
        if raw.text:
            yield raw.text
        yield raw

    async def asend_stream(self, messages: list[Message], params: dict[str, Any],
                           signature: type[Signature] | None,
                           fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        """``send_stream`` for async callers, with the same items and errors. The default runs the
        sync stream on worker threads when the backend streams, else ``asend``'s answer as one chunk."""
        if type(self).send_stream is BaseLM.send_stream:
            raw = await self.asend(messages, params, signature, fmt)
            if raw.text:
                yield raw.text
            yield raw
            return
        import asyncio  # imported here, as in asend

        chunks = self.send_stream(messages, params, signature, fmt)
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

    # -- what callers use ---------------------------------------------------------------------------
    def complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                 signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        """Ask the model (or the cache) for one completion of ``messages``.

        ``params={"tools": [...], "tool_choice": "auto"}`` offers the model tools (OpenAI function
        specs, such as ``Tool.to_function_spec()``); its calls come back in ``tool_calls``. Raises an
        ``LMError`` subclass; with a ``signature`` (values will be read), ``TruncatedError`` when the
        answer stopped at its token limit (without one, ``finish_reason`` says so)."""
        return last(drive(self._flow(messages, params, signature, fmt, streamed=False)))

    async def acomplete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                        signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        """The async twin of ``complete``."""
        return await alast(adrive(self._flow(messages, params, signature, fmt, streamed=False)))

    def stream(self, messages: list[Message], params: dict[str, Any] | None = None, *,
               signature: type[Signature] | None = None,
               fmt: PromptFormat | None = None) -> Iterator[str | Completion]:
        """Yield the completion's text deltas as the model writes them, then the ``Completion``."""
        return drive(self._flow(messages, params, signature, fmt, streamed=True))

    def astream(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                signature: type[Signature] | None = None,
                fmt: PromptFormat | None = None) -> AsyncIterator[str | Completion]:
        """The async twin of ``stream``."""
        return adrive(self._flow(messages, params, signature, fmt, streamed=True))

    def __call__(self, prompt: str | list[Message], **params: Any) -> str:
        """Convenience: ``lm("Say hi")`` or ``lm(messages)`` returns the completion text."""
        messages: list[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.complete(messages, params).text

    # -- the one request flow -----------------------------------------------------------------------
    def _flow(self, messages: list[Message], params: dict[str, Any] | None, signature: type[Signature] | None,
              fmt: PromptFormat | None, *, streamed: bool) -> Flow:
        """The request flow, traced when callbacks watch LM calls (the run starts now, not when the
        caller begins reading)."""
        flow = self._request_flow(messages, params, signature, fmt, streamed)
        callbacks = current().callbacks
        if not callbacks or (not streamed and not watched(callbacks, "lm")):
            return flow
        scope, merged = _lm_run(self, callbacks, messages, params)
        if scope is NO_RUN:
            return flow

        def seen(item: Item) -> None:
            if isinstance(item, str):
                scope.emit("token", item)
            else:
                scope.end(LMEnd(messages, item.text, self.model, item.usage, item.cached, item.tool_calls,
                                merged, streamed))

        return tapped(flow, seen, scope.error)

    def _request_flow(self, messages: list[Message], params: dict[str, Any] | None,
                      signature: type[Signature] | None, fmt: PromptFormat | None, streamed: bool) -> Flow:
        merged = {**self.params, **params} if params else self.params
        key = cache_key(self.cache_name(), messages, merged) if self._cache is not None else None
        hit = self._hit(key, messages)
        if hit is not None:
            self._check(hit, merged, signature, fmt)
            if streamed and hit.text:
                yield Emit(hit.text)
            yield Emit(hit)
            return
        args = (messages, self._outgoing(messages, merged), signature, fmt)
        for attempt in range(self.num_retries + 1):
            started = False
            try:
                yield Open(self, streamed, args)
                while isinstance(item := (yield Pull()), str):
                    if item:
                        started = True
                        if streamed:
                            yield Emit(item)
            except TransientError as error:
                if started or attempt >= self.num_retries:
                    raise self._failed(error, attempt + 1, attempt) from error.error.__cause__
                yield Sleep(self._wait(attempt, error))
                continue
            if item is END or not isinstance(item, RawResult):
                raise LMError(f"{self.model}: the answer ended without a final result", model=self.model)
            completion = self._store(key, messages, item, attempt)
            self._check(completion, merged, signature, fmt)
            yield Emit(completion)
            return

    # -- cache, usage and history -------------------------------------------------------------------
    def _outgoing(self, messages: list[Message], merged: dict[str, Any]) -> dict[str, Any]:
        """The parameters sent with a request: the merged ones less those only for the cache key."""
        return {k: v for k, v in merged.items() if k not in _KEY_ONLY_PARAMS}

    def _hit(self, key: str | None, messages: list[Message]) -> Completion | None:
        if key is None or self._cache is None:
            return None
        record = self._cache.get(key)
        if record is None:
            return None
        try:
            calls = tuple(ToolCall.from_record(c) for c in record.get("tool_calls", ()))
            text = record["text"]
            reason = record.get("finish_reason")
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
            self._cache.discard(key)  # a corrupt entry is a miss, counted; never an error
            return None
        usage = Usage(cache_hits=1)
        self._finish(messages, text, usage, True, calls)
        return Completion(text, usage, True, calls, reason)

    def _store(self, key: str | None, messages: list[Message], raw: RawResult, retries: int) -> Completion:
        usage = Usage(calls=1, prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens,
                      cost=raw.cost, retries=retries)
        if key is not None and self._cache is not None:
            record: dict[str, Any] = {"text": raw.text, "prompt_tokens": raw.prompt_tokens,
                                      "completion_tokens": raw.completion_tokens}
            if raw.tool_calls:
                record["tool_calls"] = [c.to_record() for c in raw.tool_calls]
            if raw.finish_reason is not None:
                record["finish_reason"] = raw.finish_reason
            self._cache.set(key, record)
        self._finish(messages, raw.text, usage, False, raw.tool_calls)
        return Completion(raw.text, usage, False, raw.tool_calls, raw.finish_reason)

    def _check(self, completion: Completion, merged: dict[str, Any], signature: type[Signature] | None,
               fmt: PromptFormat | None) -> None:
        """Raise ``TruncatedError`` when values are to be read (``signature`` given: a Predict) from an
        answer that stopped at its token limit, unless every value was stated before the cut: the
        format reads the same values from the text with its last, cut-off line dropped (a model that
        answered and then ran on into a new block). It was counted (and cached: read again, it raises
        the same error). A raw call (no signature) gets the text, with ``finish_reason`` saying it was cut."""
        if signature is None or not truncated(completion.finish_reason):
            return
        if fmt is not None and _stated_before_the_cut(fmt, signature, completion.text):
            return
        limit = merged.get("max_tokens")
        raise TruncatedError(self.model, limit if isinstance(limit, int) else None, completion.text)

    def _finish(self, messages: list[Message], text: str, usage: Usage, cached: bool,
                tool_calls: tuple[ToolCall, ...] = ()) -> None:
        self.history.append(HistoryEntry(self.model, messages, text, usage, cached, tool_calls=tool_calls))
        with self._usage_lock:
            self.usage.add(usage)
        record_usage(usage)

    def _wait(self, attempt: int, error: TransientError) -> float:
        hint = error.retry_after
        if isinstance(hint, (int, float)) and math.isfinite(hint) and hint >= 0:  # never nan, inf or < 0
            return min(float(hint), 60.0)
        wait: float = self.backoff * (2 ** attempt) * (0.5 + random.random())
        return min(wait, 30.0)

    def _failed(self, error: TransientError, attempts: int, retries: int) -> LMError:
        err = error.error
        err.attempts = attempts
        if retries:
            record_usage(Usage(retries=retries))
            with self._usage_lock:
                self.usage.retries += retries
        return err

    # -- weights ------------------------------------------------------------------------------------
    def weights_state(self) -> dict[str, Any] | None:
        """What a saved program keeps to rebuild this LM when its weights are its own (a LoRA adapter,
        a provider's fine-tuned model): ``{"model": ...}`` plus, for an adapter, its ``"adapter"``
        path and ``"sha256"``. None (the default) for a model used as it is."""
        return None

    def cache_name(self) -> str:
        """The model's name in cache keys: ``model``, plus what tells its weights apart (an adapter's
        hash), so that two LMs with different weights never share an entry."""
        return self.model

    # -- capabilities -------------------------------------------------------------------------------
    def supports_json_mode(self) -> bool:
        return False

    def supports_function_calling(self) -> bool:
        """Whether a request with ``params["tools"]`` gets native tool calls back (ReAct's ``"auto"`` asks)."""
        return False

    def constraint_params(self, constraint: Constraint) -> dict[str, Any]:
        """Request parameters that make this backend decode within ``constraint`` ({} when it cannot)."""
        return {}

    def supports_logprobs(self) -> bool:
        """Whether ``score_options`` works here (label scoring); optimizers search scoring formats
        only then."""
        return False

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        """The log-probability of each option as the whole answer to ``messages``. Backends without
        log-probabilities raise ``LogprobsUnavailableError``."""
        raise LogprobsUnavailableError(
            f"{self.model}: label scoring needs log-probabilities, which {type(self).__name__} does not give; "
            "use the format's scoring='generate' (the default) or the embedded model (LM('local/...'))",
            model=self.model)

    def inspect_history(self, n: int = 1) -> str:
        """The last ``n`` prompts and completions, as text (also printed)."""
        blocks = []
        for e in list(self.history)[-n:]:
            when = time.strftime("%H:%M:%S", time.localtime(e.timestamp))
            lines = [f"--- {e.model} {'(cached) ' if e.cached else ''}at {when}"]
            lines += [f"[{m['role']}]\n{m['content']}" for m in e.messages]
            lines.append(f"[completion]\n{e.completion}")
            lines += [f"[tool call] {c.name}({c.raw})" for c in e.tool_calls]
            blocks.append("\n".join(lines))
        text = "\n\n".join(blocks)
        print(text)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseLM:
        return self  # an LM is a shared resource, never copied with a program


def _lm_run(lm: BaseLM, callbacks: Sequence[Callback], messages: list[Message],
            params: dict[str, Any] | None) -> tuple[RunScope, dict[str, Any]]:
    merged = {**lm.params, **params} if params else dict(lm.params)
    return start_run("lm", lm.model, messages, merged, callbacks=callbacks), merged


def inspect_history(n: int = 1, lm: BaseLM | None = None) -> str:
    """Print the last ``n`` prompts and completions of ``lm`` (default: the configured LM)."""
    target = lm or current().lm
    if target is None:
        print("no LM is configured, so there is no history")
        return ""
    return target.inspect_history(n)


def _stated_before_the_cut(fmt: PromptFormat, signature: type[Signature], text: str) -> bool:
    """Whether ``text``, cut off at its token limit, states its values whole: they parse, and the text
    without its last (possibly cut) line parses to the same values."""
    whole_lines = text[:text.rfind("\n")] if "\n" in text else ""
    try:
        return bool(whole_lines) and fmt.parse(signature, text) == fmt.parse(signature, whole_lines)
    except ParseError:
        return False
