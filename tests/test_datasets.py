"""lmbridge.datasets: JSONL rows in, Examples out, and a clear error naming the line for bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

import lmbridge
from examples.data import datasets_dir


def test_the_real_sst2_split_loads_as_text_to_label_examples() -> None:
    rows = lmbridge.datasets.load_classification(datasets_dir() / "sst2", "dev", n=5)
    assert len(rows) == 5
    assert all(set(r.inputs().keys()) == {"text"} and r.label in ("negative", "positive") for r in rows)


def test_a_bad_line_is_an_error_that_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "a?", "answer": "b"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:2: a JSON object is needed, not a list"):
        lmbridge.datasets.read_jsonl(path)
    path.write_text('{"question": "a?", "answer": "b"}\n{"answer": "c"}\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:2: the row lacks the input field\(s\) \['question'\]"):
        lmbridge.datasets.load_examples(path, ["question"])


def test_lines_are_counted_as_in_the_file_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "a?", "answer": "b"}\n\n   \n{"question": "c?"\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:4: not JSON \(.*\); a JSONL file holds one JSON object"):
        lmbridge.datasets.read_jsonl(path)
    path.write_text('{"question": "a?", "answer": "b"}\n\n{"question": "c?", "answer": "d"}\n')
    assert [r.answer for r in lmbridge.datasets.load_examples(path, ["question"])] == ["b", "d"]
    assert [r.answer for r in lmbridge.datasets.load_examples(path, ["question"], n=1)] == ["b"]
