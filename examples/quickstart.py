"""The main job: a sentiment classifier for SST-2 movie reviews, on the embedded offline model.

Runs with no API key and no network: ``LM("local/smollm2")`` is SmolLM2-135M-Instruct, run
in-process by llama.cpp. Prints the zero-shot test accuracy, saves the program as JSON and runs it.

    python examples/quickstart.py [--test 100] [--out sst2_program.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bridge
from examples.data import load_classification


class Sentiment(bridge.Signature):
    """Classify the sentiment of the movie review as negative or positive."""

    text: str = bridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = bridge.OutputField(prefix="Sentiment")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--test", type=int, default=100, help="test examples to score")
    parser.add_argument("--out", default="sst2_program.json")
    args = parser.parse_args(argv)

    bridge.configure(lm=bridge.LM(args.model))
    testset = load_classification("sst2", "test", args.test)
    metric = bridge.metrics.exact_match("label")
    program = bridge.Predict(Sentiment)

    result = bridge.Evaluate(devset=testset, metric=metric, num_threads=2)(program)
    print(f"zero-shot accuracy on {len(testset)} SST-2 test reviews: {result.score:.1f}% "
          f"({result.errors} failed, {result.usage.calls} LM calls, {result.usage.cache_hits} cache hits)")

    program.save(args.out)
    print(f"saved the program to {args.out}")
    loaded = bridge.Predict(Sentiment).load(args.out)
    review = "a gorgeous , witty , seductive movie ."
    print(f"{review!r} -> {loaded(text=review).label}")
    return result.score


if __name__ == "__main__":
    main()
