"""lmbridge: typed signatures, modules and optimizers for LangChain and LlamaIndex stacks.

This file is the whole public API: explicit re-exports, no logic. ``import lmbridge`` imports
neither LiteLLM, LangChain, LlamaIndex, optuna, llama.cpp, torch nor sentence-transformers.
"""

from lmbridge import datasets, metrics, testing
from lmbridge.cache_redis import RedisCache
from lmbridge.calibration import calibrate
from lmbridge.callbacks import Callback, LMEnd, Run, RunScore, current_run_id
from lmbridge.constrain import constraint_fallbacks
from lmbridge.control import BestOfN, Parallel, Refine
from lmbridge.embedders import SentenceTransformerEmbedder
from lmbridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ContextWindowError,
    EvaluationError,
    InputError,
    LMError,
    LMTimeoutError,
    LogprobsUnavailableError,
    MissingDependencyError,
    ParseError,
    RateLimitError,
    RetrievalError,
    SignatureError,
    StateError,
    ToolError,
)
from lmbridge.evaluate import Evaluate, EvaluationResult, EvaluationRow
from lmbridge.format_json import JSONFormat
from lmbridge.format_text import TextFormat
from lmbridge.formats import ChatFormat, PromptFormat
from lmbridge.labels import LabelScores, score_labels
from lmbridge.lm import LM, BaseLM, Completion, RawResult, inspect_history
from lmbridge.module import Module
from lmbridge.optimizers import (
    COPRO,
    GEPA,
    SIMBA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    Ensemble,
    KNNFewShot,
    LabeledFewShot,
    MIPROv2,
)
from lmbridge.otel import OpenTelemetryCallback
from lmbridge.predict import ChainOfThought, Predict
from lmbridge.prior import Prior
from lmbridge.react import ReAct
from lmbridge.retrieval import BM25Retriever, Retrieve, Retriever
from lmbridge.settings import Settings, configure, context, context_executor, current
from lmbridge.signature import Field, InputField, OutputField, Signature, make_signature
from lmbridge.streaming import FieldDelta, FieldValue, ParseRetry, StreamEnd, StreamEvent, streamify
from lmbridge.toolcalls import ToolCall
from lmbridge.tools import Tool
from lmbridge.tracking import trace, track_usage
from lmbridge.types import Example, Message, Passage, Prediction, Usage

__version__ = "0.1.0"

__all__ = [
    "COPRO",
    "GEPA",
    "LM",
    "SIMBA",
    "AuthenticationError",
    "BM25Retriever",
    "BaseLM",
    "BestOfN",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BridgeError",
    "Callback",
    "ChainOfThought",
    "ChatFormat",
    "Completion",
    "ConfigurationError",
    "ContextWindowError",
    "Ensemble",
    "Evaluate",
    "EvaluationError",
    "EvaluationResult",
    "EvaluationRow",
    "Example",
    "Field",
    "FieldDelta",
    "FieldValue",
    "InputError",
    "InputField",
    "JSONFormat",
    "KNNFewShot",
    "LMEnd",
    "LMError",
    "LMTimeoutError",
    "LabelScores",
    "LabeledFewShot",
    "LogprobsUnavailableError",
    "MIPROv2",
    "Message",
    "MissingDependencyError",
    "Module",
    "OpenTelemetryCallback",
    "OutputField",
    "Parallel",
    "ParseError",
    "ParseRetry",
    "Passage",
    "Predict",
    "Prediction",
    "Prior",
    "PromptFormat",
    "RateLimitError",
    "RawResult",
    "ReAct",
    "RedisCache",
    "Refine",
    "RetrievalError",
    "Retrieve",
    "Retriever",
    "Run",
    "RunScore",
    "SentenceTransformerEmbedder",
    "Settings",
    "Signature",
    "SignatureError",
    "StateError",
    "StreamEnd",
    "StreamEvent",
    "TextFormat",
    "Tool",
    "ToolCall",
    "ToolError",
    "Usage",
    "__version__",
    "calibrate",
    "configure",
    "constraint_fallbacks",
    "context",
    "context_executor",
    "current",
    "current_run_id",
    "datasets",
    "inspect_history",
    "make_signature",
    "metrics",
    "score_labels",
    "streamify",
    "testing",
    "trace",
    "track_usage",
]
