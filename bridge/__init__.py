"""lmbridge: typed signatures, modules and optimizers for LangChain and LlamaIndex stacks.

This file is the whole public API: explicit re-exports, no logic. ``import bridge`` imports
neither LiteLLM, LangChain, LlamaIndex, optuna, llama.cpp, torch nor sentence-transformers.
"""

from bridge import metrics, testing
from bridge.cache_redis import RedisCache
from bridge.callbacks import Callback, LMEnd, Run, RunScore, current_run_id
from bridge.constrain import constraint_fallbacks
from bridge.control import BestOfN, Parallel, Refine
from bridge.embedders import SentenceTransformerEmbedder
from bridge.errors import (
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
from bridge.evaluate import Evaluate, EvaluationResult, EvaluationRow
from bridge.format_text import TextFormat
from bridge.formats import ChatFormat, JSONFormat, PromptFormat
from bridge.labels import LabelScores, score_labels
from bridge.lm import LM, BaseLM, Completion, RawResult, inspect_history
from bridge.module import Module
from bridge.optimizers import (
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
from bridge.otel import OpenTelemetryCallback
from bridge.predict import ChainOfThought, Predict
from bridge.react import ReAct
from bridge.retrieval import BM25Retriever, Retrieve, Retriever
from bridge.settings import Settings, configure, context, context_executor, current
from bridge.signature import Field, InputField, OutputField, Signature, make_signature
from bridge.streaming import FieldDelta, FieldValue, ParseRetry, StreamEnd, StreamEvent, streamify
from bridge.toolcalls import ToolCall
from bridge.tools import Tool
from bridge.tracking import trace, track_usage
from bridge.types import Example, Message, Passage, Prediction, Usage

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
    "configure",
    "constraint_fallbacks",
    "context",
    "context_executor",
    "current",
    "current_run_id",
    "inspect_history",
    "make_signature",
    "metrics",
    "score_labels",
    "streamify",
    "testing",
    "trace",
    "track_usage",
]
