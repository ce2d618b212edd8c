"""The main job: compile a sentiment classifier for SST-2 movie reviews on an embedded offline model.

Runs with no API key and no network. ``LM("local/gemma3")`` is Gemma 3 270M, a *base* model run
in-process by llama.cpp. Its answers are constrained at decode time to the two labels (the default
for a ``Literal`` output), so every answer parses; but asked zero-shot it mostly guesses. A base
model learns a task from demonstrations written as plain text on the raw completion endpoint
(``TextFormat``), so the compile step gives it class-balanced demos in that form
(``LabeledFewShot(balanced=True, format=TextFormat())``) and keeps the result only if it beats the
zero-shot program on the validation reviews beyond noise (the report says so, with the interval).

The script prints the test accuracy before and after on the same unseen reviews (the first rows of
a seeded shuffle of the test split: no picking), saves the compiled program as JSON, loads it back
and shows its answers on the first test reviews beside their gold labels.

    python examples/quickstart.py [--model local/gemma3] [--val 30] [--test 60] [--out sst2_program.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.data import load_classification


class Sentiment(lmbridge.Signature):
    """Classify the sentiment of the movie review as negative or positive."""

    text: str = lmbridge.InputField(prefix="Review")
    label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local/gemma3", help="local/gemma3, local/smollm2 or a LiteLLM model")
    parser.add_argument("--train", type=int, default=40, help="training reviews the demos are drawn from")
    parser.add_argument("--val", type=int, default=30, help="validation reviews the compile is checked on")
    parser.add_argument("--test", type=int, default=60, help="unseen test reviews to score")
    parser.add_argument("--show", type=int, default=8, help="test reviews to print with their answers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sst2_program.json")
    args = parser.parse_args(argv)

    lmbridge.configure(lm=lmbridge.LM(args.model, max_tokens=8))
    rng = random.Random(args.seed)
    train = load_classification("sst2", "train")
    rng.shuffle(train)
    test = load_classification("sst2", "test")
    rng.shuffle(test)
    trainset, valset, testset = train[:args.train], train[args.train:args.train + args.val], test[:args.test]
    metric = lmbridge.metrics.exact_match("label")
    evaluate = lmbridge.Evaluate(devset=testset, metric=metric, num_threads=1, display_progress=False)

    program = lmbridge.Predict(Sentiment)
    before = evaluate(program)
    print(f"zero-shot: {before.score:.1f}% on {len(testset)} unseen SST-2 test reviews "
          f"({before.errors} unparsable answers, {before.usage.calls} LM calls)")

    optimizer = lmbridge.LabeledFewShot(k=8, balanced=True, format=lmbridge.TextFormat(), metric=metric,
                                      seed=args.seed)
    compiled = optimizer.compile(program, trainset=trainset, valset=valset)
    selection = (compiled.report or {}).get("selection", {})
    print(f"compile:   8 balanced demos as plain text; on {selection.get('rows', '?')} validation reviews "
          f"the student scored {selection.get('baseline', '?')}%, the candidate {selection.get('winner', '?')}% "
          f"(paired bootstrap interval {selection.get('interval', '?')} points) -> kept the {selection.get('kept')}")
    after = evaluate(compiled)
    print(f"compiled:  {after.score:.1f}% on the same test reviews "
          f"({after.errors} unparsable answers, {after.usage.calls} LM calls)")

    out = Path(args.out).resolve()
    compiled.save(out)
    saved = json.loads(out.read_text(encoding="utf-8"))
    state = saved["predictors"]["self"]
    print(f"saved the compiled program to {out} ({out.stat().st_size} bytes of JSON, no code):")
    print(f'  "format": {saved["format"]!r} version {saved["format_version"]}, '
          f'"instructions": {state["instructions"]!r}')
    print(f'  prompt format {json.dumps(state.get("format"))}, {len(state["demos"])} demos, the first: '
          f'{json.dumps(state["demos"][0])[:90]}')
    loaded = lmbridge.Predict(Sentiment).load(out)
    print(f"the loaded program on the first {args.show} test reviews:")
    for example in testset[:args.show]:
        answer = loaded(text=example.text).label
        mark = "ok " if answer == example.label else "WRONG"
        print(f"  {mark} gold {example.label:<8} answer {answer:<8} {example.text[:70]!r}")
    return before.score, after.score


if __name__ == "__main__":
    main()
