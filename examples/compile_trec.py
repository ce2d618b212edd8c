"""Compile a TREC question classifier on the embedded offline model, and measure what it gained.

    python examples/compile_trec.py [--optimizer mipro|bootstrap|labeled] [--train 24] [--val 12]
                                    [--test 40] [--checkpoint trec_study.db] [--out trec_program.json]

Scores the zero-shot program on TREC test questions, compiles it (MIPROv2 "light" by default:
instructions, demos and prompt format searched together), scores the compiled program on the same
questions, and saves it. Rerun with the same ``--checkpoint`` after an interruption and the compile
picks up where it stopped. About 5-15 minutes on two CPU cores, depending on the sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.data import load_classification

Kind = Literal["abbreviation", "description", "entity", "human", "location", "numeric"]


class QuestionType(lmbridge.Signature):
    """Classify what kind of answer the question asks for."""

    text: str = lmbridge.InputField(prefix="Question")
    label: Kind = lmbridge.OutputField(prefix="Answer type")


def make_optimizer(name: str, metric: lmbridge.metrics.Metric, seed: int) -> lmbridge.optimizers.Optimizer:
    if name == "labeled":
        return lmbridge.LabeledFewShot(k=8, seed=seed)
    if name == "bootstrap":
        return lmbridge.BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=8, seed=seed)
    return lmbridge.MIPROv2(metric, auto="light", seed=seed)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--optimizer", choices=["mipro", "bootstrap", "labeled"], default="mipro")
    parser.add_argument("--train", type=int, default=24)
    parser.add_argument("--val", type=int, default=12)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default="trec_program.json")
    args = parser.parse_args(argv)

    lmbridge.configure(lm=lmbridge.LM(args.model, max_tokens=32))
    rows = load_classification("trec", "train", args.train + args.val)
    trainset, valset = rows[:args.train], rows[args.train:]
    testset = load_classification("trec", "test", args.test)
    metric = lmbridge.metrics.exact_match("label")
    evaluate = lmbridge.Evaluate(devset=testset, metric=metric, num_threads=1)

    student = lmbridge.Predict(QuestionType)
    before = evaluate(student).score
    optimizer = make_optimizer(args.optimizer, metric, args.seed)
    print(f"estimate: {optimizer.estimate(student, trainset=trainset, valset=valset)}")
    options = {"checkpoint": args.checkpoint} if args.checkpoint and args.optimizer != "labeled" else {}
    compiled = optimizer.compile(student, trainset=trainset, valset=valset, **options)
    after = evaluate(compiled).score
    report = compiled.report or {}
    print(f"TREC test accuracy on {len(testset)} questions: zero-shot {before:.1f}% -> compiled {after:.1f}%")
    print(f"compile: {report.get('lm_calls')} LM calls, {report.get('wall_time', 0):.0f} s, "
          f"stopped early: {report.get('stopped_early') or 'no'}")
    compiled.save(args.out)
    print(f"saved to {args.out}; see the prompt with: lmbridge inspect {args.out}")
    return before, after


if __name__ == "__main__":
    main()
