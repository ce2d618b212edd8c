"""``LM``: a language model reached through LiteLLM, the only network client in lmbridge, or the
embedded llama.cpp model for ``"local/..."`` names. It implements ``BaseLM``'s backend protocol
(``send``, ``asend``, ``send_stream``, ``asend_stream``); the base class does the rest.

``LM("local/smollm2", adapter=path)`` runs the embedded model with a llama.cpp LoRA adapter (what
``lmbridge.finetune.LocalLoRA`` trains); the adapter's sha256 joins the model name in cache keys.
``LM(name, fine_tuned=True)`` marks a provider's fine-tuned model, so that a saved program keeps it.

LiteLLM's exceptions are mapped once (``lmbridge.lm._litellm.map_error``) to ``bridge`` errors
raised ``from`` the original. ``import lmbridge`` never imports LiteLLM: it is imported on the first
request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmbridge.errors import ConfigurationError, LMError
from lmbridge.formats import constrained_params
from lmbridge.lm._base import BaseLM
from lmbridge.lm._cache import Cache, cache_key
from lmbridge.lm._litellm import _litellm, litellm_astream, litellm_stream, map_error, tool_request_flags
from lmbridge.lm._local import LocalModel
from lmbridge.lm._local_files import file_sha256
from lmbridge.lm._scoring import OptionScores, score_local
from lmbridge.lm._types import RawResult
from lmbridge.toolcalls import read_tool_calls
from lmbridge.types import Message

if TYPE_CHECKING:
    from lmbridge.formats import Constraint, PromptFormat
    from lmbridge.signatures import Signature


class LM(BaseLM):
    """A language model reached through LiteLLM (any LiteLLM model string), or the embedded local
    model for ``"local/<name>"``.

    ``LM("openai/smollm2", api_base="http://127.0.0.1:8008/v1", api_key="none")`` reaches any
    OpenAI-compatible server. ``api_key`` and ``api_base`` are sent with each request, never cached
    and never saved. ``function_calling`` says whether the model calls tools natively; None (the
    default) asks LiteLLM's model map, or the embedded model's chat template.

    ``adapter`` (embedded models only) is a llama.cpp LoRA adapter file to run the model with; its
    sha256 is read once, here. A missing file, or an adapter on any other model, raises
    ``ConfigurationError``. ``fine_tuned=True`` says that ``model`` is a provider's fine-tuned model:
    like an adapter, it is then saved with the program (``weights_state``).
    """

    def __init__(self, model: str, *, adapter: str | os.PathLike[str] | None = None, fine_tuned: bool = False,
                 api_base: str | None = None, api_key: str | None = None,
                 temperature: float | None = 0.0, max_tokens: int | None = None, cache: bool | Cache = True,
                 num_retries: int = 3, function_calling: bool | None = None, **params: Any) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("LM needs a model name such as 'local/smollm2' or 'openai/gpt-4o-mini'")
        self.adapter, self.adapter_sha256 = _checked_adapter(model, adapter, fine_tuned)
        self.fine_tuned = fine_tuned
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
            self._local = LocalModel.for_name(model.removeprefix("local/"), self.adapter, self.adapter_sha256)

    @property
    def is_local(self) -> bool:
        return self._local is not None

    def weights_state(self) -> dict[str, Any] | None:
        if self.adapter is not None:
            return {"model": self.model, "adapter": str(self.adapter), "sha256": self.adapter_sha256}
        return {"model": self.model} if self.fine_tuned else None

    def cache_name(self) -> str:
        return self.model if self.adapter_sha256 is None else f"{self.model}+lora:{self.adapter_sha256}"

    def __repr__(self) -> str:
        if self.adapter is not None:
            return f"LM({self.model!r}, adapter={str(self.adapter)!r})"
        return f"LM({self.model!r}, fine_tuned=True)" if self.fine_tuned else super().__repr__()

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
        return score_local(self._local, self.cache_name(), self._cache, self._finish, messages, options, params)

    def _outgoing(self, messages: list[Message], merged: dict[str, Any]) -> dict[str, Any]:
        params = super()._outgoing(messages, merged)
        if self._local is not None and "seed" not in params and (params.get("temperature") or 0.0) > 0:
            # The embedded model has one random state, moved by every sampled call before this one.
            # A seed drawn from the request itself (messages, parameters, rollout_id) makes a sample
            # depend on what was asked only, like a cache entry: a compile that samples repeats.
            params["seed"] = int(cache_key(self.cache_name(), messages, merged)[:8], 16)
        return params

    def send(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
              fmt: PromptFormat | None) -> RawResult:
        if self._local is not None:
            return self._local.chat(messages, params)  # type: ignore[no-any-return]
        litellm = _litellm()
        if params.get("endpoint") == "completion":
            return self._text_completion(messages, params)
        try:
            response = litellm.completion(**self._request(messages, params))
        except Exception as exc:
            raise map_error(exc, self.model) from exc
        return self._result(response)

    def _text_completion(self, messages: list[Message], params: dict[str, Any]) -> RawResult:
        """The raw completion endpoint (``TextFormat``): one prompt, the text that follows it."""
        request = self._request(messages, {k: v for k, v in params.items() if k != "endpoint"})
        request.pop("messages")
        request["prompt"] = "\n\n".join(m["content"] for m in messages if m["content"])
        try:
            response = _litellm().text_completion(**request)
        except Exception as exc:
            raise map_error(exc, self.model) from exc
        choices = getattr(response, "choices", None)
        if not choices:
            raise LMError(f"{self.model}: the response holds no choices", model=self.model)
        usage = getattr(response, "usage", None)
        return RawResult(getattr(choices[0], "text", None) or "", int(getattr(usage, "prompt_tokens", 0) or 0),
                         int(getattr(usage, "completion_tokens", 0) or 0), self._cost(response),
                         finish_reason=_reason(choices[0]))

    async def asend(self, messages: list[Message], params: dict[str, Any],
                     signature: type[Signature] | None, fmt: PromptFormat | None) -> RawResult:
        if self._local is not None:
            import asyncio  # imported here: `import lmbridge` stays fast, and sync callers never load asyncio

            result: RawResult = await asyncio.to_thread(self._local.chat, messages, params)
            return result
        litellm = _litellm()
        if params.get("endpoint") == "completion":
            import asyncio  # as above

            return await asyncio.to_thread(self._text_completion, messages, params)
        try:
            response = await litellm.acompletion(**self._request(messages, params))
        except Exception as exc:
            raise map_error(exc, self.model) from exc
        return self._result(response)

    def send_stream(self, messages: list[Message], params: dict[str, Any], signature: type[Signature] | None,
                     fmt: PromptFormat | None) -> Iterator[str | RawResult]:
        if self._local is not None:
            return self._local.chat_stream(messages, params)  # type: ignore[no-any-return]
        return self._litellm_stream(messages, params)

    def _litellm_stream(self, messages: list[Message], params: dict[str, Any]) -> Iterator[str | RawResult]:
        for item in litellm_stream(self._request(messages, params), self.model):
            yield item if isinstance(item, str) else self._result(item)

    async def asend_stream(self, messages: list[Message], params: dict[str, Any],
                            signature: type[Signature] | None,
                            fmt: PromptFormat | None) -> AsyncIterator[str | RawResult]:
        if self._local is not None:
            async for item in super().asend_stream(messages, params, signature, fmt):
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
        return RawResult(text, prompt_tokens, completion_tokens, self._cost(response), tool_calls,
                         _reason(choices[0]))

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


def _checked_adapter(model: str, adapter: str | os.PathLike[str] | None,
                     fine_tuned: bool) -> tuple[Path | None, str | None]:
    """The adapter file and its sha256, after checking that ``model`` can take one and that it exists."""
    if adapter is None:
        return None, None
    if not model.startswith("local/"):
        raise ConfigurationError(f"LM({model!r}, adapter=...): a LoRA adapter runs only on an embedded model "
                                 "('local/smollm2', 'local/gemma3' or 'local//path/to/model.gguf')")
    if fine_tuned:
        raise ConfigurationError(f"LM({model!r}): pass adapter=... or fine_tuned=True, not both")
    path = Path(adapter).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"LM({model!r}): the adapter file {str(path)!r} does not exist; train it again "
                                 "(lmbridge.finetune.LocalLoRA) or pass the path of an existing adapter")
    return path.resolve(), file_sha256(path)


def _reason(choice: Any) -> str | None:
    """The choice's ``finish_reason`` when it is text (LiteLLM may leave it unset)."""
    reason = getattr(choice, "finish_reason", None)
    return reason if isinstance(reason, str) and reason else None
