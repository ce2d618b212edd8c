"""Framework time per call of a chain run through ``from_chain``, against invoking the chain directly.

On a fake chat model (no model time), both sides run the same chain in one process, one call each
in turn (so a busy machine slows both alike); the ratio of the median per-call times is printed. The
goal is at most 1.1.

    python benchmarks/compile_chain.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from benchmarks._scenarios import alternate, print_ratio
from lmbridge.adapters.langchain import from_chain

GOAL = 1.1


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    prompt = ChatPromptTemplate.from_messages([("system", "Classify the review."), ("human", "Review: {text}")])
    chain = prompt | FakeListChatModel(responses=["positive"]) | StrOutputParser()
    program = from_chain(chain)
    times = alternate(lambda i: chain.invoke({"text": f"review {i}"}), lambda i: program(text=f"review {i}"),
                      args.calls)
    return print_ratio("chain.invoke", "from_chain", times, GOAL)


if __name__ == "__main__":
    main()
