"""A hand-written LangChain prompt, migrated to a signature, compiled, and exported back to LangChain.

1. ``from_prompt_template`` turns a LangChain ``PromptTemplate`` into a bridge signature.
2. ``LabeledFewShot`` compiles it with demos from the SST-2 training set (no LM calls).
3. ``to_runnable`` puts the compiled program into a LangChain chain, between two plain steps.
4. ``to_langchain_chain`` exports the compiled predictor as plain ``prompt | chat model | parser``
   (the chat model being the same embedded model, as a LangChain ``BridgeChatModel``); its labels
   are compared with the chain's.

Runs offline on the embedded model (SmolLM2-135M through llama.cpp):

    python examples/langchain_chain.py [--test 8] [--demos 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

import lmbridge
from examples.data import load_classification
from lmbridge.adapters.langchain import BridgeChatModel, from_prompt_template, to_langchain_chain, to_runnable

HAND_WRITTEN = PromptTemplate.from_template(
    "Decide whether the movie review below is positive or negative.\n\n"
    "Review: {text}\n"
    "Sentiment:"
)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--test", type=int, default=8, help="test reviews to run through the chain")
    parser.add_argument("--demos", type=int, default=4, help="labeled demos to compile in")
    args = parser.parse_args(argv)

    signature = from_prompt_template(HAND_WRITTEN, output_fields="label: Literal['negative', 'positive']")
    signature = signature.with_updated_field("label", prefix="Sentiment")
    print(f"migrated signature: {signature.spec()}\ninstructions: {signature.instructions}")

    trainset = load_classification("sst2", "train", 50)
    compiled = lmbridge.LabeledFewShot(k=args.demos, display_progress=False).compile(
        lmbridge.Predict(signature), trainset=trainset)

    chain: Runnable[Any, Any] = (RunnableLambda(lambda review: {"text": review.strip()})
             | to_runnable(compiled, output_key="label")
             | RunnableLambda(lambda label: "+" if label == "positive" else "-"))

    testset = load_classification("sst2", "test", args.test)
    lm = lmbridge.LM(args.model, max_tokens=16)
    with lmbridge.context(lm=lm):
        marks = chain.batch([ex.text for ex in testset], config={"max_concurrency": 2})
    exported = to_langchain_chain(compiled, BridgeChatModel(lm=lm))
    labels = exported.batch([{"text": ex.text.strip()} for ex in testset], return_exceptions=True)
    same = sum(isinstance(out, dict) and ("+" if out["label"] == "positive" else "-") == mark
               for out, mark in zip(labels, marks))
    print(f"the exported LangChain chain agrees with the lmbridge chain on {same}/{len(testset)} reviews")
    correct: int = sum(m == ("+" if ex.label == "positive" else "-") for m, ex in zip(marks, testset))
    for mark, ex in zip(marks, testset):
        print(f"{mark} {ex.text[:70]!r}")
    accuracy = 100.0 * correct / len(testset)
    print(f"{correct}/{len(testset)} correct ({accuracy:.0f}%) with {args.demos} demos")
    return accuracy


if __name__ == "__main__":
    main()
