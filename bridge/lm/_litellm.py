"""LiteLLM glue for ``lmbridge.LM``: the lazy import (``import lmbridge`` never imports LiteLLM) and the
mapping of LiteLLM's exceptions to ``bridge`` errors, done here once, raised ``from`` the original.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

from lmbridge.errors import (
    AuthenticationError,
    ContextWindowError,
    LMError,
    LMTimeoutError,
    RateLimitError,
)
from lmbridge.lm._types import TransientError, truncated

_litellm_module: Any = None
_litellm_lock = threading.Lock()


def _litellm() -> Any:
    global _litellm_module
    if _litellm_module is None:
        with _litellm_lock:
            if _litellm_module is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
                import litellm

                litellm.suppress_debug_info = True
                _litellm_module = litellm
    return _litellm_module


_skip_mcp: bool | None = None


def tool_request_flags() -> dict[str, Any]:
    """Extra arguments for a LiteLLM request that carries ``tools``. Our tools are plain functions,
    never MCP servers, yet LiteLLM's check for MCP tools imports the optional ``mcp`` package: the
    flag that skips that check is sent where this LiteLLM has the MCP handler (which also reads it)."""
    global _skip_mcp
    if _skip_mcp is None:
        _litellm()
        try:
            _skip_mcp = importlib.util.find_spec("litellm.responses.mcp") is not None
        except (ImportError, ValueError):
            _skip_mcp = False
    return {"_skip_mcp_handler": True} if _skip_mcp else {}


def parse_retry_after(value: Any, *, millis: bool = False) -> float | None:
    """Seconds to wait from a Retry-After header (a number of seconds or an HTTP date; with
    ``millis``, OpenAI's ``retry-after-ms``). None for anything that is not a finite, non-negative
    wait (``nan``, ``inf``, ``-1``, garbage), so such a value never reaches ``time.sleep``."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    try:
        seconds = float(text) / (1000.0 if millis else 1.0)
    except ValueError:
        if millis:
            return None
        try:
            when = parsedate_to_datetime(text)
            seconds = when.timestamp() - time.time()
            seconds = max(seconds, 0.0)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def header_wait(headers: Any) -> float | None:
    """The wait a response's headers ask for (``retry-after-ms``, else ``retry-after``), or None."""
    try:
        for name, millis in (("retry-after-ms", True), ("retry-after", False)):
            value = headers.get(name)
            if value is None:
                value = headers.get(name.title())
            wait = parse_retry_after(value, millis=millis)
            if wait is not None:
                return wait
    except Exception:  # headers of an unexpected shape: no hint
        return None
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from or while handling, innermost last."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 32 and not any(current is seen for seen in found):
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _server_response(chain: list[BaseException]) -> Any:
    """The HTTP error response the server really sent (the OpenAI SDK's ``APIStatusError`` or httpx's
    ``HTTPStatusError`` in the chain), or None. LiteLLM's own ``status_code`` is not used for this:
    it labels failures that no server answered (a body it could not read, a missing key) as 500."""
    import httpx  # LiteLLM's own dependencies: loaded with it, never by `import lmbridge`
    import openai

    for error in chain:
        if isinstance(error, httpx.HTTPStatusError) or (isinstance(error, openai.APIStatusError) and _sdk(error)):
            return error.response
    return None


def _sdk(error: BaseException) -> bool:
    """Whether ``error`` was raised by the OpenAI SDK itself. LiteLLM's exception classes subclass the
    SDK's (its InternalServerError is an ``openai.APIStatusError``) yet LiteLLM raises them for
    failures no server reported, so only the SDK's own instances are evidence of an HTTP answer."""
    return type(error).__module__.split(".")[0] == "openai"


def _not_completed(exc: BaseException, chain: list[BaseException]) -> bool:
    """Whether the request failed on the way (a connection error or a timeout), before an answer."""
    import httpx  # as in _server_response
    import openai

    if isinstance(exc, _litellm().Timeout):  # a timeout is never an answer, whoever noticed it
        return True
    return any(isinstance(error, httpx.TransportError) or (isinstance(error, openai.APIConnectionError) and _sdk(error))
               for error in chain)


_ANSWERED_STATUS = re.compile(r"<APIResponse \[(\d{3})")
_UNREADABLE_MARKERS = ("Empty or invalid response", "Invalid response object", "Received response - <APIResponse",
                       "provider returned")
_MISSING_KEY = re.compile(r"api[_ -]?key.{0,80}(must be set|missing|not set|not provided|not found|is required)"
                          r"|(missing|no) (api[_ -]?key|credentials)|(pass|set|provide)\W+(an?|the)?\W*api[_ -]?key",
                          re.IGNORECASE | re.DOTALL)


def _unreadable_body(chain: list[BaseException]) -> tuple[int, str] | None:
    """(status, excerpt) when the server answered but its body could not be read as a completion.
    LiteLLM reads a body only after a success status (the OpenAI SDK and LiteLLM's HTTP client raise
    on a status of 400 and above first), so the status is the one it reports, or 200."""
    text = " | ".join(str(error) for error in chain)
    decode = next((e for e in chain if isinstance(e, json.JSONDecodeError)), None)
    if decode is None and not any(marker in text for marker in _UNREADABLE_MARKERS):
        return None
    found = _ANSWERED_STATUS.search(text)
    excerpt = f"body {_excerpt(decode.doc)}" if decode is not None else f"LiteLLM said {_excerpt(str(chain[-1]))}"
    return (int(found.group(1)) if found else 200), excerpt


def _excerpt(text: str, limit: int = 200) -> str:
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def map_error(exc: Exception, model: str) -> Exception:
    """Map a LiteLLM (or OpenAI SDK) exception to a bridge error, raised ``from`` the original.

    Only a request the server did not complete comes back wrapped in ``TransientError`` (so that the
    retry loop sends it again): a connection error, a timeout, or an HTTP 408, 429 or 5xx that the
    server really sent. An answer the server completed (a 200 whose body cannot be read, a 4xx) is
    never re-sent. ``status_code`` is the status the server sent, or None when no HTTP answer came
    back; ``retry_after`` is its Retry-After header, when it sent a usable one."""
    litellm = _litellm()
    chain = _chain(exc)
    response = _server_response(chain)
    status: int | None = getattr(response, "status_code", None) if response is not None else None
    unreadable = _unreadable_body(chain) if response is None else None
    retry_after = header_wait(getattr(response, "headers", None)) if response is not None else None
    if retry_after is None:
        retry_after = header_wait(getattr(exc, "litellm_response_headers", None) or getattr(exc, "headers", None))
    message = f"{model}: {type(exc).__name__}: {str(exc)[:500]}"
    error: LMError
    if unreadable is not None:
        status = unreadable[0]
        message = (f"{model}: the server answered (HTTP {status}) but its body is not a readable chat "
                   f"completion; it was not re-sent. The {unreadable[1]}")
        error = LMError(message, status_code=status, model=model, retry_after=retry_after)
    elif isinstance(exc, litellm.ContextWindowExceededError):
        error = ContextWindowError(message, status_code=status, model=model, retry_after=retry_after)
    elif (isinstance(exc, litellm.AuthenticationError) or status in (401, 403)
          or (response is None and _MISSING_KEY.search(str(exc)))):
        # LiteLLM files a 401 whose body says "invalid_request_error" under BadRequestError, and a
        # missing key under a status-500 error: both are configuration failures, never retried
        error = AuthenticationError(message, status_code=status, model=model, retry_after=retry_after)
    elif isinstance(exc, litellm.RateLimitError) or status == 429:
        error = RateLimitError(message, status_code=429, model=model, retry_after=retry_after)
    elif isinstance(exc, litellm.Timeout):
        error = LMTimeoutError(message, status_code=status, model=model, retry_after=retry_after)
    else:
        error = LMError(message, status_code=status, model=model, retry_after=retry_after)
    error.__cause__ = exc
    if isinstance(error, (AuthenticationError, ContextWindowError)) or unreadable is not None:
        return error
    transient = (_not_completed(exc, chain) or isinstance(error, RateLimitError)
                 or (status is not None and (status in (408, 429) or status >= 500)))
    return TransientError(error, retry_after) if transient else error


def _stream_request(request: dict[str, Any]) -> dict[str, Any]:
    # include_usage asks the provider for a last chunk with the token counts; LiteLLM drops it
    # (drop_params) for a provider that does not take it, and then counts the tokens itself.
    return {**request, "stream": True, "stream_options": {"include_usage": True}}


class StreamReader:
    """Reads one streamed LiteLLM completion, for the sync and the async loop alike: ``delta`` gives
    each chunk's text, ``response`` the whole answer rebuilt from the chunks (usage, tool calls and
    ``finish_reason`` included). A body that held no stream events (an HTML page, an empty body, a
    lone ``data: [DONE]``, a plain JSON completion) is refused with an ``LMError`` saying what came
    back: LiteLLM would read it as an empty answer."""

    def __init__(self, request: dict[str, Any], model: str) -> None:
        self.request = _stream_request(request)
        self.model = model
        self.chunks: list[Any] = []

    def delta(self, chunk: Any) -> str:
        self.chunks.append(chunk)
        choices = getattr(chunk, "choices", None)
        if not choices:
            return ""
        delta = getattr(choices[0], "delta", None)
        text = getattr(delta, "content", None) if delta is not None else None
        return text if isinstance(text, str) else ""

    def response(self, wrapper: Any) -> Any:
        received = getattr(wrapper, "chunks", None)
        if not self.chunks or (isinstance(received, list) and not received):
            raise LMError(f"{self.model}: the server answered a streamed request (HTTP 200) with no stream events "
                          f"({_what_came(self.chunks)}); it was not re-sent. A streaming server sends "
                          f"text/event-stream 'data:' lines", status_code=200, model=self.model)
        try:
            built = _litellm().stream_chunk_builder(self.chunks, messages=self.request.get("messages"))
        except Exception as exc:
            raise LMError(f"{self.model}: the streamed answer could not be rebuilt: {exc}", status_code=200,
                          model=self.model) from exc
        said = [getattr(wrapper, "received_finish_reason", None)]
        said += [getattr(c.choices[0], "finish_reason", None) for c in self.chunks if getattr(c, "choices", None)]
        cut = next((r for r in said if truncated(r)), None)
        if cut is not None and getattr(built, "choices", None):  # a stream that said "cut" anywhere was cut
            built.choices[0].finish_reason = cut
        return built


def _what_came(chunks: list[Any]) -> str:
    """What the server sent instead of events, from the headers LiteLLM kept."""
    hidden = getattr(chunks[0], "_hidden_params", None) if chunks else None
    headers = (hidden or {}).get("additional_headers") or {} if isinstance(hidden, dict) else {}
    kind = headers.get("llm_provider-content-type") or "no content type"
    size = headers.get("llm_provider-content-length")
    return f"{kind}, {size} bytes" if size is not None else str(kind)


def litellm_stream(request: dict[str, Any], model: str) -> Iterator[Any]:
    """Send ``request`` as a streamed LiteLLM completion: yield each text delta, then the whole
    response rebuilt from the chunks (a ``ModelResponse`` with usage and tool calls)."""
    reader = StreamReader(request, model)
    try:
        wrapper = _litellm().completion(**reader.request)
        for chunk in wrapper:
            if text := reader.delta(chunk):
                yield text
    except Exception as exc:
        raise map_error(exc, model) from exc
    yield reader.response(wrapper)


async def litellm_astream(request: dict[str, Any], model: str) -> AsyncIterator[Any]:
    """``litellm_stream`` for async callers; the loop differs only in its awaits."""
    reader = StreamReader(request, model)
    try:
        wrapper = await _litellm().acompletion(**reader.request)
        async for chunk in wrapper:
            if text := reader.delta(chunk):
                yield text
    except Exception as exc:
        raise map_error(exc, model) from exc
    yield reader.response(wrapper)


def price_per_token(model: str) -> tuple[float, float] | None:
    """LiteLLM's (input, output) price per token for ``model``, or None when it does not know the model."""
    info = _litellm().model_cost.get(model) or {}
    try:
        return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])
    except (KeyError, TypeError, ValueError):
        return None
