"""What both adapter LMs share (``lmbridge.adapters._foreign_lm``): one secret filter for the cache key,
one retry policy with Retry-After, and a truncated answer refused, through LangChain and LlamaIndex alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import lmbridge
from lmbridge.lm import TruncatedError

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llamaindex_fixtures import ScriptedChatLLM

from lmbridge.adapters.langchain import LangChainLM
from lmbridge.adapters.llamaindex import LlamaIndexLM


class SlowDown(Exception):
    """Shaped like an OpenAI SDK 429: a status code and a response with headers."""

    status_code = 429

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("slow down")
        self.response = type("R", (), {"status_code": 429, "headers": headers})()


class FlakyChat(GenericFakeChatModel):
    """Raises each queued failure once, then answers."""

    failures: list[Exception] = []
    calls: int = 0
    max_tokens: int = 16

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return super()._generate(*args, **kwargs)


class CutChat(GenericFakeChatModel):
    """Answers with OpenAI's metadata for an answer stopped at max_tokens."""

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        message = AIMessage(content="Answer: Par", response_metadata={"finish_reason": "length"})
        return ChatResult(generations=[ChatGeneration(message=message)])


class FlakyLLM(ScriptedChatLLM):
    failures: list[Exception] = []
    calls: int = 0

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().chat(messages, **kwargs)


def test_the_llamaindex_cache_key_never_holds_an_auth_secret() -> None:
    class AuthLLM(ScriptedChatLLM):
        auth_header: str = ""
        authorization: str = ""

    a = LlamaIndexLM(AuthLLM(replies=[], seen=[], auth_header="Bearer one", authorization="sk-1"), cache=False)
    b = LlamaIndexLM(AuthLLM(replies=[], seen=[], auth_header="Bearer two", authorization="sk-2"), cache=False)
    assert a.model == b.model  # the secret is not part of the name, which starts every cache key
    colder = LlamaIndexLM(AuthLLM(replies=[], seen=[], temperature=0.5), cache=False)
    assert colder.model != a.model  # while a real setting still is


def test_the_langchain_cache_key_keeps_max_tokens_and_drops_the_key() -> None:
    short = LangChainLM(FlakyChat(messages=iter([]), max_tokens=16), cache=False)
    long = LangChainLM(FlakyChat(messages=iter([]), max_tokens=512), cache=False)
    assert short.model != long.model  # "max_tokens" is a setting, not a secret named like "token"

    class Keyed(FlakyChat):
        api_key: str = ""

    one = LangChainLM(Keyed(messages=iter([]), api_key="sk-one"), cache=False)
    two = LangChainLM(Keyed(messages=iter([]), api_key="sk-two"), cache=False)
    assert one.model == two.model


@pytest.mark.parametrize("adapter", ["langchain", "llamaindex"])
def test_both_adapters_retry_a_rate_limit_after_the_servers_retry_after(adapter: str,
                                                                        waits: list[float]) -> None:
    failure = SlowDown({"retry-after-ms": "1500"})
    lm: lmbridge.BaseLM
    if adapter == "langchain":
        chat = FlakyChat(messages=iter([AIMessage(content="Answer: Lima")]), failures=[failure])
        lm = LangChainLM(chat, cache=False)
    else:
        llm = FlakyLLM(replies=["Answer: Lima"], seen=[], failures=[failure])
        lm = LlamaIndexLM(llm, cache=False)
    with lmbridge.track_usage() as tracker:
        assert lmbridge.Predict("question -> answer", lm=lm)(question="Capital of Peru?").answer == "Lima"
    assert waits == [1.5]  # retry-after-ms read the same way by both
    assert tracker.usage.retries == 1 and tracker.usage.calls == 1


def test_a_langchain_answer_cut_at_max_tokens_raises_and_is_never_read() -> None:
    lm = LangChainLM(CutChat(messages=iter([])), cache=False, max_tokens=3)
    with pytest.raises(TruncatedError) as info:
        lmbridge.Predict("question -> answer", lm=lm)(question="Capital of France?")
    assert info.value.limit == 3 and "max_tokens" in str(info.value)
    assert lm.usage.calls == 1  # counted once, not re-sent
