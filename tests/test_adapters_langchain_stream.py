"""ProgramRunnable.stream / astream / astream_events: output fields arrive as the model writes them,
the chunks add up to what invoke returns, and astream_events shows the inner runs."""

from __future__ import annotations

import asyncio
from functools import reduce
from operator import add
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.output_parsers import JsonOutputParser, StrOutputParser

from lmbridge.adapters.langchain import to_runnable

REPLY = {"reasoning": "Peru is in South America; its capital is Lima.", "answer": "Lima", "confidence": 0.9}


def cot() -> lmbridge.ChainOfThought:
    return lmbridge.ChainOfThought("question -> answer, confidence: float",
                                 lm=ScriptedLM(lambda m: REPLY, chunk_size=5))


def test_stream_yields_text_fields_in_pieces_that_add_up_to_invoke() -> None:
    runnable = to_runnable(cot())
    chunks = list(runnable.stream({"question": "Capital of Peru?"}))
    assert len(chunks) > 5
    reasoning_pieces = [c["reasoning"] for c in chunks if "reasoning" in c]
    assert len(reasoning_pieces) > 3 and "".join(reasoning_pieces) == REPLY["reasoning"]
    first_answer = next(i for i, c in enumerate(chunks) if "answer" in c)
    assert all("reasoning" not in c for c in chunks[first_answer:])  # reasoning streams first
    assert [c["confidence"] for c in chunks if "confidence" in c] == [0.9]  # a typed field, once
    assert dict(reduce(add, chunks)) == runnable.invoke({"question": "Capital of Peru?"}) == REPLY


def test_astream_and_output_key() -> None:
    runnable = to_runnable(cot(), output_key="reasoning")

    async def collect() -> list[Any]:
        return [c async for c in runnable.astream({"question": "Capital of Peru?"})]

    pieces = asyncio.run(collect())
    assert len(pieces) > 3 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == REPLY["reasoning"]


def test_stream_through_string_and_json_parsers() -> None:
    text = list((to_runnable(cot(), output_key="answer") | StrOutputParser()).stream({"question": "?"}))
    assert "".join(text) == "Lima"
    program = lmbridge.ChainOfThought("question -> answer", lm=ScriptedLM(
        lambda m: {"reasoning": "a long line of thought here", "answer": "Lima"}, chunk_size=3))
    pieces = list((to_runnable(program) | StrOutputParser()).stream({"question": "?"}))
    assert "".join(pieces) == "Lima"
    parsed = list((to_runnable(cot()) | JsonOutputParser()).stream({"question": "?"}))
    assert parsed[-1] == REPLY


def test_a_multi_predictor_program_streams_only_its_outputs() -> None:
    lm = ScriptedLM([{"next_thought": "I should finish", "next_tool_name": "finish", "next_tool_args": {}},
                     {"reasoning": "nothing to look up", "answer": "Lima"}], chunk_size=4)
    agent = lmbridge.ReAct("question -> answer", tools=[lmbridge.Tool(lambda q: q, name="echo")], lm=lm)
    chunks = list(to_runnable(agent).stream({"question": "Capital of Peru?"}))
    keys = set().union(*(c.keys() for c in chunks))
    assert "next_thought" not in keys and "answer" in keys
    total = reduce(add, chunks)
    assert total["answer"] == "Lima" and total["finish_reason"] == "finish"


def test_astream_events_shows_inner_runs_and_tokens() -> None:
    runnable = to_runnable(cot())

    async def collect() -> list[dict[str, Any]]:
        return [e async for e in runnable.astream_events({"question": "?"}, version="v2")]

    events = asyncio.run(collect())
    kinds = [(e["event"], e["name"]) for e in events]
    assert ("on_chain_start", "lmbridge.ChainOfThought") in kinds
    assert ("on_chain_start", "Predict") in kinds and ("on_chat_model_start", "scripted") in kinds
    tokens = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert len(tokens) > 3 and "Lima" in "".join(tokens)
    streamed = [e["data"]["chunk"] for e in events
                if e["event"] == "on_chain_stream" and e["name"] == "lmbridge.ChainOfThought"]
    assert dict(reduce(add, streamed)) == REPLY
    end = next(e for e in events if e["event"] == "on_chat_model_end")
    assert end["data"]["output"].usage_metadata["output_tokens"] > 0


def test_include_usage_comes_last() -> None:
    chunks = list(to_runnable(cot(), include_usage=True).stream({"question": "?"}))
    assert chunks[-1]["usage"]["calls"] == 1
