"""Every python example on the docs/optimizers pages runs as written, with the embedded model
swapped for a scripted one (the real-model runs are the benchmark's job): the pages cannot rot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p for p in (ROOT / "docs" / "optimizers").glob("*.md")
               if p.name != "index.md")  # the overview page shows fragments, not whole examples


def any_task(messages: list[Any]) -> str:
    """Answers a label question with its first option, anything else with an instruction."""
    found = re.search(r"Answer with exactly one of: ([^.\n]+)\.", str(messages[0]["content"]))
    if found:
        return found.group(1).split(", ")[0]
    return "Read the input carefully and answer with the label only."


@pytest.mark.parametrize("page", [p for p in PAGES if "```python" in p.read_text()], ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(lmbridge, "LM", lambda *args, **kwargs: ScriptedLM(any_task))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        exec(compile(block, f"{page.name}:example", "exec", dont_inherit=True), namespace)
