"""Compile the chain you already have: an SST-2 chain ``ChatPromptTemplate | chat model | StrOutputParser()``
with a hand-written prompt, compiled in place by ``compile_chain``.

The chat model is the embedded model as a LangChain ``BridgeChatModel``. The script reports the
accuracy of the original chain and of the compiled one on the test rows, and the compile's score
(on its valset), LM calls and wall time. The compiled chain is a plain LangChain Runnable: the
user's model and parser, with the prompt carrying learned example turns.

Runs offline on the embedded model:

    python examples/compile_chain_sst2.py [--train 60] [--test 100] [--model local/gemma3] [--optimizer labeled]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import lmbridge
from examples.data import load_classification
from lmbridge.adapters.langchain import BridgeChatModel, compile_chain

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Decide whether the movie review is positive or negative. Answer with one word."),
    ("human", "Review: {text}"),
])


def exact(example: lmbridge.Example, output: Any, trace: Any = None) -> bool:
    """The chain's own output (a string) against the label."""
    return str(output).strip().lower().startswith(example.label)


def accuracy(chain: Any, rows: list[lmbridge.Example]) -> float:
    outputs = chain.batch([{"text": r.text} for r in rows], config={"max_concurrency": 1})
    return 100.0 * sum(exact(r, o) for r, o in zip(rows, outputs)) / len(rows)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--train", type=int, default=60, help="training rows (the last third is the valset)")
    parser.add_argument("--test", type=int, default=100, help="test rows scored before and after")
    parser.add_argument("--optimizer", choices=["default", "labeled"], default="default",
                        help="compile_chain's default, or LabeledFewShot(k=8, balanced=True) with the metric")
    args = parser.parse_args(argv)

    lm = lmbridge.LM(args.model, max_tokens=4, temperature=0.0)
    chain = PROMPT | BridgeChatModel(lm=lm) | StrOutputParser()
    trainset = load_classification("sst2", "train", args.train)
    testset = load_classification("sst2", "test", args.test)

    before = accuracy(chain, testset)
    start = time.perf_counter()
    with lmbridge.track_usage() as usage:
        optimizer = None if args.optimizer == "default" else lmbridge.LabeledFewShot(k=8, balanced=True)
        compiled = compile_chain(chain, trainset=trainset, metric=exact, optimizer=optimizer)
    elapsed = time.perf_counter() - start
    after = accuracy(compiled, testset)
    print(f"original chain: {before:.1f}% on {len(testset)} SST-2 test rows")
    print(f"compiled chain: {after:.1f}%  (compile: {usage.usage.calls} LM calls, {elapsed:.1f}s)")
    return before, after


if __name__ == "__main__":
    main()
