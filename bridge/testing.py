"""Test doubles for programs built on lmbridge: no network, no model, no cost.

``ScriptedLM(responses)`` answers each request with the next response. A response is
* a dict of output-field values, rendered by the active prompt format so the real parse path runs;
* a raw string, sent back as the completion text (to test malformed output);
* an exception instance, raised as the model's failure (to test retries and error handling);
* a ``ToolCall`` (or a ``ToolReply`` with several calls and some text), returned as the model's
  native tool calls, with an empty completion text (to test tool-calling code such as ReAct's
  native mode; say ``ScriptedLM(..., function_calling=True)`` so that it reports support);
* a ``CutStream(text, error)``: streamed, the text goes out in chunks and then ``error`` is raised
  (a connection lost mid-answer); not streamed, ``error`` is raised at once;
* a callable taking the messages and returning one of the above.
A single callable (not in a list) answers every request. ``requests`` records the parameters of
every request (``tools`` among them), ``calls`` its messages.

Streamed (``lm.stream``, ``Predict.stream``), a text answer goes out in chunks of ``chunk_size``
characters, so that the incremental parse runs as it does on a real model.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Union

from lmbridge.errors import LMError, LMTimeoutError, RateLimitError
from lmbridge.formats import ChatFormat, PromptFormat
from lmbridge.lm import BaseLM, RawResult, TransientError
from lmbridge.signatures import Signature
from lmbridge.toolcalls import ToolCall as ToolCall
from lmbridge.types import Message


@dataclass(frozen=True)
class ToolReply:
    """A scripted reply that calls tools: the calls, in order, and the message text beside them."""

    calls: Sequence[ToolCall]
    text: str = ""


@dataclass(frozen=True)
class CutStream:
    """A scripted reply whose stream breaks: ``text`` is streamed, then ``error`` is raised."""

    text: str
    error: BaseException


Response = Union[str, Mapping[str, Any], BaseException, ToolCall, ToolReply, CutStream,
                 Callable[[list[Message]], Any]]


class ScriptedLM(BaseLM):
    """An LM that answers from a script. ``calls`` records the messages of every request."""

    def __init__(self, responses: Sequence[Response] | Callable[[list[Message]], Any], *,
                 model: str = "scripted", cache: bool = False, num_retries: int = 3, backoff: float = 0.0,
                 function_calling: bool = False, chunk_size: int = 4, **params: Any) -> None:
        super().__init__(model, cache=cache, num_retries=num_retries, backoff=backoff, **params)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        self.chunk_size = chunk_size
        self._script: list[Response] | None = None if callable(responses) else list(responses)
        self._function = responses if callable(responses) else None
        self.function_calling = function_calling
        self.calls: list[list[Message]] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def supports_function_calling(self) -> bool:
        return self.function_calling

    @property
    def remaining(self) -> int:
        return len(self._script) if self._script is not None else -1

    def _next(self) -> Response:
        with self._lock:
            if self._function is not None:
                return self._function
            assert self._script is not None
            if not self._script:
                raise LMError(f"ScriptedLM ran out of responses after {len(self.calls)} calls")
            return self._script.pop(0)

    async def asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        return self.send(messages, params, signature, fmt)  # a script needs no worker thread

    def send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                     fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        raw = self._answer(messages, params, signature, fmt, streamed=True)
        for start in range(0, len(raw.text), self.chunk_size):
            yield raw.text[start:start + self.chunk_size]
        if isinstance(raw, CutStream):
            _raise(raw.error)
        yield raw

    async def asend_stream(self, messages: list[Message], params: dict[str, Any],
                            signature: type[Signature] | None,
                            fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        for item in self.send_stream(messages, params, signature, fmt):  # a script needs no worker thread
            yield item

    def send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        raw = self._answer(messages, params, signature, fmt, streamed=False)
        assert isinstance(raw, RawResult)
        return raw

    def _answer(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                fmt: PromptFormat | None, *, streamed: bool) -> RawResult | CutStream:
        with self._lock:
            self.calls.append(list(messages))
            self.requests.append(dict(params))
        response = self._next()
        if callable(response) and not isinstance(response, BaseException):
            response = response(messages)
        if isinstance(response, CutStream):
            if streamed:
                return response
            response = response.error
        if isinstance(response, BaseException):
            _raise(response)
        if isinstance(response, ToolCall):
            response = ToolReply([response])
        if isinstance(response, ToolReply):
            calls = tuple(response.calls)
            return RawResult(response.text, prompt_tokens=sum(len(m["content"]) // 4 for m in messages),
                             completion_tokens=sum(len(c.raw) for c in calls) // 4, cost=0.0, tool_calls=calls)
        if isinstance(response, Mapping):
            if signature is None:
                raise TypeError("a dict response needs a signature: call the LM through a Predict")
            text = (fmt or ChatFormat()).render_outputs(signature, response)
        else:
            text = str(response)
        return RawResult(text, prompt_tokens=sum(len(m["content"]) // 4 for m in messages),
                         completion_tokens=len(text) // 4, cost=0.0)


def _raise(error: BaseException) -> NoReturn:
    """Raise a scripted failure as a backend would: transient ones wrapped for the retry loop."""
    if isinstance(error, (RateLimitError, LMTimeoutError)) or (
            isinstance(error, LMError) and (error.status_code or 0) >= 500):
        raise TransientError(error, error.retry_after)
    raise error
