"""``LocalLoRA``: the weight trainer for the embedded models. It trains a LoRA adapter on the CPU and
returns ``LM(model, adapter=path)``, which runs through the same llama.cpp runtime as the base model
(constrained decoding, label scoring, streaming and the cache keep working).

A run goes: check (the ``finetune`` extra is installed, the LM is an embedded ``local/...`` model,
the examples are chats ending with an assistant turn, the disk has room); look the run up in the
weights store (``_weights_store``), keyed by the base model file's hash, the examples, the settings
and the seed, so a repeated or resumed run reuses a finished adapter; render each example exactly as
the runtime will send it (``LocalModel.training_tokens``); train (``_local_torch``); write the llama.cpp
adapter (``_local_gguf``) into the store.

Progress goes to ``on_progress``: ``status="loading"`` while the base model loads, then after the
first step one ``status="estimate"`` report whose ``seconds_left`` is the time the remaining steps
will take at that step's pace, then ``status="training"`` after every step with its loss.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lmbridge.errors import ConfigurationError, MissingDependencyError
from lmbridge.finetune import _weights_store as store
from lmbridge.finetune._local_gguf import GGUF_NAMES, adapter_tensors, write_adapter
from lmbridge.finetune._protocol import TrainingCheckpoint, TrainingExample, TrainingProgress
from lmbridge.lm import LM, BaseLM, LocalModel, file_sha256

REQUIRED = ("torch", "transformers", "peft", "gguf", "accelerate")
"""The ``finetune`` extra: what training imports."""
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
STORE_VERSION = 1
"""Part of every run key: a change to how adapters are trained or written bumps it."""


@dataclass(frozen=True, kw_only=True)
class LocalLoRA:
    """Trains a LoRA adapter for an embedded model (``LM("local/smollm2")``, ``LM("local/gemma3")``)
    on the CPU, with the loss on each example's last assistant turn.

    ``steps`` fixes the number of optimizer steps; when None, ``epochs`` passes over the examples
    decide it. ``rank``, ``alpha`` (the adapter scale is alpha / rank), ``learning_rate`` (AdamW,
    constant), ``batch_size`` and ``target_modules`` (transformers names of the projections in each
    layer) are LoRA's usual settings. An example longer than ``max_length`` tokens is refused.

    Errors: ``MissingDependencyError`` (install ``lmbridge[finetune]``) and ``ConfigurationError``
    (not an embedded model, bad examples, a full disk) before any training, or a full disk while the
    adapter is written (nothing half-written is left in the store).
    """

    steps: int | None = None
    epochs: float = 3.0
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 1024
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    name: str = field(default="local-lora", init=False)

    def __post_init__(self) -> None:
        known = {name.split(".")[-1] for name in GGUF_NAMES}
        unknown = sorted(set(self.target_modules) - known)
        if unknown or not self.target_modules:
            raise ConfigurationError(f"LocalLoRA(target_modules=...): {unknown or 'none given'}; "
                                     f"choose among {sorted(known)}")
        for setting, value in (("rank", self.rank), ("alpha", self.alpha), ("batch_size", self.batch_size),
                             ("max_length", self.max_length), ("steps", self.steps or 1)):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"LocalLoRA({setting}={value!r}): must be a positive integer")
        if not self.epochs > 0 or not self.learning_rate > 0:
            raise ConfigurationError("LocalLoRA: epochs and learning_rate must be positive")

    def check(self, lm: BaseLM) -> None:
        """Raise before any work when this trainer cannot train ``lm``."""
        missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
        if missing:
            raise MissingDependencyError(", ".join(missing), "finetune")
        if not isinstance(lm, LM) or not lm.is_local:
            raise ConfigurationError(f"LocalLoRA trains the embedded models only (LM('local/smollm2'), "
                                     f"LM('local/gemma3')), not {lm!r}; for a provider's model use its trainer")
        if lm.adapter is not None:
            raise ConfigurationError(f"{lm!r} already runs with an adapter; train from the base model "
                                     f"LM({lm.model!r}), with all the examples")

    def train(self, lm: BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> BaseLM:
        """Train an adapter on ``examples`` and return ``LM(lm.model, adapter=path)``; ``lm`` is unchanged."""
        self.check(lm)
        assert isinstance(lm, LM)  # check() refuses anything else
        _check_examples(examples)
        local = LocalModel.for_name(lm.model.removeprefix("local/"))
        key = self.run_key(local.path, examples, seed)
        found = _resumed(checkpoint, key) or store.finished_run(key)
        if found is None:
            store.check_free_space(max(64 << 20, local.path.stat().st_size // 4))
            tokens = [local.training_tokens(list(example)) for example in examples]
            for i, (prompt, target) in enumerate(tokens):
                if len(prompt) + len(target) > self.max_length:
                    raise ConfigurationError(f"training example {i} is {len(prompt) + len(target)} tokens long, "
                                             f"over max_length={self.max_length}; raise max_length or shorten it")
            found = self._train(local.path, tokens, seed, on_progress or (lambda progress: None))
            store.record_run(key, file_sha256(found))
        if checkpoint is not None:
            checkpoint.save({"trainer": self.name, "run": key, "sha256": found.parent.name})
        return LM(lm.model, adapter=found, num_retries=lm.num_retries, **lm.params)

    def total_steps(self, count: int) -> int:
        """The optimizer steps a run on ``count`` examples takes."""
        return self.steps if self.steps is not None else max(1, math.ceil(self.epochs * count / self.batch_size))

    def run_key(self, base: Path, examples: Sequence[TrainingExample], seed: int) -> str:
        """What names a training run in the store: the base file's hash, the examples, the settings, the seed."""
        blob = json.dumps({"version": STORE_VERSION, "base": file_sha256(base), "seed": seed,
                           "settings": asdict(self), "examples": [list(e) for e in examples]},
                          sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _train(self, base: Path, tokens: list[tuple[list[int], list[int]]], seed: int,
               report: Callable[[TrainingProgress], None]) -> Path:
        from lmbridge.finetune import _local_torch  # imports torch: only once check() found it

        total = self.total_steps(len(tokens))
        report(TrainingProgress(0, total, status="loading"))

        def on_step(step: int, loss: float, seconds: float) -> None:
            if step == 1:
                report(TrainingProgress(1, total, loss, status="estimate", seconds_left=seconds * (total - 1)))
            report(TrainingProgress(step, total, loss))

        threads = int(os.environ.get("LMBRIDGE_LOCAL_THREADS", "0")) or os.cpu_count() or 1
        config = _local_torch.LoopConfig(total, self.rank, self.alpha, self.learning_rate, self.batch_size,
                                         tuple(self.target_modules), threads)
        try:
            trained = _local_torch.train(base, tokens, config, seed, on_step)
        except (ValueError, KeyError, NotImplementedError, struct.error) as exc:  # transformers or peft cannot take it
            raise ConfigurationError(f"cannot train a LoRA adapter for {base.name}: {type(exc).__name__}: {exc}. "
                                     "LocalLoRA knows the embedded models (local/smollm2, local/gemma3) and GGUF "
                                     "files of the architectures transformers reads") from exc
        tensors = adapter_tensors(trained.pairs, trained.arch, trained.heads, trained.kv_heads)
        return store.put(lambda path: write_adapter(path, tensors, trained.arch, self.alpha))


def _resumed(checkpoint: TrainingCheckpoint | None, key: str) -> Path | None:
    """The adapter a checkpoint says this same run finished, when it is still in the store."""
    state = checkpoint.load() if checkpoint is not None else None
    if not isinstance(state, dict) or state.get("run") != key or not isinstance(state.get("sha256"), str):
        return None
    return store.lookup(state["sha256"])


def _check_examples(examples: Sequence[TrainingExample]) -> None:
    if not examples:
        raise ConfigurationError("LocalLoRA.train got no training examples")
    for i, example in enumerate(examples):
        if not example or any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in example):
            raise ConfigurationError(f"training example {i} must be a list of messages with text content")
        if len(example) < 2 or example[-1].get("role") != "assistant" or not example[-1]["content"]:
            raise ConfigurationError(f"training example {i} must end with a non-empty assistant turn after "
                                     "at least one other turn (the answer the model learns to write)")
