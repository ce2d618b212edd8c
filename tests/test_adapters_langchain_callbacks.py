"""LangChain callbacks see a program run as a tree: the program as a chain run, predictors as child
chain runs, LM calls as chat-model runs with messages and usage, tools and retrievals as their
runs; config tags, metadata and run_name reach them. No network: ScriptedLMs and fake models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langchain_core.tracers.stdout import FunctionCallbackHandler

from lmbridge.adapters.langchain import LangChainLM, to_runnable


class Collector(BaseTracer):
    """Keeps every finished root run, with its child runs."""

    def __init__(self) -> None:
        super().__init__(_schema_format="original+chat")  # chat messages kept, as LangSmith's tracer does
        self.roots: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        self.roots.append(run)


def tree(run: Run, depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}{run.run_type}:{run.name}"]
    for child in sorted(run.child_runs, key=lambda r: r.dotted_order or ""):
        lines += tree(child, depth + 1)
    return lines


def walk(run: Run) -> list[Run]:
    return [run, *(r for child in run.child_runs for r in walk(child))]


def test_chain_of_thought_shows_a_chain_a_predictor_and_a_chat_model_run() -> None:
    lm = ScriptedLM([{"reasoning": "Peru's capital is Lima.", "answer": "Lima"}])
    collector = Collector()
    runnable = to_runnable(lmbridge.ChainOfThought("question -> answer", lm=lm))
    out = runnable.invoke({"question": "Capital of Peru?"},
                          {"callbacks": [collector], "tags": ["geo"], "metadata": {"user": "u1"},
                           "run_name": "capitals"})
    assert out["answer"] == "Lima"
    root = collector.roots[0]
    assert tree(root) == ["chain:capitals", "  chain:Predict", "    chat_model:scripted"]
    predictor, llm = root.child_runs[0], root.child_runs[0].child_runs[0]
    assert predictor.inputs == {"question": "Capital of Peru?"}
    assert predictor.outputs == {"reasoning": "Peru's capital is Lima.", "answer": "Lima"}
    sent = llm.inputs["messages"][0]
    assert [m["kwargs"]["content"] for m in sent] == [m["content"] for m in lm.calls[0]]
    message = llm.outputs["generations"][0][0]["message"]["kwargs"]
    assert message["usage_metadata"]["input_tokens"] > 0 and "Lima" in message["content"]
    for run in walk(root):
        assert "geo" in run.tags and run.extra["metadata"]["user"] == "u1"


def test_a_predict_is_the_chain_run_itself() -> None:
    collector = Collector()
    to_runnable(lmbridge.Predict("question -> answer", lm=ScriptedLM([{"answer": "Lima"}]))).invoke(
        {"question": "?"}, {"callbacks": [collector]})
    assert tree(collector.roots[0]) == ["chain:lmbridge.Predict", "  chat_model:scripted"]


class Helpdesk(lmbridge.Module):
    """Retrieve passages, then answer with a ReAct agent that may look up an order."""

    def __init__(self, lm: lmbridge.BaseLM) -> None:
        def search(query: str, k: int) -> list[str]:
            return ["Refunds take 5 days.", "Orders ship in 2 days."][:k]

        def order_status(order_id: int) -> str:
            """The status of an order."""
            return f"order {order_id} shipped"

        self.retrieve = lmbridge.Retrieve(search, k=2)
        self.agent = lmbridge.ReAct("context: list[str], question -> answer", tools=[order_status], lm=lm)

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        context = self.retrieve(question).passages
        return self.agent(context=context, question=question)


def test_tools_and_retrievers_are_their_own_runs() -> None:
    lm = ScriptedLM([
        {"next_thought": "look it up", "next_tool_name": "order_status", "next_tool_args": {"order_id": 7}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "it shipped", "answer": "Order 7 has shipped."},
    ])
    collector = Collector()
    to_runnable(Helpdesk(lm)).invoke({"question": "Where is order 7?"}, {"callbacks": [collector]})
    runs = walk(collector.roots[0])
    kinds = [(r.run_type, r.name) for r in runs]
    assert ("retriever", "search") in kinds and ("tool", "order_status") in kinds
    retriever = next(r for r in runs if r.run_type == "retriever")
    assert [d.page_content for d in retriever.outputs["documents"]] == ["Refunds take 5 days.",
                                                                          "Orders ship in 2 days."]
    tool = next(r for r in runs if r.run_type == "tool")
    assert tool.outputs == {"output": "order 7 shipped"}
    agent = next(r for r in runs if r.name == "ReAct")
    assert agent.parent_run_id == collector.roots[0].id
    assert sum(r.run_type == "chat_model" for r in runs) == 3


def test_a_langchain_chat_model_reports_its_own_run_under_the_predictor() -> None:
    chat = GenericFakeChatModel(messages=iter(["Reasoning: known\nAnswer: Lima"]))
    collector = Collector()
    runnable = to_runnable(lmbridge.ChainOfThought("question -> answer", lm=LangChainLM(chat, cache=False)))
    runnable.invoke({"question": "Capital of Peru?"}, {"callbacks": [collector]})
    assert tree(collector.roots[0]) == ["chain:lmbridge.ChainOfThought", "  chain:Predict",
                                        "    chat_model:GenericFakeChatModel"]


def test_async_invoke_and_batch_build_the_same_tree() -> None:
    collector = Collector()
    runnable = to_runnable(lmbridge.ChainOfThought("question -> answer", lm=ScriptedLM(
        lambda m: {"reasoning": "r", "answer": "a"})))
    asyncio.run(runnable.ainvoke({"question": "?"}, {"callbacks": [collector]}))
    runnable.batch([{"question": "1"}, {"question": "2"}], {"callbacks": [collector], "max_concurrency": 2})
    assert [tree(r) for r in collector.roots] == [
        ["chain:lmbridge.ChainOfThought", "  chain:Predict", "    chat_model:scripted"]] * 3


def test_no_handler_installs_no_bridge_callback() -> None:
    seen: list[Any] = []

    def answer(messages: list[lmbridge.Message]) -> dict[str, str]:
        seen.append(lmbridge.current().callbacks)
        return {"answer": "x"}

    runnable = to_runnable(lmbridge.Predict("question -> answer", lm=ScriptedLM(answer)))
    runnable.invoke({"question": "?"})
    runnable.invoke({"question": "?"}, {"callbacks": [FunctionCallbackHandler(lambda s: None)]})
    assert seen[0] == () and len(seen[1]) == 1
