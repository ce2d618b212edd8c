"""docs/reliability.md names the test that holds each guarantee; this checks that every test it names
exists, so the list cannot point at a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def named_tests(text: str) -> list[tuple[str, str | None]]:
    """(file, test) pairs the doc names; ``::name`` after a file refers to that file."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        current = ""
        for m in _REFERENCE.finditer(line):
            if m.group(1):
                current = m.group(1)
            if current and (m.group(1) or m.group(2)):
                found.append((current, m.group(2)))
    return found


def test_every_test_the_reliability_page_names_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = named_tests(text)
    assert len([t for _, t in named if t]) >= 15  # the guarantees table is there and read
    for path, test in named:
        if "*" in path:
            continue
        source = (ROOT / path).read_text(encoding="utf-8")
        if test:
            assert re.search(rf"^(?:async )?def {test}\(", source, re.M), f"{path}::{test} is named but missing"


def test_the_checker_catches_a_missing_name() -> None:
    assert named_tests("`tests/test_values.py::test_x`, `::test_y`") == [
        ("tests/test_values.py", "test_x"), ("tests/test_values.py", "test_y")]
