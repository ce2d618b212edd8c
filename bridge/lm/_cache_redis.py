"""A completion cache shared through Redis, for several processes or machines.

``RedisCache`` is a ``Cache``: the same in-memory LRU in front, and Redis where the default cache
has its SQLite file. Use it with ``LM(..., cache=RedisCache("redis://host:6379/0"))``, or set
``LMBRIDGE_CACHE_URL=redis://...`` to make it the cache of every LM that is given no cache of its
own (``default_cache``). The memory plus SQLite cache stays the default.

The rules are the default cache's rules:

* Keys are the same SHA-256 of the model, the messages and the sampling parameters
  (``lmbridge.cache.cache_key``): credentials and base URLs never enter a key or a record.
* Redis is never a reason for a call to fail. When it cannot be reached (down, restarting, a
  timeout), the cache warns once with a ``CacheUnavailableWarning``, counts the failure in
  ``errors``, and the LM runs uncached; after ``retry_after`` seconds it tries Redis again. A
  restart of a Redis without persistence loses the entries, so it costs hits, never answers.
* A record that is not a completion (another program's key, a truncated value) is dropped and
  counted in ``corrupt_entries``.

The ``redis`` client is imported on first use: ``pip install 'lmbridge[redis]'``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lmbridge.errors import MissingDependencyError
from lmbridge.lm._cache import Cache, shared_cache

CACHE_URL_ENV = "LMBRIDGE_CACHE_URL"


class CacheUnavailableWarning(RuntimeWarning):
    """The shared cache could not be reached; calls run uncached until it is back."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisCache(Cache):
    """Memory LRU over a Redis server shared by every process that points at it."""

    def __init__(self, url: str, *, memory_size: int = 10_000, prefix: str = "lmbridge:completion:",
                 ttl: float | None = None, timeout: float = 1.0, retry_after: float = 5.0) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"a Redis cache URL starts with redis://, rediss:// or unix://, not {redact(url)!r}")
        try:
            import redis
        except ImportError as exc:
            raise MissingDependencyError("redis", "redis") from exc
        super().__init__(memory_size=memory_size, disk=False)
        self._module: Any = redis
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        """Seconds an entry lives in Redis (None: until Redis evicts it)."""
        self.timeout = timeout
        self.retry_after = retry_after
        """Seconds to run uncached after Redis failed, before trying it again."""
        self.errors = 0
        """Reads and writes that could not reach Redis."""
        self.corrupt_entries = 0
        self._client: Any = None
        self._down_until = 0.0
        self._warned = False
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisCache({redact(self.url)!r})"

    def _redis(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._module.Redis.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                    health_check_interval=30)
            return self._client

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._down_until = time.monotonic() + self.retry_after
        if not self._warned:
            self._warned = True
            warnings.warn(f"the Redis cache at {redact(self.url)} is unavailable ({type(exc).__name__}: {exc}); "
                          f"calls run uncached, retrying Redis every {self.retry_after:g}s",
                          CacheUnavailableWarning, stacklevel=4)

    def _recovered(self) -> None:
        self._warned = False

    def get(self, key: str) -> dict[str, Any] | None:
        record = super().get(key)  # the memory layer (this cache has no disk)
        if record is not None or not self._available():
            return record
        try:
            raw = self._redis().get(self.prefix + key)
        except Exception as exc:  # any client or connection error: run uncached, never fail a call
            self._failed(exc)
            return None
        self._recovered()
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError("not a completion record")
        except (ValueError, TypeError):
            self.corrupt_entries += 1
            return None
        super().set(key, record)  # remember it in memory
        return record

    def set(self, key: str, record: dict[str, Any]) -> None:
        super().set(key, record)
        if not self._available():
            return
        try:
            px = None if self.ttl is None else max(1, int(self.ttl * 1000))
            self._redis().set(self.prefix + key, json.dumps(record), px=px)
        except Exception as exc:
            self._failed(exc)
            return
        self._recovered()


_redis_shared: dict[str, RedisCache] = {}
_redis_lock = threading.Lock()


def default_cache() -> Cache:
    """The cache an LM uses when given none: a ``RedisCache`` on ``LMBRIDGE_CACHE_URL`` when that is
    set (one per URL and process), otherwise the process-wide memory plus SQLite cache."""
    url = os.environ.get(CACHE_URL_ENV)
    if not url:
        return shared_cache()
    with _redis_lock:
        cache = _redis_shared.get(url)
        if cache is None:
            cache = _redis_shared[url] = RedisCache(url)
        return cache
