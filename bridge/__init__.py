"""lmbridge: typed signatures, modules and optimizers for LangChain and LlamaIndex stacks.

This file is the whole public API: explicit re-exports and one lazy loader. ``import lmbridge`` imports
neither LiteLLM, LangChain, LlamaIndex, optuna, llama.cpp, torch nor sentence-transformers.

Only the ground floor (errors, value types, settings) loads with ``import lmbridge``; every other
name loads from its subpackage the first time it is used (PEP 562 ``__getattr__`` below), so a
script that needs one module does not pay for the optimizers, the agents or the test doubles. The
imports under ``TYPE_CHECKING`` are the same names, for type checkers and readers.
"""

import typing as _typing

from lmbridge._version import __version__
from lmbridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ContextWindowError,
    EvaluationError,
    FineTuningError,
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
    TruncatedError,
)
from lmbridge.settings import Settings, configure, context, context_executor, current
from lmbridge.types import Example, Message, Passage, Prediction, Usage

if _typing.TYPE_CHECKING:
    from lmbridge import datasets, metrics, testing
    from lmbridge.agents import ReAct, Tool
    from lmbridge.evaluate import Evaluate, EvaluationResult, EvaluationRow
    from lmbridge.formats import ChatFormat, JSONFormat, Prior, PromptFormat, TextFormat, constraint_fallbacks
    from lmbridge.lm import LM, BaseLM, Completion, RawResult, RedisCache, SentenceTransformerEmbedder, inspect_history
    from lmbridge.optimizers import (
        COPRO,
        GEPA,
        SIMBA,
        BetterTogether,
        BootstrapFewShot,
        BootstrapFewShotWithRandomSearch,
        BootstrapFinetune,
        Ensemble,
        KNNFewShot,
        LabeledFewShot,
        MIPROv2,
    )
    from lmbridge.programs import (
        BestOfN,
        ChainOfThought,
        FieldDelta,
        FieldValue,
        LabelScores,
        Module,
        Parallel,
        ParseRetry,
        Predict,
        Refine,
        StreamEnd,
        StreamEvent,
        calibrate,
        score_labels,
        streamify,
    )
    from lmbridge.rag import RAG
    from lmbridge.retrieval import BM25Retriever, Retrieve, Retriever
    from lmbridge.signatures import Field, InputField, OutputField, Signature, make_signature
    from lmbridge.toolcalls import ToolCall
    from lmbridge.tracing import (
        Callback,
        LMEnd,
        OpenTelemetryCallback,
        Run,
        RunScore,
        current_run_id,
        trace,
        track_usage,
    )

# name -> the module it is defined in; a submodule maps to itself.
_LAZY: dict[str, str] = {
    "datasets": "lmbridge.datasets",
    "metrics": "lmbridge.metrics",
    "testing": "lmbridge.testing",
    "ReAct": "lmbridge.agents",
    "Tool": "lmbridge.agents",
    "Evaluate": "lmbridge.evaluate",
    "EvaluationResult": "lmbridge.evaluate",
    "EvaluationRow": "lmbridge.evaluate",
    "ChatFormat": "lmbridge.formats",
    "JSONFormat": "lmbridge.formats",
    "Prior": "lmbridge.formats",
    "PromptFormat": "lmbridge.formats",
    "TextFormat": "lmbridge.formats",
    "constraint_fallbacks": "lmbridge.formats",
    "LM": "lmbridge.lm",
    "BaseLM": "lmbridge.lm",
    "Completion": "lmbridge.lm",
    "RawResult": "lmbridge.lm",
    "RedisCache": "lmbridge.lm",
    "SentenceTransformerEmbedder": "lmbridge.lm",
    "inspect_history": "lmbridge.lm",
    "COPRO": "lmbridge.optimizers",
    "GEPA": "lmbridge.optimizers",
    "SIMBA": "lmbridge.optimizers",
    "BootstrapFewShot": "lmbridge.optimizers",
    "BootstrapFewShotWithRandomSearch": "lmbridge.optimizers",
    "BootstrapFinetune": "lmbridge.optimizers",
    "BetterTogether": "lmbridge.optimizers",
    "Ensemble": "lmbridge.optimizers",
    "KNNFewShot": "lmbridge.optimizers",
    "LabeledFewShot": "lmbridge.optimizers",
    "MIPROv2": "lmbridge.optimizers",
    "BestOfN": "lmbridge.programs",
    "ChainOfThought": "lmbridge.programs",
    "FieldDelta": "lmbridge.programs",
    "FieldValue": "lmbridge.programs",
    "LabelScores": "lmbridge.programs",
    "Module": "lmbridge.programs",
    "Parallel": "lmbridge.programs",
    "ParseRetry": "lmbridge.programs",
    "Predict": "lmbridge.programs",
    "Refine": "lmbridge.programs",
    "StreamEnd": "lmbridge.programs",
    "StreamEvent": "lmbridge.programs",
    "calibrate": "lmbridge.programs",
    "score_labels": "lmbridge.programs",
    "streamify": "lmbridge.programs",
    "RAG": "lmbridge.rag",
    "BM25Retriever": "lmbridge.retrieval",
    "Retrieve": "lmbridge.retrieval",
    "Retriever": "lmbridge.retrieval",
    "Field": "lmbridge.signatures",
    "InputField": "lmbridge.signatures",
    "OutputField": "lmbridge.signatures",
    "Signature": "lmbridge.signatures",
    "make_signature": "lmbridge.signatures",
    "ToolCall": "lmbridge.toolcalls",
    "Callback": "lmbridge.tracing",
    "LMEnd": "lmbridge.tracing",
    "OpenTelemetryCallback": "lmbridge.tracing",
    "Run": "lmbridge.tracing",
    "RunScore": "lmbridge.tracing",
    "current_run_id": "lmbridge.tracing",
    "trace": "lmbridge.tracing",
    "track_usage": "lmbridge.tracing",
}
_SUBPACKAGES = ("agents", "evaluate", "finetune", "formats", "lm", "optimizers", "programs", "rag", "retrieval",
                "signatures", "toolcalls", "tracing")
"""Loaded on first use too; ``lmbridge.lm`` and the others stay reachable as attributes."""

if not _typing.TYPE_CHECKING:  # type checkers see the imports above; at run time the names load here

    def __getattr__(name: str) -> _typing.Any:
        import importlib

        if name in _SUBPACKAGES:
            return importlib.import_module(f"lmbridge.{name}")
        where = _LAZY.get(name)
        if where is None:
            raise AttributeError(f"module 'lmbridge' has no attribute {name!r}")
        module = importlib.import_module(where)
        value = module if where == f"lmbridge.{name}" else getattr(module, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))

__all__ = [
    "COPRO",
    "GEPA",
    "LM",
    "RAG",
    "SIMBA",
    "AuthenticationError",
    "BM25Retriever",
    "BaseLM",
    "BestOfN",
    "BetterTogether",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BootstrapFinetune",
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
    "FineTuningError",
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
    "TruncatedError",
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
