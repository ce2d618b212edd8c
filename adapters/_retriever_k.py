"""The ``k`` of the retrievers inside a user's chain or query engine, as settings an optimizer searches.

``from_chain`` and ``from_query_engine`` learn in the user's prompts; when the chain or engine also
holds a retriever with a known top-k knob (a LangChain ``search_kwargs["k"]`` or ``k`` field, a
LlamaIndex ``similarity_top_k``), its ``k`` is a setting too: ``RetrieverK`` carries it with the
protocol ``lmbridge.RAG`` uses (``settings`` / ``setting_options`` / ``apply_settings``), so MIPROv2
searches it jointly with the prompts, and with ``own_state`` / ``check_own_state``, so it is saved in
the program's JSON (section ``"retriever_k"``) and checked on load. The module only holds the chosen
values; the program runs each call on copies of the user's retrievers carrying them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmbridge import ConfigurationError, Module, Prediction, StateError

DEFAULT_KS = (1, 3, 5)
"""The values of ``k`` searched besides the user's own (those the retriever can return)."""


@dataclass(frozen=True)
class Knob:
    """One retriever's top-k knob."""

    own: int
    """The ``k`` the user's retriever has."""
    size: int | None
    """How many passages the retriever can return at most; None when it does not say."""


class RetrieverK(Module):
    """The chosen ``k`` of each tunable retriever of a chain or engine, by retriever name.

    With one retriever the setting is named ``k``; with several, ``k[<name>]``. ``search`` lists the
    values an optimizer may try (default 1, 3, 5 within the retriever's size); the user's own value
    is always allowed and comes first. A ``k`` above what the retriever can return is refused.
    """

    state_section = "retriever_k"

    def __init__(self, knobs: Mapping[str, Knob], search: Sequence[int] | None = None) -> None:
        if not knobs:
            raise ValueError("RetrieverK needs at least one retriever")
        self._knobs = dict(knobs)
        self._names = {("k" if len(knobs) == 1 else f"k[{name}]"): name for name in knobs}
        self.chosen: dict[str, int] = {name: knob.own for name, knob in knobs.items()}
        """The k each retriever runs with, by retriever name (a new dict on each change)."""
        self._options: dict[str, list[int]] = {}
        for setting, name in self._names.items():
            knob = self._knobs[name]
            fits = [k for k in DEFAULT_KS if knob.size is None or k <= knob.size]
            values = list(search) if search is not None else fits
            for value in values:
                problem = self._problem(name, value)
                if problem is not None:
                    raise ValueError(f"search_k: {problem}")
            self._options[setting] = sorted(set(values) | {knob.own})

    def __repr__(self) -> str:
        return f"RetrieverK({self.settings()})"

    def changed(self) -> dict[str, int]:
        """The retrievers whose chosen ``k`` differs from the user's own: name -> k."""
        return {name: k for name, k in self.chosen.items() if k != self._knobs[name].own}

    # -- the settings protocol (lmbridge.RAG's) ------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {setting: self.chosen[name] for setting, name in self._names.items()}

    def setting_options(self) -> dict[str, list[Any]]:
        """The values an optimizer may try for each retriever's ``k``, the current value first."""
        now = self.settings()
        return {s: [now[s], *(v for v in values if v != now[s])]
                for s, values in self._options.items() if len(set(values) | {now[s]}) > 1}

    def apply_settings(self, values: Mapping[str, Any]) -> None:
        """Set some retrievers' ``k`` (all checked first: a bad value raises ValueError, nothing changes)."""
        problem = self._entry_problem(values)
        if problem is not None:
            raise ValueError(problem)
        self.chosen = {**self.chosen, **{self._names[s]: int(v) for s, v in values.items()}}

    def own_state(self) -> dict[str, Any]:
        return self.settings()

    def check_own_state(self, name: str, entry: Any) -> Callable[[], None]:
        if not isinstance(entry, dict):
            raise StateError(f"retriever settings {name!r}: expected an object like {self.settings()}, got {entry!r}")
        problem = self._entry_problem(entry)
        if problem is not None:
            raise StateError(f"retriever settings {name!r}: {problem}")
        return lambda: self.apply_settings(entry)

    def _entry_problem(self, values: Mapping[str, Any]) -> str | None:
        for setting, value in values.items():
            if setting not in self._names:
                return f"unknown setting {setting!r}: this program's retrievers have {sorted(self._names)}"
            problem = self._problem(self._names[setting], value)
            if problem is not None:
                return problem
        return None

    def _problem(self, name: str, k: Any) -> str | None:
        knob = self._knobs[name]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            return f"k of retriever {name!r} must be a positive integer, got {k!r}"
        if knob.size is not None and k > knob.size and k != knob.own:
            return f"k={k} is more than the {knob.size} passages retriever {name!r} can return"
        return None

    # -- a part of its program, never run on its own ------------------------------------------------
    def forward(self, **inputs: Any) -> Prediction:
        raise ConfigurationError("retriever settings apply inside their chain or engine: call the program")

    def __deepcopy__(self, memo: dict[int, Any]) -> RetrieverK:
        new = copy.copy(self)  # the knobs and options never change; the choice is per copy
        new.chosen = dict(self.chosen)
        return new


__all__ = ["DEFAULT_KS", "Knob", "RetrieverK"]
