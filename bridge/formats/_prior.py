"""``Prior``: a calibrated format's estimate of the model's label bias, kept as plain data.

A format with ``scoring="calibrated"`` divides each option's probability by the model's prior over
the options (see ``lmbridge.labels``). ``lmbridge.calibrate`` (and an optimizer compiling such a
predictor) estimates that prior once from unlabeled inputs and stores it on the predictor's format,
so it is saved with the program as JSON numbers and costs no call at inference. ``prompt`` names the
prompt it was estimated for (model, instructions, demos, layout): a prior whose prompt differs from
the one being scored is not applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prior:
    """The mean probability of each option over ``inputs`` real inputs, for one prompt."""

    probabilities: Mapping[str, float]
    """Option (as written in the prompt) -> mean probability; the values sum to 1."""
    inputs: int
    """How many inputs the mean was taken over."""
    prompt: str
    """The fingerprint of the prompt it was estimated for (``lmbridge.labels.prompt_fingerprint``)."""

    def __post_init__(self) -> None:
        probabilities = self.probabilities
        if not isinstance(probabilities, Mapping) or len(probabilities) < 2:
            raise ValueError("a prior needs a probability for each of at least two options")
        for option, p in probabilities.items():
            if not isinstance(option, str):
                raise ValueError(f"a prior's options are strings, not {type(option).__name__}")
            # The range first: a huge int compares without overflow (math.isfinite would raise).
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1 or not math.isfinite(p):
                raise ValueError(f"the prior of option {option!r} must be a number in (0, 1], not {p!r}")
        if abs(sum(probabilities.values()) - 1.0) > 1e-6:
            raise ValueError(f"a prior's probabilities must sum to 1, not {sum(probabilities.values())!r}")
        if isinstance(self.inputs, bool) or not isinstance(self.inputs, int) or self.inputs < 1:
            raise ValueError(f"a prior's 'inputs' must be a count of at least 1, not {self.inputs!r}")
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError("a prior needs the fingerprint of its prompt ('prompt')")
        object.__setattr__(self, "probabilities", {o: float(p) for o, p in probabilities.items()})

    def to_state(self) -> dict[str, Any]:
        return {"probabilities": dict(self.probabilities), "inputs": self.inputs, "prompt": self.prompt}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | Prior) -> Prior:
        """Rebuild a prior from ``to_state()`` output; a wrong shape is a ValueError naming the problem."""
        if isinstance(state, Prior):
            return state
        if not isinstance(state, Mapping):
            raise ValueError(f"a prior must be an object, not {type(state).__name__}")
        unknown = sorted(set(state) - {"probabilities", "inputs", "prompt"})
        if unknown:
            raise ValueError(f"a prior has unknown key(s) {unknown}")
        missing = [k for k in ("probabilities", "inputs", "prompt") if k not in state]
        if missing:
            raise ValueError(f"a prior lacks {missing}")
        return cls(state["probabilities"], state["inputs"], state["prompt"])
