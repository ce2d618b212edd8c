"""Framework time per call of a LangGraph graph run through ``from_chain``, against invoking the graph.

The graph has two prompt-bearing nodes on a fake chat model (no model time): a chain node, and a
function node whose prompt is opted in with ``learnable``. Both sides run in one process, one call
each in turn; the ratio of the median per-call times is printed (goal: at most 1.1, as for chains).

    python benchmarks/compile_graph.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from benchmarks._scenarios import alternate, print_ratio
from benchmarks.compile_chain import GOAL
from lmbridge.adapters.langchain import from_chain, learnable


class State(TypedDict, total=False):
    text: str
    label: str
    checked: str


MODEL = FakeListChatModel(responses=["positive"])
CLASSIFY = ChatPromptTemplate.from_messages([("system", "Classify the review."), ("human", "Review: {text}")])
CHECK = learnable(ChatPromptTemplate.from_messages([("human", "Check: {label}")]), name="check")


def build(model: Any = MODEL, classify: Any = CLASSIFY, check: Any = CHECK, reads: str = "label") -> Any:
    """A compiled two-node graph: ``classify``, a chain node (``classify | model``, its text as
    ``label``), then ``check``, a function node that runs the learnable ``check`` prompt on the
    state's ``reads`` field into ``checked`` (tests/test_compile_graph_real.py builds its graph here)."""

    def check_node(state: State) -> State:
        return {"checked": (check | model | StrOutputParser()).invoke({reads: state[reads]})}  # type: ignore[literal-required]

    graph = StateGraph(State)
    graph.add_node("classify", classify | model | StrOutputParser() | RunnableLambda(lambda s: {"label": s}))
    graph.add_node("check", check_node)
    graph.add_edge(START, "classify")
    graph.add_edge("classify", "check")
    return graph.compile()


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)
    graph = build()
    program = from_chain(graph)
    times = alternate(lambda i: graph.invoke({"text": f"review {i}"}), lambda i: program(text=f"review {i}"),
                      args.calls)
    return print_ratio("graph.invoke", "from_chain", times, GOAL)

if __name__ == "__main__":
    main()
