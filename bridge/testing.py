"""Test doubles for programs built on lmbridge: no network, no model, no cost.

``ScriptedLM(responses)`` answers each request with the next response. A response is
* a dict of output-field values, rendered by the active prompt format so the real parse path runs;
* a raw string, sent back as the completion text (to test malformed output);
* an exception instance, raised as the model's failure (to test retries and error handling);
* a ``ToolCall`` (or a ``ToolReply`` with several calls and some text), returned as the model's
  native tool calls, with an empty completion text (to test tool-calling code such as ReAct's
  native mode; say ``ScriptedLM(..., function_calling=True)`` so that it reports support);
* a callable taking the messages and returning one of the above.
A single callable (not in a list) answers every request. ``requests`` records the parameters of
every request (``tools`` among them), ``calls`` its messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from bridge.errors import LMError, LMTimeoutError, RateLimitError
from bridge.formats import ChatFormat, PromptFormat
from bridge.lm import BaseLM, RawResult, TransientError
from bridge.signature import Signature
from bridge.toolcalls import ToolCall as ToolCall
from bridge.types import Message


@dataclass(frozen=True)
class ToolReply:
    """A scripted reply that calls tools: the calls, in order, and the message text beside them."""

    calls: Sequence[ToolCall]
    text: str = ""


Response = Union[str, Mapping[str, Any], BaseException, ToolCall, ToolReply, Callable[[list[Message]], Any]]


class ScriptedLM(BaseLM):
    """An LM that answers from a script. ``calls`` records the messages of every request."""

    def __init__(self, responses: Sequence[Response] | Callable[[list[Message]], Any], *,
                 model: str = "scripted", cache: bool = False, num_retries: int = 3, backoff: float = 0.0,
                 function_calling: bool = False, **params: Any) -> None:
        super().__init__(model, cache=cache, num_retries=num_retries, backoff=backoff, **params)
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

    async def _asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        return self._send(messages, params, signature, fmt)  # a script needs no worker thread

    def _send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        with self._lock:
            self.calls.append(list(messages))
            self.requests.append(dict(params))
        response = self._next()
        if callable(response) and not isinstance(response, BaseException):
            response = response(messages)
        if isinstance(response, (RateLimitError, LMTimeoutError)) or (
                isinstance(response, LMError) and (response.status_code or 0) >= 500):
            raise TransientError(response, response.retry_after)
        if isinstance(response, BaseException):
            raise response
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
