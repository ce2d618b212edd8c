"""Language models: ``BaseLM`` holds everything common (cache, retries, usage, bounded history);
a subclass only says how to send one request (``_send`` / ``_asend``).

``LM`` sends through LiteLLM, the only network client in lmbridge, or runs the embedded model
for ``"local/..."`` names. LiteLLM's exceptions are mapped once (in ``lmbridge.lm_litellm``) to
``bridge`` errors raised ``from`` the original. ``import lmbridge`` never imports LiteLLM: it is
imported on the first request.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmbridge.errors import LMError
from lmbridge.lm._cache import Cache, cache_key
from lmbridge.lm._cache_redis import default_cache
from lmbridge.lm._litellm import _litellm as _litellm
from lmbridge.lm._litellm import _map_error as _map_error
from lmbridge.lm._litellm import litellm_astream, litellm_stream, tool_request_flags
from lmbridge.lm._scoring import OptionScores as OptionScores
from lmbridge.lm._scoring import score_local
from lmbridge.lm._stream import StreamingMixin
from lmbridge.settings import current
from lmbridge.toolcalls import ToolCall, read_tool_calls
from lmbridge.tracing import record_usage
from lmbridge.types import Message, Usage

if TYPE_CHECKING:
    from lmbridge.formats import Constraint, PromptFormat
    from lmbridge.signatures import Signature

_KEY_ONLY_PARAMS = frozenset({"rollout_id"})  # part of the cache key, never sent


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer from a model (or the cache), with what it cost."""

    text: str
    usage: Usage
    cached: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model called, when the request offered tools (``params["tools"]``)."""


@dataclass(slots=True)
class RawResult:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    model: str
    messages: list[Message]
    completion: str
    usage: Usage
    cached: bool
    timestamp: float = field(default_factory=time.time)
    tool_calls: tuple[ToolCall, ...] = ()


class TransientError(Exception):
    """Raised by a backend for a failure worth retrying; wraps the mapped bridge error."""

    def __init__(self, error: LMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class BaseLM(StreamingMixin):
    """The interface Predict talks to. Subclasses implement ``_send`` (and ``_asend`` for native
    async); the base class adds the cache, retries with backoff, usage and history.

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

    # -- what a subclass provides --------------------------------------------------------------
    def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        raise NotImplementedError

    async def _asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        import asyncio

        return await asyncio.to_thread(self._send, messages, params, signature, fmt)

    # -- the shared path ---------------------------------------------------------------------------
    def _outgoing(self, messages: list[Message], merged: dict[str, Any]) -> dict[str, Any]:
        """The parameters sent with a request: the merged ones less those only for the cache key."""
        return {k: v for k, v in merged.items() if k not in _KEY_ONLY_PARAMS}

    def _prepare(self, messages: list[Message], params: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        merged = {**self.params, **params} if params else self.params
        key = cache_key(self.model, messages, merged) if self._cache is not None else None
        return merged, key

    def _hit(self, key: str | None, messages: list[Message]) -> Completion | None:
        if key is None or self._cache is None:
            return None
        record = self._cache.get(key)
        if record is None:
            return None
        try:
            calls = tuple(ToolCall.from_record(c) for c in record.get("tool_calls", ()))
            text = record["text"]
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
            self._cache.discard(key)  # a corrupt entry is a miss, counted; never an error
            return None
        usage = Usage(cache_hits=1)
        self._finish(messages, text, usage, True, calls)
        return Completion(text, usage, True, calls)

    def _store(self, key: str | None, messages: list[Message], raw: RawResult, retries: int) -> Completion:
        usage = Usage(calls=1, prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens,
                      cost=raw.cost, retries=retries)
        if key is not None and self._cache is not None:
            record: dict[str, Any] = {"text": raw.text, "prompt_tokens": raw.prompt_tokens,
                                      "completion_tokens": raw.completion_tokens}
            if raw.tool_calls:
                record["tool_calls"] = [c.to_record() for c in raw.tool_calls]
            self._cache.set(key, record)
        self._finish(messages, raw.text, usage, False, raw.tool_calls)
        return Completion(raw.text, usage, False, raw.tool_calls)

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

    def complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                 signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        """Ask the model (or the cache) for one completion of ``messages``.

        ``params={"tools": [...], "tool_choice": "auto"}`` offers the model tools (OpenAI function
        specs, such as ``Tool.to_function_spec()``); its calls come back in ``tool_calls``.
        """
        callbacks = current().callbacks
        if callbacks:
            return self._traced_complete(callbacks, messages, params, signature, fmt)
        return self._complete(messages, params, signature=signature, fmt=fmt)

    async def acomplete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                        signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        """The async twin of ``complete``; differs only in the awaits."""
        callbacks = current().callbacks
        if callbacks:
            return await self._atraced_complete(callbacks, messages, params, signature, fmt)
        return await self._acomplete(messages, params, signature=signature, fmt=fmt)

    def _complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                  signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        merged, key = self._prepare(messages, params)
        hit = self._hit(key, messages)
        if hit is not None:
            return hit
        send_params = self._outgoing(messages, merged)
        for attempt in range(self.num_retries + 1):
            try:
                raw = self._send(messages, send_params, signature, fmt)
                return self._store(key, messages, raw, attempt)
            except TransientError as error:
                if attempt >= self.num_retries:
                    raise self._failed(error, attempt + 1, attempt) from error.error.__cause__
                time.sleep(self._wait(attempt, error))
        raise AssertionError("unreachable")

    async def _acomplete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                         signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        merged, key = self._prepare(messages, params)
        hit = self._hit(key, messages)
        if hit is not None:
            return hit
        send_params = self._outgoing(messages, merged)
        for attempt in range(self.num_retries + 1):
            try:
                raw = await self._asend(messages, send_params, signature, fmt)
                return self._store(key, messages, raw, attempt)
            except TransientError as error:
                if attempt >= self.num_retries:
                    raise self._failed(error, attempt + 1, attempt) from error.error.__cause__
                await _sleep_async(self._wait(attempt, error))
        raise AssertionError("unreachable")

    def __call__(self, prompt: str | list[Message], **params: Any) -> str:
        """Convenience: ``lm("Say hi")`` or ``lm(messages)`` returns the completion text."""
        messages: list[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.complete(messages, params).text

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
        from lmbridge.errors import LogprobsUnavailableError

        raise LogprobsUnavailableError(
            f"{self.model}: label scoring needs log-probabilities, which {type(self).__name__} does not give; "
            "use the format's scoring='generate' (the default) or the embedded model (LM('local/...'))",
            model=self.model)

    def inspect_history(self, n: int = 1) -> str:
        """The last ``n`` prompts and completions, as text (also printed)."""
        entries = list(self.history)[-n:]
        blocks = []
        for e in entries:
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


class LM(BaseLM):
    """A language model reached through LiteLLM (any LiteLLM model string), or the embedded local
    model for ``"local/<name>"``.

    ``LM("openai/smollm2", api_base="http://127.0.0.1:8008/v1", api_key="none")`` reaches any
    OpenAI-compatible server. ``api_key`` and ``api_base`` are sent with each request, never cached
    and never saved. ``function_calling`` says whether the model calls tools natively; None (the
    default) asks LiteLLM's model map, or the embedded model's chat template.
    """

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 temperature: float | None = 0.0, max_tokens: int | None = None, cache: bool | Cache = True,
                 num_retries: int = 3, function_calling: bool | None = None, **params: Any) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("LM needs a model name such as 'local/smollm2' or 'openai/gpt-4o-mini'")
        pairs = (("temperature", temperature), ("max_tokens", max_tokens))
        sampling: dict[str, Any] = {k: v for k, v in pairs if v is not None}
        super().__init__(model, cache=cache, num_retries=num_retries, **sampling, **params)
        self._api_base = api_base
        self._api_key = api_key
        self._local: Any = None
        self._price_known: bool | None = None
        self._function_calling = function_calling
        self._schema_support: bool | None = None
        if model.startswith("local/"):
            from lmbridge.lm._local import LocalModel

            self._local = LocalModel.for_name(model.removeprefix("local/"))

    @property
    def is_local(self) -> bool:
        return self._local is not None

    def supports_json_mode(self) -> bool:
        return True

    def supports_function_calling(self) -> bool:
        if self._function_calling is None:
            if self._local is not None:
                self._function_calling = bool(self._local.supports_tools())
            else:
                try:
                    self._function_calling = bool(_litellm().supports_function_calling(model=self.model))
                except Exception:  # an unknown model or provider: no native tools
                    self._function_calling = False
        return self._function_calling

    def constraint_params(self, constraint: Constraint) -> dict[str, Any]:
        from lmbridge.formats import constrained_params

        return constrained_params(self.model, self._local is not None, constraint, self._supports_schema)

    def _supports_schema(self) -> bool:
        if self._schema_support is None:
            try:
                self._schema_support = bool(_litellm().supports_response_schema(model=self.model))
            except Exception:  # an unknown model or provider: no structured output
                self._schema_support = False
        return self._schema_support

    def supports_logprobs(self) -> bool:
        return self._local is not None

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        if self._local is None:
            return super().score_options(messages, options, params)
        return score_local(self._local, self.model, self._cache, self._finish, messages, options, params)

    def _outgoing(self, messages: list[Message], merged: dict[str, Any]) -> dict[str, Any]:
        params = super()._outgoing(messages, merged)
        if self._local is not None and "seed" not in params and (params.get("temperature") or 0.0) > 0:
            # The embedded model has one random state, moved by every sampled call before this one.
            # A seed drawn from the request itself (messages, parameters, rollout_id) makes a sample
            # depend on what was asked only, like a cache entry: a compile that samples repeats.
            params["seed"] = int(cache_key(self.model, messages, merged)[:8], 16)
        return params

    def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        if self._local is not None:
            return self._local.chat(messages, params)  # type: ignore[no-any-return]
        litellm = _litellm()
        if params.get("endpoint") == "completion":
            return self._text_completion(messages, params)
        try:
            response = litellm.completion(**self._request(messages, params))
        except Exception as exc:
            raise _map_error(exc, self.model) from exc
        return self._result(response)

    def _text_completion(self, messages: list[Message], params: dict[str, Any]) -> RawResult:
        """The raw completion endpoint (``TextFormat``): one prompt, the text that follows it."""
        request = self._request(messages, {k: v for k, v in params.items() if k != "endpoint"})
        request.pop("messages")
        request["prompt"] = "\n\n".join(m["content"] for m in messages if m["content"])
        try:
            response = _litellm().text_completion(**request)
        except Exception as exc:
            raise _map_error(exc, self.model) from exc
        choices = getattr(response, "choices", None)
        if not choices:
            raise LMError(f"{self.model}: the response holds no choices", model=self.model)
        usage = getattr(response, "usage", None)
        return RawResult(getattr(choices[0], "text", None) or "", int(getattr(usage, "prompt_tokens", 0) or 0),
                         int(getattr(usage, "completion_tokens", 0) or 0), self._cost(response))

    async def _asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        if self._local is not None:
            import asyncio

            result: RawResult = await asyncio.to_thread(self._local.chat, messages, params)
            return result
        litellm = _litellm()
        if params.get("endpoint") == "completion":
            import asyncio

            return await asyncio.to_thread(self._text_completion, messages, params)
        try:
            response = await litellm.acompletion(**self._request(messages, params))
        except Exception as exc:
            raise _map_error(exc, self.model) from exc
        return self._result(response)

    def _send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                     fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        if self._local is not None:
            return self._local.chat_stream(messages, params)  # type: ignore[no-any-return]
        return self._litellm_stream(messages, params)

    def _litellm_stream(self, messages: list[Message], params: dict[str, Any]) -> Iterator[str | RawResult]:
        for item in litellm_stream(self._request(messages, params), self.model):
            yield item if isinstance(item, str) else self._result(item)

    async def _asend_stream(self, messages: list[Message], params: dict[str, Any],
                            signature: type[Signature] | None,
                            fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        if self._local is not None:
            async for item in super()._asend_stream(messages, params, signature, fmt):
                yield item
            return
        async for item in litellm_astream(self._request(messages, params), self.model):
            yield item if isinstance(item, str) else self._result(item)

    def _request(self, messages: list[Message], params: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": messages, "num_retries": 0,
                                   "max_retries": 0, "drop_params": True, **params}
        if self._api_base is not None:
            request["api_base"] = self._api_base
        if self._api_key is not None:
            request["api_key"] = self._api_key
        if "tools" in params:
            request.update(tool_request_flags())
        return request

    def _result(self, response: Any) -> RawResult:
        """Read a completed response. One that cannot be read raises LMError at once: the server
        answered (and billed) it, so it is never re-sent."""
        choices = getattr(response, "choices", None)
        if not choices:
            raise LMError(f"{self.model}: the server answered (HTTP 200) but the response holds no choices; "
                          f"it was not re-sent", status_code=200, model=self.model)
        try:
            message = choices[0].message
            text = getattr(message, "content", None) or ""
            if not isinstance(text, str):
                raise TypeError(f"the message content is a {type(text).__name__}, not text")
            usage = getattr(response, "usage", None)
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            calls = getattr(message, "tool_calls", None)
            tool_calls = read_tool_calls(calls) if calls else ()
        except Exception as exc:
            raise LMError(f"{self.model}: the server answered (HTTP 200) but the response cannot be read "
                          f"({type(exc).__name__}: {str(exc)[:200]}); it was not re-sent",
                          status_code=200, model=self.model) from exc
        return RawResult(text, prompt_tokens, completion_tokens, self._cost(response), tool_calls)

    def _cost(self, response: Any) -> float | None:
        if self._price_known is False:
            return None
        try:
            cost: float = float(_litellm().completion_cost(completion_response=response))
            self._price_known = True
            return cost
        except Exception:
            self._price_known = False
            return None


async def _sleep_async(seconds: float) -> None:
    import asyncio  # imported here: `import lmbridge` stays fast, and sync users never pay for asyncio

    await asyncio.sleep(seconds)


def inspect_history(n: int = 1, lm: BaseLM | None = None) -> str:
    """Print the last ``n`` prompts and completions of ``lm`` (default: the configured LM)."""
    from lmbridge.settings import current

    target = lm or current().lm
    if target is None:
        print("no LM is configured, so there is no history")
        return ""
    return target.inspect_history(n)
