"""Language models: the backend protocol (``BaseLM`` and its hooks ``send``, ``asend``, ``send_stream``,
``asend_stream``; ``RawResult`` and ``TransientError`` are what a backend returns and raises), ``LM``
over LiteLLM and the embedded llama.cpp models, caches, streaming, option scoring and embedders.
"""

from lmbridge.errors import TruncatedError
from lmbridge.lm._base import BaseLM, inspect_history
from lmbridge.lm._cache import Cache, default_cache_dir, shared_cache
from lmbridge.lm._cache_redis import CacheUnavailableWarning, RedisCache
from lmbridge.lm._client import LM
from lmbridge.lm._embedders import Embedder, HashingEmbedder, LiteLLMEmbedder, SentenceTransformerEmbedder
from lmbridge.lm._litellm import header_wait, parse_retry_after, price_per_token
from lmbridge.lm._local import LocalModel
from lmbridge.lm._local_files import file_sha256
from lmbridge.lm._scoring import OptionScores
from lmbridge.lm._types import Completion, RawResult, TransientError

__all__ = [
    "LM",
    "BaseLM",
    "Cache",
    "CacheUnavailableWarning",
    "Completion",
    "Embedder",
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "LocalModel",
    "OptionScores",
    "RawResult",
    "RedisCache",
    "SentenceTransformerEmbedder",
    "TransientError",
    "TruncatedError",
    "default_cache_dir",
    "file_sha256",
    "header_wait",
    "inspect_history",
    "parse_retry_after",
    "price_per_token",
    "shared_cache",
]
