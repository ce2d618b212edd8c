"""What both adapter LMs share (``LangChainLM``, ``LlamaIndexLM``): the one mapping of a foreign model's
failure to a bridge error, the one retry policy, the one Retry-After reading, and the one cache-key
digest of a model's configuration with the one secret filter.

* **Errors.** ``ForeignLM.mapped_errors()`` wraps every call into the foreign model (whole or
  streamed, sync or async): its exceptions become ``lmbridge.LMError`` subclasses raised ``from`` the
  original (``lmbridge.errors.provider_error``: by status code, class name and message).
* **Retries.** A failure where the request was not completed (a rate limit, a timeout, a connection
  error, HTTP 408 or 5xx) comes wrapped in ``TransientError``, so ``BaseLM``'s loop retries it
  ``num_retries`` times (default 3) with backoff, honouring the server's ``Retry-After``
  (``retry-after-ms`` or ``retry-after``, read by ``lmbridge.lm.header_wait``). The foreign
  model may retry too: set its own ``max_retries=0`` to retry once, here.
* **Cache key.** ``config_digest`` names a configuration in 12 hex digits; ``public`` leaves out every
  setting named like a secret (``key``, ``token``, ``secret``, ``password``, ``credential``,
  ``auth...``, ``headers``, as a whole word of the name: ``max_tokens`` stays) and any ``SecretStr``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lmbridge import LMError, LMTimeoutError, RateLimitError
from lmbridge.errors import provider_error
from lmbridge.lm import BaseLM, TransientError, header_wait

_SECRET = re.compile(r"(^|[_\-.])(api_?key|keys?|token|secrets?|passwords?|passwd|credentials?|auth\w*|headers)"
                     r"($|[_\-.])", re.IGNORECASE)
_SECRET_TYPES = ("SecretStr", "SecretBytes")


def is_secret(name: str) -> bool:
    """Whether a setting called ``name`` may hold a credential (matched on whole words of the name)."""
    return _SECRET.search(re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name))) is not None


def public(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings without secrets (at any depth), and with values that have no stable text (objects)
    named by their type."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if is_secret(str(name)) or type(value).__name__ in _SECRET_TYPES:
            continue
        if isinstance(value, Mapping):
            out[str(name)] = public(value)
        elif isinstance(value, (str, int, float, bool, type(None), list, tuple)):
            out[str(name)] = value
        else:
            out[str(name)] = type(value).__name__
    return out


def config_digest(config: Any) -> str:
    """12 hex digits naming a configuration (already passed through ``public``)."""
    text = json.dumps(config, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def retry_after(exc: BaseException) -> float | None:
    """The wait the server asked for, from the headers of the error's response (or the error's own)."""
    for source in (getattr(exc, "response", None), exc):
        headers = getattr(source, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            wait = header_wait(headers)
            if wait is not None:
                return wait
    return None


def foreign_error(exc: Exception, model: str) -> Exception:
    """The bridge error for a foreign model's failure, wrapped in ``TransientError`` when the request
    was not completed and is worth sending again."""
    error = provider_error(exc, model)
    if error is exc:
        return error
    error.__cause__ = exc
    wait = retry_after(exc)
    error.retry_after = wait
    status, kind = error.status_code, type(exc).__name__.lower()
    transient = isinstance(error, (RateLimitError, LMTimeoutError)) or (type(error) is LMError and (
        (status is not None and (status >= 500 or status == 408))
        or isinstance(exc, ConnectionError) or "connection" in kind))
    return TransientError(error, wait) if transient else error


class ForeignLM(BaseLM):
    """A ``BaseLM`` that sends through another framework's model; subclasses implement the four
    hooks with their calls inside ``mapped_errors()``."""

    @contextmanager
    def mapped_errors(self) -> Iterator[None]:
        """Map whatever the foreign model raises inside the block (see the module docstring)."""
        try:
            yield
        except (LMError, TransientError):
            raise
        except Exception as exc:
            raise foreign_error(exc, self.model) from exc


__all__ = ["ForeignLM", "config_digest", "foreign_error", "is_secret", "public", "retry_after"]
