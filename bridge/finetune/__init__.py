"""Compiling to weights: the trainer protocol, chat training examples, and the trainers (a LoRA
adapter for the embedded models on CPU; a provider's fine-tuning API)."""

from lmbridge.finetune._local_train import LocalLoRA
from lmbridge.finetune._protocol import TrainingCheckpoint, TrainingExample, TrainingProgress, WeightTrainer

__all__ = ["LocalLoRA", "TrainingCheckpoint", "TrainingExample", "TrainingProgress", "WeightTrainer"]
