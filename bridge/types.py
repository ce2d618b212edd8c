"""Small value types that flow through every layer: Example, Prediction, Usage, Passage, Message."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict


class Message(TypedDict):
    """One chat message, in the OpenAI shape that LiteLLM and llama.cpp both take."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str


@dataclass(slots=True)
class Usage:
    """What one or more LM calls cost. ``+`` adds two usages; ``Usage()`` is zero."""

    calls: int = 0
    """Completions requested from the model (network or local), retries and re-asks included."""
    cache_hits: int = 0
    """Completions served from the cache instead of the model."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    """US dollars, where the provider's prices are known; None when no price is known."""
    retries: int = 0
    """Transport retries after a rate limit, a server error or a timeout."""
    parse_retries: int = 0
    """Re-asks after a completion that did not parse."""

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.calls + other.calls,
            self.cache_hits + other.cache_hits,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.retries + other.retries,
            self.parse_retries + other.parse_retries,
        )

    def add(self, other: Usage) -> None:
        """Add ``other`` into this usage in place (for accumulators)."""
        total = self + other
        for f in fields(self):
            setattr(self, f.name, getattr(total, f.name))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved piece of text. ``score`` is the retriever's own relevance score."""

    text: str
    score: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Example(Mapping[str, Any]):
    """A row of data: named values, with some of them marked as the inputs.

    ``Example(question="...", answer="...").with_inputs("question")`` marks ``question`` as the
    input; ``inputs()`` and ``labels()`` split the row. Values are read as attributes or keys.
    """

    __slots__ = ("_input_keys", "_store")

    def __init__(self, base: Mapping[str, Any] | None = None, /, **values: Any) -> None:
        store: dict[str, Any] = dict(base) if base is not None else {}
        store.update(values)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_input_keys", None)

    # -- mapping access ---------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        store = object.__getattribute__(self, "_store")
        try:
            return store[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._store[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._store.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._store.items())
        marked = f", inputs={list(self._input_keys)}" if self._input_keys is not None else ""
        return f"{type(self).__name__}({inner}{marked})"

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def __copy__(self) -> Example:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Example:
        new = self.copy()
        object.__setattr__(new, "_store", copy.deepcopy(self._store, memo))
        return new

    def to_dict(self) -> dict[str, Any]:
        return dict(self._store)

    # -- inputs and labels ------------------------------------------------------------------------
    def with_inputs(self, *keys: str) -> Example:
        """Return a copy with ``keys`` marked as the inputs."""
        missing = [k for k in keys if k not in self._store]
        if missing:
            raise KeyError(f"with_inputs names fields this example lacks: {missing}")
        copy = self.copy()
        object.__setattr__(copy, "_input_keys", tuple(keys))
        return copy

    @property
    def input_keys(self) -> tuple[str, ...] | None:
        keys: tuple[str, ...] | None = self._input_keys
        return keys

    def inputs(self) -> Example:
        """The input fields alone. Raises if ``with_inputs`` was never called."""
        if self._input_keys is None:
            raise ValueError("inputs() needs the input fields marked first: call .with_inputs('field', ...)")
        return Example({k: self._store[k] for k in self._input_keys})

    def labels(self) -> Example:
        """Every field that is not an input."""
        keys = self._input_keys or ()
        return Example({k: v for k, v in self._store.items() if k not in keys})

    def copy(self, **changes: Any) -> Example:
        new = type(self)(self._store, **changes)
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def without(self, *keys: str) -> Example:
        new = type(self)({k: v for k, v in self._store.items() if k not in keys})
        if self._input_keys is not None:
            object.__setattr__(new, "_input_keys", tuple(k for k in self._input_keys if k not in keys))
        return new


class Prediction(Example):
    """The output of a module: its output fields, plus what producing them cost.

    ``usage`` is the LM usage of this call (all predictors inside it); ``completion`` is the raw
    text of the last completion when a single Predict produced it.
    """

    __slots__ = ("completion", "usage")

    def __init__(self, base: Mapping[str, Any] | None = None, /, **values: Any) -> None:
        super().__init__(base, **values)
        object.__setattr__(self, "usage", Usage())
        object.__setattr__(self, "completion", None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("usage", "completion"):
            object.__setattr__(self, name, value)
        else:
            self._store[name] = value

    @classmethod
    def from_values(cls, values: Mapping[str, Any], usage: Usage, completion: str | None = None) -> Prediction:
        pred = cls(values)
        object.__setattr__(pred, "usage", usage)
        object.__setattr__(pred, "completion", completion)
        return pred

    def copy(self, **changes: Any) -> Prediction:
        new = Prediction.from_values({**self._store, **changes}, self.usage, self.completion)
        return new
