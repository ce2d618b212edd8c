"""Optimizers: the compile step. Each returns a new program and never changes the one it is given.

See ``base.py`` for the contract (``compile``, ``estimate``, the report, the budget caps) and the
module of each optimizer for its algorithm.
"""

from lmbridge.optimizers._auto import auto_optimizer
from lmbridge.optimizers._base import CompileRun, Estimate, Optimizer
from lmbridge.optimizers._better_together import BetterTogether
from lmbridge.optimizers._copro import COPRO
from lmbridge.optimizers._ensemble import Ensemble, EnsembledProgram, majority
from lmbridge.optimizers._fewshot import BootstrapFewShot, LabeledFewShot
from lmbridge.optimizers._finetune import BootstrapFinetune
from lmbridge.optimizers._gepa import GEPA
from lmbridge.optimizers._knn import HashingEmbedder, KNNFewShot, KNNProgram, LiteLLMEmbedder
from lmbridge.optimizers._mipro import MIPROv2
from lmbridge.optimizers._random_search import BootstrapFewShotWithRandomSearch
from lmbridge.optimizers._simba import SIMBA
from lmbridge.optimizers._support.proposer import GroundedProposer
from lmbridge.optimizers._support.search_space import default_formats
from lmbridge.optimizers._support.selection import stratified_sample

__all__ = [
    "COPRO",
    "GEPA",
    "SIMBA",
    "BetterTogether",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BootstrapFinetune",
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
    "default_formats",
    "majority",
    "stratified_sample",
]
