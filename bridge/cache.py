"""The completion cache: an in-memory LRU in front of an SQLite file.

Keys are a SHA-256 of the model name, the messages and the sampling parameters; credentials and
base URLs never enter a key. The disk layer uses one SQLite connection per thread in WAL mode, so
several threads and several processes can share a file. A corrupted entry is dropped and counted;
a corrupted file is moved aside and replaced. Neither is ever fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bridge.types import Message

_SECRET_PARAMS = frozenset({"api_key", "api_base", "base_url", "headers", "extra_headers", "organization"})


def cache_key(model: str, messages: list[Message], params: dict[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if k not in _SECRET_PARAMS}
    blob = json.dumps([model, messages, clean], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get("LMBRIDGE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "lmbridge"


class DiskCache:
    """Completion records in an SQLite file, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self.corrupt_entries = 0
        self.corrupt_files = 0
        self.busy = 0
        """Reads and writes skipped because the file stayed locked or unreadable (not corruption)."""

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT, created REAL)")
                return conn
            except sqlite3.OperationalError:
                conn.close()  # locked, unreadable or out of space: not a reason to move the file
                raise
            except sqlite3.DatabaseError:
                conn.close()
                if attempt:
                    raise
                self._move_aside()
        raise AssertionError("unreachable")

    def _move_aside(self) -> None:
        self.corrupt_files += 1
        stamp = f"{int(time.time())}-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.replace(Path(f"{self.path}{suffix}.corrupt-{stamp}"))

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            row = self._conn().execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            self.busy += 1
            return None
        except sqlite3.DatabaseError:
            self._reset()
            return None
        if row is None:
            return None
        try:
            record = json.loads(row[0])
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError("not a completion record")
            return record
        except (ValueError, TypeError):
            self.corrupt_entries += 1
            self.delete(key)
            return None

    def set(self, key: str, record: dict[str, Any]) -> None:
        try:
            self._conn().execute("INSERT OR REPLACE INTO completions VALUES (?, ?, ?)",
                                 (key, json.dumps(record), time.time()))
        except sqlite3.OperationalError:
            self.busy += 1
        except sqlite3.DatabaseError:
            self._reset()

    def delete(self, key: str) -> None:
        try:
            self._conn().execute("DELETE FROM completions WHERE key = ?", (key,))
        except sqlite3.OperationalError:
            self.busy += 1
        except sqlite3.DatabaseError:
            self._reset()

    def _reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._move_aside()


class Cache:
    """Memory LRU over an optional disk cache. ``get`` returns a completion record or None."""

    def __init__(self, directory: Path | None = None, *, memory_size: int = 10_000, disk: bool = True) -> None:
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory_size = memory_size
        self._lock = threading.Lock()
        self.disk = DiskCache((directory or default_cache_dir()) / "completions.sqlite") if disk else None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._memory.get(key)
            if record is not None:
                self._memory.move_to_end(key)
                return record
        if self.disk is None:
            return None
        record = self.disk.get(key)
        if record is not None:
            self._remember(key, record)
        return record

    def set(self, key: str, record: dict[str, Any]) -> None:
        self._remember(key, record)
        if self.disk is not None:
            self.disk.set(key, record)

    def _remember(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._memory[key] = record
            if len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()


_shared: Cache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> Cache:
    """The process-wide cache every LM uses unless given its own."""
    global _shared
    with _shared_lock:
        if _shared is None or (_shared.disk is not None and _shared.disk.path.parent != default_cache_dir()):
            _shared = Cache()
        return _shared
