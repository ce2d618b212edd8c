"""Framework time per call of a chain run through ``from_chain``, against invoking the chain directly.

On a fake chat model (no model time), both sides run the same chain in one process, one call each
in turn (so a busy machine slows both alike); the ratio of the median per-call times is printed. The
goal is at most 1.1.

    python benchmarks/compile_chain.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from lmbridge.adapters.langchain import from_chain


def pairs(direct: Any, wrapped: Any, calls: int) -> tuple[list[float], list[float]]:
    """Per-call times of ``direct`` and ``wrapped``, called alternately."""
    a, b = [], []
    for i in range(calls):
        t0 = time.perf_counter()
        direct(i)
        t1 = time.perf_counter()
        wrapped(i)
        b.append(time.perf_counter() - t1)
        a.append(t1 - t0)
    return a, b


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    prompt = ChatPromptTemplate.from_messages([("system", "Classify the review."), ("human", "Review: {text}")])
    chain = prompt | FakeListChatModel(responses=["positive"]) | StrOutputParser()
    program = from_chain(chain)
    pairs(lambda i: chain.invoke({"text": "warm up"}), lambda i: program(text="warm up"), 50)
    direct, wrapped = pairs(lambda i: chain.invoke({"text": f"review {i}"}), lambda i: program(text=f"review {i}"),
                            args.calls)
    d, w = statistics.median(direct), statistics.median(wrapped)
    ratio = w / d
    print(f"chain.invoke: {d * 1e6:.0f} us/call   from_chain: {w * 1e6:.0f} us/call   ratio {ratio:.2f} (goal <= 1.10)")
    return ratio


if __name__ == "__main__":
    main()
