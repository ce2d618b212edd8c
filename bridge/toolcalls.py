"""Native tool calls: what a model returns when a request offers it tools (OpenAI's ``tools=``).

A ``ToolCall`` keeps the arguments twice: ``raw``, the text the model wrote, and ``args``, that text
read as JSON. Arguments that are not valid JSON do not raise here: ``args`` is then None and
``error`` says what is wrong, so that an agent can show the problem to the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool by the model.

    ``ToolCall("add", {"a": 1})`` builds one by hand (``raw`` is then the JSON of ``args``);
    ``ToolCall.parse("add", '{"a": 1}')`` reads one from the model's text.
    """

    name: str
    args: Any = field(default_factory=dict)
    """The arguments read as JSON (usually a dict); None when ``raw`` is not valid JSON."""
    raw: str = ""
    """The arguments exactly as the model wrote them."""
    id: str | None = None
    """The provider's id of the call, when it gives one."""
    error: str | None = None
    """Why ``raw`` could not be read as JSON; None when it could."""

    def __post_init__(self) -> None:
        if not self.raw and self.error is None:
            object.__setattr__(self, "raw", json.dumps(self.args, ensure_ascii=False, default=str))

    @classmethod
    def parse(cls, name: str, raw: Any, id: str | None = None) -> ToolCall:
        """A call whose arguments arrive as text (a dict is taken as already read)."""
        if isinstance(raw, Mapping):
            return cls(name, dict(raw), json.dumps(raw, ensure_ascii=False, default=str), id)
        text = "" if raw is None else str(raw)
        if not text.strip():
            return cls(name, {}, text or "{}", id)  # a call without arguments
        try:
            return cls(name, json.loads(text), text, id)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
            return cls(name, None, text, id, f"the arguments are not valid JSON ({exc})")

    def to_record(self) -> dict[str, Any]:
        """The call as plain JSON data (for the cache): name, raw arguments and id."""
        return {"name": self.name, "raw": self.raw, "id": self.id}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ToolCall:
        return cls.parse(str(record["name"]), record.get("raw", ""), record.get("id"))


def read_tool_calls(calls: Iterable[Any] | None) -> tuple[ToolCall, ...]:
    """The tool calls of an OpenAI-shaped message, given as objects (LiteLLM) or dicts (llama.cpp)."""
    if not calls:
        return ()
    found = []
    for call in calls:
        function = _get(call, "function")
        name = _get(function, "name") if function is not None else None
        if not name:
            continue
        found.append(ToolCall.parse(str(name), _get(function, "arguments"), _get(call, "id")))
    return tuple(found)


def _get(holder: Any, name: str) -> Any:
    if isinstance(holder, Mapping):
        return holder.get(name)
    return getattr(holder, name, None)


__all__ = ["ToolCall", "read_tool_calls"]
