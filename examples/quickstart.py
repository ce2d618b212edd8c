"""The main job: compile a sentiment classifier for SST-2 movie reviews on an embedded offline model.

Runs with no API key and no network. ``LM("local/gemma3")`` is Gemma 3 270M, a *base* model run
in-process by llama.cpp: asked zero-shot it mostly echoes the prompt, so it needs demonstrations.
BootstrapFewShot finds them: it runs the program over training reviews, keeps the answers the
metric accepts, and installs them as demos. The script prints the test accuracy before and after,
saves the compiled program as JSON, loads it back and runs it on a new review.

    python examples/quickstart.py [--model local/gemma3] [--train 24] [--test 40] [--out sst2_program.json]
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


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local/gemma3", help="local/gemma3, local/smollm2 or a LiteLLM model")
    parser.add_argument("--train", type=int, default=24, help="training reviews the optimizer may use")
    parser.add_argument("--test", type=int, default=40, help="test reviews to score")
    parser.add_argument("--out", default="sst2_program.json")
    args = parser.parse_args(argv)

    bridge.configure(lm=bridge.LM(args.model, max_tokens=8))
    trainset = load_classification("sst2", "train", args.train)
    testset = load_classification("sst2", "test", args.test)
    metric = bridge.metrics.exact_match("label")
    evaluate = bridge.Evaluate(devset=testset, metric=metric, num_threads=2)

    program = bridge.Predict(Sentiment)
    before = evaluate(program)
    print(f"zero-shot: {before.score:.1f}% on {len(testset)} SST-2 test reviews "
          f"({before.errors} unparsable answers, {before.usage.calls} LM calls, {before.usage.cache_hits} cached)")

    optimizer = bridge.BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=8)
    compiled = optimizer.compile(program, trainset=trainset)
    after = evaluate(compiled)
    print(f"compiled:  {after.score:.1f}% on the same reviews "
          f"({after.errors} unparsable answers, {after.usage.calls} LM calls, {after.usage.cache_hits} cached; "
          f"{len(compiled.predictors()[0].demos)} demos found with "
          f"{(compiled.report or {}).get('lm_calls', '?')} LM calls)")

    compiled.save(args.out)
    print(f"saved the compiled program to {args.out}")
    loaded = bridge.Predict(Sentiment).load(args.out)
    review = "a gorgeous , witty , seductive movie ."
    print(f"{review!r} -> {loaded(text=review).label}")
    return before.score, after.score


if __name__ == "__main__":
    main()
