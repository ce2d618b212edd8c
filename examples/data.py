"""Loading the real datasets in ../shared/datasets (or $LMBRIDGE_DATASETS) as bridge Examples."""

from __future__ import annotations

import os
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
