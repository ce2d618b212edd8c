"""LiteLLM glue for ``bridge.LM``: the lazy import (``import bridge`` never imports LiteLLM) and the
mapping of LiteLLM's exceptions to ``bridge`` errors, done here once, raised ``from`` the original.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from bridge.errors import (
    AuthenticationError,
    ContextWindowError,
    LMError,
    LMTimeoutError,
    RateLimitError,
)

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
        import importlib.util

        _litellm()
        try:
            _skip_mcp = importlib.util.find_spec("litellm.responses.mcp") is not None
        except (ImportError, ValueError):
            _skip_mcp = False
    return {"_skip_mcp_handler": True} if _skip_mcp else {}


def _retry_after(exc: BaseException) -> float | None:
    for holder in (getattr(exc, "response", None), exc):
        headers = getattr(holder, "headers", None) or getattr(holder, "litellm_response_headers", None)
        if headers is None:
            continue
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
        except Exception:
            continue
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _map_error(exc: Exception, model: str) -> Exception:
    """Map a LiteLLM (or OpenAI SDK) exception to a bridge error; transient ones come wrapped in
    TransientError so that the retry loop sees them."""
    from bridge.lm import TransientError  # bridge.lm imports this module

    litellm = _litellm()
    status = getattr(exc, "status_code", None)
    message = f"{model}: {type(exc).__name__}: {str(exc)[:500]}"
    error: LMError
    if isinstance(exc, litellm.ContextWindowExceededError):
        error = ContextWindowError(message, status_code=status, model=model)
    elif isinstance(exc, litellm.AuthenticationError) or status in (401, 403):
        # LiteLLM files a 401 whose body says "invalid_request_error" under BadRequestError
        error = AuthenticationError(message, status_code=status, model=model)
    elif isinstance(exc, litellm.RateLimitError) or status == 429:
        error = RateLimitError(message, status_code=429, model=model)
    elif isinstance(exc, litellm.Timeout):
        error = LMTimeoutError(message, status_code=status, model=model)
    else:
        error = LMError(message, status_code=status, model=model)
    error.__cause__ = exc
    transient = isinstance(error, (RateLimitError, LMTimeoutError)) or (
        type(error) is LMError and ((isinstance(status, int) and status >= 500)
                                    or isinstance(exc, (litellm.APIConnectionError,
                                                        litellm.ServiceUnavailableError,
                                                        litellm.InternalServerError))))
    return TransientError(error, _retry_after(exc)) if transient else error


def _stream_request(request: dict[str, Any]) -> dict[str, Any]:
    # include_usage asks the provider for a last chunk with the token counts; LiteLLM drops it
    # (drop_params) for a provider that does not take it, and then counts the tokens itself.
    return {**request, "stream": True, "stream_options": {"include_usage": True}}


def _delta(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def litellm_stream(request: dict[str, Any], model: str) -> Iterator[Any]:
    """Send ``request`` as a streamed LiteLLM completion: yield each text delta, then the whole
    response rebuilt from the chunks (a ``ModelResponse`` with usage and tool calls)."""
    litellm = _litellm()
    chunks: list[Any] = []
    try:
        for chunk in litellm.completion(**_stream_request(request)):
            chunks.append(chunk)
            text = _delta(chunk)
            if text:
                yield text
    except Exception as exc:
        raise _map_error(exc, model) from exc
    yield _built(litellm, chunks, request, model)


async def litellm_astream(request: dict[str, Any], model: str) -> AsyncIterator[Any]:
    """The async twin of ``litellm_stream``."""
    litellm = _litellm()
    chunks: list[Any] = []
    try:
        async for chunk in await litellm.acompletion(**_stream_request(request)):
            chunks.append(chunk)
            text = _delta(chunk)
            if text:
                yield text
    except Exception as exc:
        raise _map_error(exc, model) from exc
    yield _built(litellm, chunks, request, model)


def _built(litellm: Any, chunks: list[Any], request: dict[str, Any], model: str) -> Any:
    if not chunks:
        raise LMError(f"{model}: the stream held no chunks", model=model)
    try:
        return litellm.stream_chunk_builder(chunks, messages=request.get("messages"))
    except Exception as exc:
        raise LMError(f"{model}: the streamed answer could not be rebuilt: {exc}", model=model) from exc
