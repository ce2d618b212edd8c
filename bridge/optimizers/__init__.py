"""Optimizers: the compile step. Each returns a new program and never changes the one it is given.

See ``base.py`` for the contract (``compile``, ``estimate``, the report, the budget caps) and the
module of each optimizer for its algorithm.
"""

from lmbridge.optimizers.auto import auto_optimizer
from lmbridge.optimizers.base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers.copro import COPRO
from lmbridge.optimizers.ensemble import Ensemble, EnsembledProgram, majority
from lmbridge.optimizers.fewshot import BootstrapFewShot, LabeledFewShot
from lmbridge.optimizers.gepa import GEPA
from lmbridge.optimizers.knn import HashingEmbedder, KNNFewShot, KNNProgram, LiteLLMEmbedder
from lmbridge.optimizers.mipro import MIPROv2
from lmbridge.optimizers.proposer import GroundedProposer
from lmbridge.optimizers.random_search import BootstrapFewShotWithRandomSearch
from lmbridge.optimizers.simba import SIMBA

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
