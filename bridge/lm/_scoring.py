"""Option scoring for label scoring: the log-probability of each option as a model's whole answer.

``OptionScores`` is what ``BaseLM.score_options`` returns (a backend without log-probabilities
raises ``LogprobsUnavailableError`` there). ``score_local`` is how the embedded model scores,
through the LM's cache; ``lmbridge.labels`` turns the scores into a choice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmbridge.lm._cache import Cache, cache_key
from lmbridge.types import Message, Usage


@dataclass(frozen=True, slots=True)
class OptionScores:
    """The log-probability of each option as the model's whole answer (``BaseLM.score_options``)."""

    logprobs: tuple[float, ...]
    usage: Usage
    cached: bool = False


def score_local(local: Any, model: str, cache: Cache | None, finish: Callable[[list[Message], str, Usage, bool], None],
                messages: list[Message], options: list[str], params: dict[str, Any] | None) -> OptionScores:
    """Score ``options`` with the embedded model ``local`` (its raw endpoint for ``TextFormat``'s
    ``params["endpoint"] == "completion"``), reading and writing ``cache``; ``finish`` records the
    call in the LM's history and usage."""
    raw = bool(params and params.get("endpoint") == "completion")
    key = cache_key(model, messages, {"score_options": options, "raw": raw}) if cache is not None else None
    record = cache.get(key) if key is not None and cache is not None else None
    if record is not None:
        usage = Usage(cache_hits=1)
        finish(messages, record["text"], usage, True)
        return OptionScores(tuple(json.loads(record["text"])), usage, True)
    logprobs, prompt_tokens = local.score(messages, options, raw=raw)
    text = json.dumps(logprobs)
    usage = Usage(calls=1, prompt_tokens=prompt_tokens, cost=0.0)
    if key is not None and cache is not None:
        cache.set(key, {"text": text, "prompt_tokens": prompt_tokens, "completion_tokens": 0})
    finish(messages, text, usage, False)
    return OptionScores(tuple(logprobs), usage)
