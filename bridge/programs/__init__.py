"""Programs: ``Module``, the one learnable unit ``Predict`` and the modules built on it, streaming of programs,
persistence, control modules, labels and calibration.
"""

from lmbridge.programs._calibration import calibrate, with_priors
from lmbridge.programs._control import BestOfN, Parallel, Refine
from lmbridge.programs._labels import LabelScores, calibrating, label_options, score_labels
from lmbridge.programs._module import Module
from lmbridge.programs._persistence import apply_state, check_state, program_state, read_state
from lmbridge.programs._predict import DEFAULT_FORMAT, ChainOfThought, Predict
from lmbridge.programs._streaming import FieldDelta, FieldValue, ParseRetry, StreamEnd, StreamEvent, streamify

__all__ = [
    "DEFAULT_FORMAT",
    "BestOfN",
    "ChainOfThought",
    "FieldDelta",
    "FieldValue",
    "LabelScores",
    "Module",
    "Parallel",
    "ParseRetry",
    "Predict",
    "Refine",
    "StreamEnd",
    "StreamEvent",
    "apply_state",
    "calibrate",
    "calibrating",
    "check_state",
    "label_options",
    "program_state",
    "read_state",
    "score_labels",
    "streamify",
    "with_priors",
]
