"""The training loop of ``LocalLoRA``: LoRA (peft) on an embedded model that transformers loads from
its packaged GGUF file (dequantized to float32), on the CPU.

Every example is a pair of token lists, the prompt and the target, already rendered by the runtime
(``LocalModel.training_tokens``); the loss is on the target tokens only. A run is reproducible: the
seed fixes the adapter's initial values (``torch.manual_seed``) and the order of the examples
(``random.Random(seed)``, one shuffle per pass over the data), there is no dropout, and the learning
rate is constant. Everything here imports torch, transformers and peft, so nothing imports this
module before ``LocalLoRA.check`` has found them.
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Tokens = tuple[list[int], list[int]]
"""One rendered example: the prompt's token ids and the target's."""
IGNORED = -100
"""The label transformers leaves out of the loss."""


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs from ``LocalLoRA``'s settings."""

    steps: int
    rank: int
    alpha: int
    learning_rate: float
    batch_size: int
    target_modules: tuple[str, ...]
    threads: int


@dataclass(frozen=True)
class Trained:
    """A finished run: the ``(A, B)`` float32 arrays by module path, and the base model's shape."""

    pairs: dict[str, tuple[Any, Any]]
    arch: str
    heads: int
    kv_heads: int
    final_loss: float


@contextmanager
def _torch_threads(threads: int) -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _quiet_loading() -> Any:
    """No progress bars or notes while transformers loads the base model, unless verbose: its GGUF
    reader draws a tqdm bar of its own on stderr, which no transformers setting turns off."""
    if os.environ.get("LMBRIDGE_LOCAL_VERBOSE", "") not in ("", "0"):
        yield
        return
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity(40)  # logging.ERROR
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.set_verbosity(before)


def architecture(path: Path) -> str:
    """The GGUF file's ``general.architecture`` (the adapter must name the same one)."""
    import gguf

    field = gguf.GGUFReader(str(path)).fields["general.architecture"]
    return str(bytes(field.parts[field.data[0]]), "utf-8")


def load_base(path: Path) -> Any:
    """The base model, loaded by transformers from the GGUF file (weights dequantized to float32)."""
    import torch
    from transformers import AutoModelForCausalLM

    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.config.use_cache = False
    return model


def order(count: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """The examples of each step: passes over the data, each in an order drawn from ``seed``."""
    rng = random.Random(seed)
    stream: list[int] = []
    while len(stream) < steps * batch_size:
        indices = list(range(count))
        rng.shuffle(indices)
        stream += indices
    return [stream[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def batch_tensors(examples: Sequence[Tokens]) -> dict[str, Any]:
    """Right-padded input ids, attention mask and labels (the prompt and padding left out of the loss)."""
    import torch

    width = max(len(p) + len(t) for p, t in examples)
    ids, mask, labels = [], [], []
    for prompt, target in examples:
        pad = width - len(prompt) - len(target)
        ids.append(prompt + target + [0] * pad)
        mask.append([1] * (len(prompt) + len(target)) + [0] * pad)
        labels.append([IGNORED] * len(prompt) + target + [IGNORED] * pad)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def train(path: Path, examples: Sequence[Tokens], config: LoopConfig, seed: int,
          on_step: Callable[[int, float, float], None]) -> Trained:
    """Train a LoRA on ``examples`` for ``config.steps`` steps. ``on_step(step, loss, seconds)`` is
    called after each step with the seconds it took."""
    import torch
    from peft import LoraConfig, get_peft_model

    with _torch_threads(config.threads):
        torch.manual_seed(seed)
        base = load_base(path)
        model = get_peft_model(base, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0,
                                                target_modules=list(config.target_modules), bias="none"))
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=config.learning_rate, weight_decay=0.0)
        loss_value = math.nan
        for step, picked in enumerate(order(len(examples), config.steps, config.batch_size, seed), start=1):
            started = time.monotonic()
            loss = model(**batch_tensors([examples[i] for i in picked])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(loss.detach())
            on_step(step, loss_value, time.monotonic() - started)
    return Trained(lora_pairs(model), architecture(path), int(base.config.num_attention_heads),
                   int(base.config.num_key_value_heads), loss_value)


def lora_pairs(model: Any) -> dict[str, tuple[Any, Any]]:
    """The ``(A, B)`` float32 arrays of every LoRA layer of a peft model, by module path."""
    import numpy as np

    return {name: (np.ascontiguousarray(m.lora_A["default"].weight.detach().numpy(), dtype=np.float32),
                   np.ascontiguousarray(m.lora_B["default"].weight.detach().numpy(), dtype=np.float32))
            for name, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
