"""Language models: the backend protocol (``BaseLM``), ``LM`` over LiteLLM and the embedded llama.cpp models,
caches, streaming, option scoring and embedders.
"""

from lmbridge.lm._cache import Cache, shared_cache
from lmbridge.lm._cache_redis import CacheUnavailableWarning, RedisCache
from lmbridge.lm._client import LM, BaseLM, Completion, OptionScores, RawResult, TransientError, inspect_history
from lmbridge.lm._embedders import Embedder, HashingEmbedder, LiteLLMEmbedder, SentenceTransformerEmbedder
from lmbridge.lm._litellm import price_per_token

__all__ = [
    "LM",
    "BaseLM",
    "Cache",
    "CacheUnavailableWarning",
    "Completion",
    "Embedder",
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "OptionScores",
    "RawResult",
    "RedisCache",
    "SentenceTransformerEmbedder",
    "TransientError",
    "inspect_history",
    "price_per_token",
    "shared_cache",
]
