"""Optimizers: the compile step. Each returns a new program and never changes the one it is given."""

from bridge.optimizers.base import CompileRun, Estimate, Optimizer
from bridge.optimizers.fewshot import BootstrapFewShot, LabeledFewShot
from bridge.optimizers.mipro import MIPROv2
from bridge.optimizers.random_search import BootstrapFewShotWithRandomSearch

__all__ = [
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CompileRun",
    "Estimate",
    "LabeledFewShot",
    "MIPROv2",
    "Optimizer",
]
