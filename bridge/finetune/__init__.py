"""Compiling to weights: the trainer protocol, chat training examples, and the trainers (a LoRA
adapter for the embedded models on CPU; a provider's fine-tuning API)."""

from lmbridge.errors import FineTuningError
from lmbridge.finetune._data import check_chat, export_examples, read_jsonl, training_example, write_jsonl
from lmbridge.finetune._local_train import LocalLoRA
from lmbridge.finetune._protocol import TrainingCheckpoint, TrainingExample, TrainingProgress, WeightTrainer
from lmbridge.finetune._provider import ProviderFinetune

__all__ = [
    "FineTuningError",
    "LocalLoRA",
    "ProviderFinetune",
    "TrainingCheckpoint",
    "TrainingExample",
    "TrainingProgress",
    "WeightTrainer",
    "check_chat",
    "export_examples",
    "read_jsonl",
    "training_example",
    "write_jsonl",
]
