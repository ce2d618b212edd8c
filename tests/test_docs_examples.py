"""The README tour and the quickstart page run, as written, on the embedded model: docs that rot fail here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.real_model
@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_page_code_runs_in_order(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no python examples"
    from examples.data import datasets_dir

    monkeypatch.setenv("LMBRIDGE_DATASETS", str(datasets_dir()))  # the tour's one path to point at
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, f"{page}:example", "exec", dont_inherit=True), namespace)
    assert any(p.suffix == ".json" for p in tmp_path.iterdir()), "the example should have saved a program"
