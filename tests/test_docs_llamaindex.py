"""docs/llamaindex.md runs as written: its python blocks, in order, on ScriptedLM and a hashing
embedder (no model), with the printed values the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

PAGE = Path(__file__).resolve().parent.parent / "docs" / "llamaindex.md"


def test_the_llamaindex_page_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 8
    monkeypatch.syspath_prepend(str(PAGE.parent.parent))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, f"{PAGE.name}:example", "exec", dont_inherit=True), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0] == "3" and printed[1].startswith("p")
    assert "Levi's Stadium" in printed and "0.9" in printed
    assert "{'title': 'Max Words', 'type': 'integer'}" in printed
    assert "{'answer': 4}" in printed and "42" in printed
    assert "context_str: list[str], query_str: str -> answer: str" in printed
