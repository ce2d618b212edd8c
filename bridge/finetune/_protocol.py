"""What a weight trainer is: chat examples in, a fine-tuned LM out.

``BootstrapFinetune`` turns the passing traces of each predictor into chat examples in that
predictor's own prompt format (system and user turns as the predictor rendered them, the assistant
turn as the model answered). A trainer turns those examples into a new LM: the embedded model with
a LoRA adapter trained on CPU, or a provider's fine-tuned model. The loss is on the last assistant
turn only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from lmbridge.lm import BaseLM
from lmbridge.types import Message

TrainingExample = Sequence[Message]
"""One chat: the turns a predictor sent, ending with the assistant turn it should learn to write."""


@dataclass(frozen=True)
class TrainingProgress:
    """One report from a running trainer: ``step`` of ``total`` done, the loss when known, and what
    the trainer is doing (``"training"``, ``"uploading"``, ``"queued"``, ...). A trainer that can
    tell how long the rest will take reports it in ``seconds_left`` (``status="estimate"``)."""

    step: int
    total: int
    loss: float | None = None
    status: str = "training"
    seconds_left: float | None = None


@runtime_checkable
class TrainingCheckpoint(Protocol):
    """Where a trainer keeps what it must not lose when the compile is killed (a provider job id)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class WeightTrainer(Protocol):
    """Turns chat examples into a fine-tuned LM based on ``lm``.

    ``check`` raises a clear error (``MissingDependencyError`` with its pip hint, ``ConfigurationError``)
    before any work when this trainer cannot train ``lm``. ``train`` is deterministic for a ``seed``
    where the backend allows it, and never changes ``lm``."""

    name: str

    def check(self, lm: BaseLM) -> None: ...

    def train(self, lm: BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> BaseLM: ...
