"""Exports that keep the program's behaviour or refuse at export time, naming what cannot be carried."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from lmbridge.adapters.langchain import BridgeChatModel, to_langchain_chain
from lmbridge.testing import ScriptedLM

SIG = lmbridge.make_signature("text -> label: Literal['negative', 'positive']", "Classify the review.")


class RecordingLM(ScriptedLM):
    """A ScriptedLM that keeps the request parameters it was sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[dict[str, Any]] = []

    def send(self, messages: Any, params: dict[str, Any], signature: Any, fmt: Any) -> Any:
        self.sent.append(dict(params))
        return super().send(messages, params, signature, fmt)


class Chat(BaseChatModel):
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "chat"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="Label: positive"))])


def text_predictor() -> lmbridge.Predict:
    return lmbridge.Predict(SIG, format=lmbridge.TextFormat(), demos=[{"text": "fine", "label": "positive"}])


def test_text_format_to_a_chat_model_is_refused_with_what_to_choose() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=r"raw prompt.*BaseLLM.*BridgeChatModel.*ChatFormat"):
        to_langchain_chain(text_predictor(), Chat())


def test_text_format_over_bridge_chat_model_sends_the_programs_request() -> None:
    predictor = text_predictor()
    ours, theirs = RecordingLM(["positive"]), RecordingLM(["positive"])
    predictor.lm = ours
    assert predictor(text="great").label == "positive"
    chain = to_langchain_chain(predictor, BridgeChatModel(lm=theirs))
    assert chain.invoke({"text": "great"}) == {"label": "positive"}
    assert theirs.sent[0] == ours.sent[0] and theirs.sent[0]["endpoint"] == "completion"
    assert theirs.calls[0] == ours.calls[0]


def test_text_format_to_a_text_model_sends_one_raw_prompt() -> None:
    predictor = text_predictor()
    lm = RecordingLM(["positive"])
    predictor.lm = lm
    predictor(text="great")
    model = FakeListLLM(responses=["positive"])
    chain = to_langchain_chain(predictor, model, bare=True)
    assert chain.invoke({"text": "great"}) == "positive"
    steps = chain.steps  # type: ignore[attr-defined]
    sent = steps[1].invoke(steps[0].invoke({"text": "great"}))
    assert sent == "\n\n".join(m["content"] for m in lm.calls[0] if m["content"])


def test_label_scoring_cannot_be_exported() -> None:
    predictor = lmbridge.Predict(SIG, format=lmbridge.ChatFormat(scoring="labels"))
    with pytest.raises(lmbridge.ConfigurationError, match=r"scoring='labels'.*to_runnable"):
        to_langchain_chain(predictor, BridgeChatModel(lm=ScriptedLM(["x"])))


def test_bare_returns_the_value_and_needs_one_output() -> None:
    chain = to_langchain_chain(lmbridge.Predict(SIG), Chat(), bare=True)
    assert chain.invoke({"text": "great"}) == "positive"
    with pytest.raises(lmbridge.ConfigurationError, match="one output"):
        to_langchain_chain(lmbridge.ChainOfThought(SIG), Chat(), bare=True)


def test_the_chains_prompt_for_list_inputs_deserializes_and_renders_the_same() -> None:
    predictor = lmbridge.Predict("context: list[str], question -> answer")
    chain = to_langchain_chain(predictor, Chat())
    prompt = loads(dumps(chain.steps[1]))  # type: ignore[attr-defined]
    written = chain.steps[0].invoke({"context": ["a {x}", "b"], "question": "q?"})  # type: ignore[attr-defined]
    sent = [(m.type, m.content) for m in prompt.invoke(written).to_messages()]
    expected = predictor.messages(context=["a {x}", "b"], question="q?")
    assert [c for _, c in sent] == [m["content"] for m in expected]
