"""Two plain functions that the ReAct tests hand to agents as tools."""

from __future__ import annotations


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def lookup(key: str) -> str:
    """Look up a key."""
    table = {"capital of france": "Paris"}
    if key not in table:
        raise LookupError(f"no entry for {key!r}")
    return table[key]
