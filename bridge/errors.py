"""The exceptions lmbridge raises.

Every error a user can meet derives from ``BridgeError``; no third-party class (LiteLLM,
llama.cpp, a tool's own exception) escapes. Errors that wrap another one are raised ``from`` it,
so the original stays on ``__cause__``.

    BridgeError
    ├── SignatureError        a signature is malformed or names an unknown type
    ├── InputError            a call passed missing or unknown input fields
    ├── ConfigurationError    no LM is configured, or a setting has the wrong type
    ├── MissingDependencyError  an optional dependency is not installed (also an ImportError)
    ├── ParseError            a completion did not parse, even after one re-ask
    ├── StateError            a saved program does not fit the program loading it
    ├── ToolError             a tool failed, timed out, or got arguments it cannot take
    ├── RetrievalError        a retriever raised; the message names the retriever
    ├── EvaluationError       evaluate or compile stopped: too many failures, or a metric/example that cannot work
    └── LMError               the language model call failed (after retries)
        ├── RateLimitError        HTTP 429 or provider quota
        ├── ContextWindowError    the prompt does not fit the model's context window
        ├── AuthenticationError   the provider refused the credentials
        ├── LMTimeoutError        the request timed out
        ├── TruncatedError        values were to be read from an answer cut off at its token limit
        └── FineTuningError       a provider's fine-tuning job failed or was cancelled, or the file was refused

The contract each entry point keeps (held by the property tests in ``tests/test_properties_*.py``):

* **Parsing** (``PromptFormat.parse``, ``lmbridge.signatures.coerce`` and the parse inside a Predict call)
  raises only ``ParseError``, whatever the completion holds: malformed or deeply nested JSON, odd
  Unicode labels, numbers in locale forms. It never returns a value the text does not state.
* **Loading** a saved program raises only ``StateError``.
* **The LM** raises only ``LMError`` and its subclasses; no provider or HTTP class escapes.
* **Making** a signature raises only ``SignatureError`` (bad types are refused here, not at call
  time); **building** a ``Tool`` raises only ``ToolError`` (a ``TypeError`` when it is given no
  callable at all); **calling** a module with inputs it cannot take raises ``InputError``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmbridge.types import Usage


class BridgeError(Exception):
    """Base class of every lmbridge error."""


class SignatureError(BridgeError, ValueError):
    """Raised when a signature is malformed: a bad string form, a field declared twice, an unknown
    or incomplete type (bare ``Optional``, ``dict[str]``), a reserved field name such as
    ``instructions``, or a field that is neither an input nor an output."""


class InputError(BridgeError, TypeError):
    """Raised when a module is called with missing input fields, with names the signature does
    not declare, or with a value that cannot be written into a prompt (a set, bytes). Control
    arguments never travel with the inputs."""


class ConfigurationError(BridgeError):
    """Raised when a call needs a setting that is not there, most often an LM."""


class MissingDependencyError(BridgeError, ImportError):
    """Raised when an optional dependency is missing. The message names the pip extra (or, with
    ``command``, the exact install command)."""

    def __init__(self, package: str, extra: str, command: str | None = None) -> None:
        command = command or f"pip install 'lmbridge[{extra}]'"
        super().__init__(f"{package} is not installed; it is needed here. Install it with: {command}")
        self.package = package
        self.extra = extra


class ParseError(BridgeError, ValueError):
    """Raised when a completion cannot be turned into the signature's output fields.

    Predict re-asks once with the error shown to the model; this is raised when the answer to the
    re-ask fails too. ``completion`` holds the last raw text, ``signature`` the signature's string
    form, ``attempts`` how many completions were tried and ``usage`` what they cost.
    """

    def __init__(
        self,
        message: str,
        *,
        completion: str = "",
        signature: str = "",
        field: str | None = None,
        attempts: int = 1,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.completion = completion
        self.signature = signature
        self.field = field
        self.attempts = attempts
        self.usage = usage

    def __str__(self) -> str:
        if not self.completion and not self.signature:
            return self.message
        shown = self.completion if len(self.completion) <= 300 else self.completion[:300] + "..."
        return f"{self.message} [signature: {self.signature}; attempts: {self.attempts}; completion: {shown!r}]"


class StateError(BridgeError, ValueError):
    """Raised when a saved program cannot be loaded into the program at hand: a wrong file
    format or version, a predictor the program lacks, or fields that do not match."""


class ToolError(BridgeError):
    """Raised when a tool cannot be called: it raised, timed out, or its arguments failed validation.
    ReAct catches it and shows it to the model as an observation. Also raised when a ``Tool`` is
    built from a function it cannot describe: a name providers reject, a type hint that does not
    resolve, or an argument type with no JSON schema."""


class RetrievalError(BridgeError):
    """Raised when a retriever fails inside ``Retrieve`` (or an adapter's retriever). The message names
    the retriever; the original exception is on ``__cause__``. During evaluate and compile it is a
    per-example failure: the example scores 0 and is counted."""


class EvaluationError(BridgeError):
    """Raised when evaluate or compile passes the ``max_errors`` the caller set, or stops at an example
    that cannot work (a metric that raises or returns no finite number, an example that does not fit
    the program, a program bug); the cause is on ``__cause__``. See ``lmbridge.evaluate``."""


class LMError(BridgeError):
    """Raised when a language-model call fails after its retries. ``status_code`` is the HTTP status
    when there was one; ``attempts`` counts the tries made; ``retry_after`` is the server's
    Retry-After, in seconds, when it sent one."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1, model: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.attempts = attempts
        self.model = model


class RateLimitError(LMError):
    """Raised on HTTP 429 or a provider quota error, once the retries are spent."""


class ContextWindowError(LMError):
    """Raised when the prompt does not fit the model's context window. Not retried."""


class AuthenticationError(LMError):
    """Raised when the provider refuses the credentials. Not retried."""


class LMTimeoutError(LMError):
    """Raised when a request times out, once the retries are spent."""


class FineTuningError(LMError):
    """Raised when a provider's fine-tuning job failed or was cancelled, or when the provider refused
    the training file or the job (``lmbridge.finetune.ProviderFinetune``). The message carries the
    provider's own reason; ``job_id`` names the job when there is one, ``status`` its last status."""

    def __init__(self, message: str, *, status_code: int | None = None, model: str = "",
                 job_id: str | None = None, status: str | None = None) -> None:
        super().__init__(message, status_code=status_code, model=model)
        self.job_id = job_id
        self.status = status


_CONTEXT = re.compile(r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long", re.I)


def provider_error(exc: Exception, model: str) -> LMError:
    """The bridge error for a failure raised by a third-party model client (a LangChain model, a
    LlamaIndex LLM), chosen by its HTTP status code, class name and message; raise it ``from exc``.

    429 or a rate-limit class: ``RateLimitError``; 401/403 or an authentication/permission class:
    ``AuthenticationError``; a timeout class or ``TimeoutError``: ``LMTimeoutError``; a context-window
    class or message: ``ContextWindowError``; anything else: ``LMError``. A bridge error is kept.
    """
    if isinstance(exc, LMError):
        return exc
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    status = status if isinstance(status, int) else None
    kind = type(exc).__name__.lower()
    text = str(exc)
    message = f"{model}: {type(exc).__name__}: {text[:500]}"
    if "contextwindow" in kind or ("context" in kind and "length" in kind):
        return ContextWindowError(message, status_code=status, model=model)
    if status in (401, 403) or "authentication" in kind or "permission" in kind:
        return AuthenticationError(message, status_code=status, model=model)
    if status == 429 or "ratelimit" in kind:
        return RateLimitError(message, status_code=429, model=model)
    if "timeout" in kind or isinstance(exc, TimeoutError):
        return LMTimeoutError(message, status_code=status, model=model)
    if _CONTEXT.search(text):
        return ContextWindowError(message, status_code=status, model=model)
    return LMError(message, status_code=status, model=model)


def describe(exc: BaseException) -> str:
    """One line naming an exception, for reports and observations."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "AuthenticationError",
    "BridgeError",
    "ConfigurationError",
    "ContextWindowError",
    "EvaluationError",
    "FineTuningError",
    "InputError",
    "LMError",
    "LMTimeoutError",
    "MissingDependencyError",
    "ParseError",
    "RateLimitError",
    "RetrievalError",
    "SignatureError",
    "StateError",
    "ToolError",
    "describe",
]



class LogprobsUnavailableError(LMError):
    """Label scoring asked a backend for log-probabilities it does not give."""


class TruncatedError(LMError):
    """Raised when values are to be read (a Predict's request) from an answer that stopped at its token
    limit (``finish_reason="length"``): the answer is incomplete, so no value is read from it.
    ``limit`` is the ``max_tokens`` the request carried, when it carried one. The request is not
    re-sent (it was completed and billed); raise ``max_tokens``."""

    def __init__(self, model: str, limit: int | None, text: str) -> None:
        where = f"max_tokens={limit}" if limit is not None else "the backend's default max_tokens"
        super().__init__(f"{model}: the answer was cut off at its token limit ({where}) after {len(text)} "
                         f"characters, so it is incomplete and was not read; raise max_tokens "
                         f"(LM(..., max_tokens=...)) and run again", status_code=200, model=model)
        self.limit = limit
