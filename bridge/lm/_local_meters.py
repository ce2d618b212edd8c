"""Stand-ins for parts of a loaded llama.cpp model that count the tokens llama-cpp-python does not
report: the completions of its function-calling handler, and the prompt of a streamed chat request.
``lmbridge.lm._local`` uses them while it holds the model's lock.
"""

from __future__ import annotations

from typing import Any


class MeteredLlama:
    """Stands in for the Llama given to the function-calling handler. The handler makes several
    completions per request and leaves some of them unbounded: each is capped at ``max_tokens``
    here, and the tokens of all are summed.

    With ``tool_choice="auto"`` the handler (llama-cpp-python 0.3) completes the tool's name (its
    first completion, which stops at ``":"``), then the arguments, then asks the model whether more
    calls follow. It reads that last answer with its trailing colon, so no name ever matches and the
    answer is dropped; we answer "no more calls" ourselves and save the model that completion.
    """

    def __init__(self, llama: Any, max_tokens: int) -> None:
        self._llama = llama
        self.verbose: bool = llama.verbose
        self.max_tokens = max_tokens
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._count = 0
        self._picks_name = False

    def create_completion(self, **kwargs: Any) -> Any:
        self._count += 1
        if self._count == 1:
            self._picks_name = kwargs.get("stop") == [":"]
        elif self._count == 3 and self._picks_name:
            return {"choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]}
        limit = kwargs.get("max_tokens")
        kwargs["max_tokens"] = self.max_tokens if limit is None else min(limit, self.max_tokens)
        response = self._llama.create_completion(**kwargs)
        usage = (response.get("usage") or {}) if isinstance(response, dict) else {}
        self.prompt_tokens += int(usage.get("prompt_tokens", 0))
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        return response


class PromptMeter:
    """Stands in for ``Llama.create_completion`` while a streamed chat request is set up, to count
    the tokens of the prompt that the chat handler builds (llama.cpp's stream reports no usage)."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._create = llama.create_completion
        self.prompt_tokens = 0

    def __call__(self, **kwargs: Any) -> Any:
        prompt = kwargs.get("prompt")
        if isinstance(prompt, list):
            self.prompt_tokens += len(prompt)
        elif isinstance(prompt, str):
            self.prompt_tokens += len(self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        return self._create(**kwargs)
