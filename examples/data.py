"""Loading the real datasets in ../shared/datasets (or $LMBRIDGE_DATASETS) as bridge Examples, and
the SQuAD setup the compile examples share (their arguments, examples and EM/F1 scores)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lmbridge


def datasets_dir() -> Path:
    env = os.environ.get("LMBRIDGE_DATASETS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "shared" / "datasets", here / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("datasets not found: set LMBRIDGE_DATASETS to the shared/datasets folder")


def load_jsonl(name: str, split: str) -> list[dict[str, Any]]:
    return lmbridge.datasets.read_jsonl(datasets_dir() / name / f"{split}.jsonl")


def load_classification(name: str, split: str, n: int | None = None) -> list[lmbridge.Example]:
    """TREC / SST-2 rows as Examples with ``text`` as input and ``label`` as the label."""
    return lmbridge.datasets.load_classification(datasets_dir() / name, split, n)


def labels_of(name: str) -> list[str]:
    return sorted({r["label"] for r in load_jsonl(name, "train")})


def squad_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The command line of a SQuAD compile example: the model, the train, dev and corpus sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--train", type=int, default=9, help="train questions (the last third is the valset)")
    parser.add_argument("--n", type=int, default=8, help="dev questions scored before and after")
    parser.add_argument("--corpus", type=int, default=200, help="other paragraphs in the corpus")
    return parser.parse_args(argv)


def squad_examples(rows: list[dict[str, Any]], input_field: str = "question") -> list[lmbridge.Example]:
    """SQuAD rows as Examples: the question as ``input_field`` (the one input), the first gold
    answer as ``answer`` and every gold answer as ``answers``."""
    return [lmbridge.Example(**{input_field: q["question"]}, answer=q["answers"][0],
                             answers=q["answers"]).with_inputs(input_field) for q in rows]


def em_f1(examples: Sequence[lmbridge.Example], predictions: Sequence[lmbridge.Prediction]) -> tuple[float, float]:
    """Exact match and token F1 of the predicted ``answer`` against the gold answers, in percent."""
    em, f1 = lmbridge.metrics.exact_match("answer"), lmbridge.metrics.f1("answer")
    pairs = list(zip(examples, predictions, strict=True))
    return (100.0 * sum(em(e, p) for e, p in pairs) / len(pairs),
            100.0 * sum(f1(e, p) for e, p in pairs) / len(pairs))
