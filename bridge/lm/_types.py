"""The values the LM layer passes around, kept below every other module of ``lmbridge.lm`` so that each
of them imports these at the top: what a backend returns (``RawResult``), what a caller gets
(``Completion``), one history entry, the retry signal a backend raises (``TransientError``) and the
error for an answer cut off at its token limit (``TruncatedError``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lmbridge.errors import LMError
from lmbridge.toolcalls import ToolCall
from lmbridge.types import Message, Usage

TRUNCATED_REASONS = frozenset({"length", "max_tokens"})
"""The ``finish_reason`` values that say an answer stopped at its token limit (OpenAI and most
OpenAI-compatible servers say ``"length"``, Anthropic says ``"max_tokens"``)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer from a model (or the cache), with what it cost."""

    text: str
    usage: Usage
    cached: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model called, when the request offered tools (``params["tools"]``)."""
    finish_reason: str | None = None
    """Why the model stopped, as the backend said it (``"stop"``, ``"length"``, ``"tool_calls"``...),
    or None when it did not say. A caller that reads values (a request with a ``signature``) never
    gets a completion that stopped at its token limit: ``TruncatedError`` is raised instead."""

    @property
    def truncated(self) -> bool:
        """Whether the answer stopped at its token limit (``finish_reason`` ``"length"``)."""
        return truncated(self.finish_reason)


@dataclass(slots=True)
class RawResult:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    """Why the model stopped, as the backend reports it; None when it does not say."""


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
    """Raised by a backend for a failure worth retrying (the request was not completed); wraps the
    mapped bridge error, which is what the caller sees once the retries are spent."""

    def __init__(self, error: LMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def truncated(finish_reason: str | None) -> bool:
    """Whether ``finish_reason`` says the answer stopped at its token limit."""
    return isinstance(finish_reason, str) and finish_reason.strip().lower() in TRUNCATED_REASONS
