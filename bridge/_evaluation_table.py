"""The table ``Evaluate(display_table=...)`` prints: one line per example with its inputs, its gold
labels, the program's outputs and the score (or the error that failed it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WIDTH = 40
"""The widest a cell is shown; longer values are cut with an ellipsis."""


def render_table(rows: Sequence[Any], limit: bool | int) -> str:
    """``rows`` (``EvaluationRow``s) as an aligned text table; ``limit`` is True for every row or the
    number of rows to show (DSPy's ``display_table`` takes the same)."""
    shown = list(rows) if limit is True else list(rows)[: max(0, int(limit))]
    if not shown:
        return ""
    inputs = _keys(r.example.inputs() for r in shown)
    golds = _keys(r.example.labels() for r in shown)
    outputs = _keys(r.prediction for r in shown if r.prediction is not None)
    header = [*inputs, *(f"gold {k}" for k in golds), *(f"predicted {k}" for k in outputs), "score"]
    lines = [[_cell(r.example.get(k)) for k in (*inputs, *golds)]
             + [_cell(r.prediction.get(k) if r.prediction is not None else None) for k in outputs]
             + [f"failed: {_cell(r.error)}" if r.error else f"{r.score:g}"] for r in shown]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = [_row(header, widths), "  ".join("-" * w for w in widths)]
    out += [_row(line, widths) for line in lines]
    if len(shown) < len(rows):
        out.append(f"... {len(rows) - len(shown)} more rows")
    return "\n".join(out)


def _keys(items: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.update((k, None) for k in item)
    return list(seen)


def _cell(value: Any) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


__all__ = ["WIDTH", "render_table"]
