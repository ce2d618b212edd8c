"""Examples from JSONL files: one JSON object per line, the form the ``lmbridge`` command reads and
the real datasets in ``shared/datasets`` use. Shipped in the package, so a ``pip install lmbridge``
user only points at a folder or a file.

    testset = lmbridge.datasets.load_classification("shared/datasets/sst2", "test", n=20)
    rows = lmbridge.datasets.load_examples("qa.jsonl", inputs=["question"])
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lmbridge.types import Example


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects in a JSONL file, in order; blank lines are skipped. A line that is not a JSON
    object is a ``ValueError`` naming the file and the line: nothing is skipped silently."""
    return [row for _, row in _objects(path)]


def load_examples(path: str | Path, inputs: Sequence[str], n: int | None = None) -> list[Example]:
    """The first ``n`` rows (all by default) of a JSONL file as Examples, with ``inputs`` marked as
    the input fields; every other key is a label. A row without an input field is a ``ValueError``
    naming the line."""
    examples = []
    for number, row in itertools.islice(_objects(path), n):
        missing = [name for name in inputs if name not in row]
        if missing:
            raise ValueError(f"{path}:{number}: the row lacks the input field(s) {missing}")
        examples.append(Example(row).with_inputs(*inputs))
    return examples


def _objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each object of a JSONL file with its line number (from 1), read one line at a time."""
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc}); a JSONL file holds one JSON object "
                                 "per line") from exc
            if not isinstance(row, dict):
                kind = _JSON_KINDS.get(type(row), type(row).__name__)
                raise ValueError(f"{path}:{number}: a JSON object is needed, not {kind}")
            yield number, row


_JSON_KINDS: dict[type, str] = {list: "a list", str: "a string", int: "a number", float: "a number",
                                bool: "true or false", type(None): "null"}


def load_classification(folder: str | Path, split: str, n: int | None = None) -> list[Example]:
    """``<folder>/<split>.jsonl`` (rows with ``text`` and ``label``, as TREC and SST-2 in
    ``shared/datasets``) as Examples with ``text`` as the input."""
    return [Example(text=e.text, label=e.label).with_inputs("text")
            for e in load_examples(Path(folder) / f"{split}.jsonl", ["text"], n)]
