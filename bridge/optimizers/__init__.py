"""Optimizers: the compile step. Each returns a new program and never changes the one it is given.

See ``base.py`` for the contract (``compile``, ``estimate``, the report, the budget caps) and the
module of each optimizer for its algorithm.
"""

from bridge.optimizers.auto import auto_optimizer
from bridge.optimizers.base import CompileRun, Estimate, Optimizer
from bridge.optimizers.copro import COPRO
from bridge.optimizers.ensemble import Ensemble, EnsembledProgram, majority
from bridge.optimizers.fewshot import BootstrapFewShot, LabeledFewShot
from bridge.optimizers.gepa import GEPA
from bridge.optimizers.knn import HashingEmbedder, KNNFewShot, KNNProgram, LiteLLMEmbedder
from bridge.optimizers.mipro import MIPROv2
from bridge.optimizers.proposer import GroundedProposer
from bridge.optimizers.random_search import BootstrapFewShotWithRandomSearch
from bridge.optimizers.simba import SIMBA

__all__ = [
    "COPRO",
    "GEPA",
    "SIMBA",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CompileRun",
    "Ensemble",
    "EnsembledProgram",
    "Estimate",
    "GroundedProposer",
    "HashingEmbedder",
    "KNNFewShot",
    "KNNProgram",
    "LabeledFewShot",
    "LiteLLMEmbedder",
    "MIPROv2",
    "Optimizer",
    "auto_optimizer",
    "majority",
]
