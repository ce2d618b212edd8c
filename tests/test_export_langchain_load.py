"""Exported LangChain prompts deserialize with ``langchain_core.load`` in every path: the prompt alone
is all f-string (an input lmbridge writes is refused, or taken written with ``written=True``), and a
prompt whose instructions hold an input slot round-trips with the value in its sentence."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge

pytest.importorskip("langchain_core")

from langchain_core.load import dumpd, dumps, load, loads

from lmbridge.adapters.langchain import to_langchain_prompt
from lmbridge.signatures import render_input

LISTS = "context: list[str], question, strict: bool -> answer"
DEMO = {"context": ["a {x}"], "question": "q?", "strict": True, "answer": "a"}
INPUTS: dict[str, Any] = {"context": ["one", "two {y}"], "question": "Why {not}?", "strict": False}


def contents(messages: Any) -> list[tuple[str, str]]:
    roles = {"human": "user", "ai": "assistant", "system": "system"}
    return [(roles[m.type], str(m.content)) for m in messages]


def ours(predictor: lmbridge.Predict, **inputs: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in predictor.messages(**inputs)]


def test_a_prompt_with_inputs_lmbridge_writes_is_refused_naming_them_and_the_routes() -> None:
    predictor = lmbridge.Predict(LISTS, demos=[DEMO])
    with pytest.raises(lmbridge.ConfigurationError, match=r"\['context', 'strict'\].*to_langchain_chain.*written=True"):
        to_langchain_prompt(predictor)


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(), lmbridge.ChatFormat(demos="inline", instructions="system"),
                                 lmbridge.JSONFormat(), lmbridge.TextFormat()], ids=["chat", "inline", "json", "text"])
def test_a_written_prompt_round_trips_through_load_and_renders_the_programs_messages(fmt: Any) -> None:
    predictor = lmbridge.Predict(LISTS, demos=[DEMO], format=fmt)
    prompt = to_langchain_prompt(predictor, written=True)
    assert "jinja2" not in dumps(prompt)
    for back in (loads(dumps(prompt)), load(dumpd(prompt))):
        written = {n: render_input(v) for n, v in INPUTS.items()}
        assert contents(back.invoke(written).to_messages()) == ours(predictor, **INPUTS)


def test_instructions_with_an_input_slot_export_with_the_value_in_its_sentence() -> None:
    sig = lmbridge.make_signature("question, context -> answer",
                                  "The question is as follows: {question}\nAnswer from the context in French.")
    predictor = lmbridge.Predict(sig, demos=[{"question": "Q1?", "context": "c1", "answer": "A1"}])
    back = loads(dumps(to_langchain_prompt(predictor)))
    sent = contents(back.invoke({"question": "Who {won}?", "context": "Denver won."}).to_messages())
    assert sent == ours(predictor, question="Who {won}?", context="Denver won.")
    assert sent[-1][1].startswith("The question is as follows: Who {won}?\n")
    assert "Question:" not in sent[-1][1]

