"""Prompt formats: a signature and values become messages, and a completion becomes typed values; decode-time
constraints and label priors.
"""

from lmbridge.formats._base import ChatFormat, PromptFormat, format_from_state
from lmbridge.formats._constrain import Constraint, constrained_params, constraint_fallbacks, note_fallback
from lmbridge.formats._json import JSONFormat
from lmbridge.formats._prior import Prior
from lmbridge.formats._text import TextFormat

__all__ = [
    "ChatFormat",
    "Constraint",
    "JSONFormat",
    "Prior",
    "PromptFormat",
    "TextFormat",
    "constrained_params",
    "constraint_fallbacks",
    "format_from_state",
    "note_fallback",
]
