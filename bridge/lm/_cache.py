"""The completion cache: an in-memory LRU in front of an SQLite file.

Keys are a SHA-256 of the model name, the messages and the sampling parameters; credentials and
base URLs never enter a key. The disk layer uses one SQLite connection per thread in WAL mode, so
several threads and several processes can share a file. A corrupted entry is dropped and counted;
a corrupted file, or a table whose columns are not the cache's, is moved aside and replaced. A
directory that cannot be created or written (a read-only HOME, a path under a file) turns the disk
layer off with one warning; the memory layer keeps working. None of these is ever fatal: the worst a
broken cache does is send a request that a healthy one would have answered. A file another process
holds locked is waited for ``READ_TIMEOUT`` seconds at most, then skipped for ``BUSY_COOLDOWN`` seconds
(one warning).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from lmbridge.types import Message

_SECRET_PARAMS = frozenset({"api_key", "api_base", "base_url", "headers", "extra_headers", "organization"})


def cache_key(model: str, messages: list[Message], params: dict[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if k not in _SECRET_PARAMS}
    blob = json.dumps([model, messages, clean], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get("LMBRIDGE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "lmbridge"


_COLUMNS = ["key", "value", "created"]
READ_TIMEOUT = 0.5
"""Seconds a read waits for a file that another process holds locked before the call goes without the
disk cache. In WAL mode a healthy writer never blocks a reader, so a wait is a foreign lock."""
WRITE_TIMEOUT = 2.0
"""Seconds a write waits for another writer: our own processes take turns, mostly for milliseconds, but a
busy machine can hold a turn for a second (then the write is skipped, never an error)."""
BUSY_COOLDOWN = 5.0
"""Seconds the disk is skipped after a lock made a read give up (writes only, after a write gave up),
so that the calls behind it do not wait again; then it is tried again."""


def valid_record(record: Any) -> bool:
    """Whether ``record`` has the shape the LM stores: ``text``, token counts, an optional
    ``finish_reason`` and optional ``tool_calls`` (each a name, the raw arguments text and an id).
    Anything else is a corrupt entry."""
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return False
    for count in ("prompt_tokens", "completion_tokens"):
        value = record.get(count, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return False
    if not isinstance(record.get("finish_reason", ""), str):
        return False
    calls = record.get("tool_calls", [])
    if not isinstance(calls, list):
        return False
    return all(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("raw", ""), str)
               and isinstance(c.get("id"), (str, type(None))) for c in calls)


class DiskCache:
    """Completion records in an SQLite file, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self.corrupt_entries = 0
        self.corrupt_files = 0
        self.busy = 0
        """Reads and writes skipped because the file stayed locked or unreadable (not corruption)."""
        self._warned_busy = False
        self._skip_until = 0.0
        self._skip_writes_until = 0.0
        self.unavailable: str | None = None
        """Why the disk layer is off (its directory cannot be created or written), or None."""

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _Unavailable(f"cannot create the cache directory {self.path.parent}: {exc}") from exc
        for attempt in range(2):
            try:
                conn = sqlite3.connect(self.path, timeout=READ_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.OperationalError as exc:  # "unable to open database file"
                raise _Unavailable(f"cannot open the cache file {self.path}: {exc}") from exc
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT, created REAL)")
                self._check_table(conn)
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()  # locked, read-only or out of space: not a reason to move the file
                if _is_busy(exc):
                    raise  # another process holds the lock: this call skips the disk, the next one retries
                raise _Unavailable(f"cannot use the cache file {self.path}: {exc}") from exc
            except sqlite3.DatabaseError:
                conn.close()
                if attempt:
                    raise
                self._move_aside()
        raise AssertionError("unreachable")

    def _check_table(self, conn: sqlite3.Connection) -> None:
        """Move a ``completions`` table with other columns (another tool's file, an old layout) aside
        inside the file, in one transaction, and make a fresh one; a wrong table never disables caching."""
        if [row[1] for row in conn.execute("PRAGMA table_info(completions)")] == _COLUMNS:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if [row[1] for row in conn.execute("PRAGMA table_info(completions)")] != _COLUMNS:
                stamp = f"{int(time.time())}_{os.getpid()}_{threading.get_ident()}"
                conn.execute(f"ALTER TABLE completions RENAME TO completions_corrupt_{stamp}")
                conn.execute("CREATE TABLE completions (key TEXT PRIMARY KEY, value TEXT, created REAL)")
                self.corrupt_files += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _move_aside(self) -> None:
        self.corrupt_files += 1
        stamp = f"{int(time.time())}-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            try:
                if p.exists():
                    p.replace(Path(f"{self.path}{suffix}.corrupt-{stamp}"))
            except OSError as exc:
                raise _Unavailable(f"cannot move the corrupted cache file {p} aside: {exc}") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT value FROM completions WHERE key = ?", (key,))
        row = rows[0] if rows else None
        if row is None:
            return None
        try:
            record = json.loads(row[0]) if isinstance(row[0], (str, bytes)) else None
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            record = None
        if valid_record(record):
            return record
        self.discard(key)
        return None

    def set(self, key: str, record: dict[str, Any]) -> None:
        self._run("INSERT OR REPLACE INTO completions VALUES (?, ?, ?)", (key, json.dumps(record), time.time()),
                  write=True)

    def delete(self, key: str) -> None:
        self._run("DELETE FROM completions WHERE key = ?", (key,), write=True)

    def discard(self, key: str) -> None:
        """Drop a corrupt entry and count it."""
        self.corrupt_entries += 1
        self.delete(key)

    def _run(self, sql: str, args: tuple[Any, ...], *, write: bool = False) -> list[Any]:
        """Run one statement; every failure is counted and turned into "nothing there"."""
        if self.unavailable is not None:
            return []
        try:
            if time.monotonic() < (self._skip_writes_until if write else self._skip_until):
                return []
            conn = self._conn()
            conn.execute(f"PRAGMA busy_timeout = {int(1000 * (WRITE_TIMEOUT if write else READ_TIMEOUT))}")
            return conn.execute(sql, args).fetchall()
        except _Unavailable as exc:
            self._turn_off(exc)
        except sqlite3.OperationalError as exc:
            self.busy += 1
            if "no such" in str(exc):  # the table was dropped or changed under us: reopen and repair
                self._drop_connection()
            elif _is_busy(exc):
                self._skip_writes_until = time.monotonic() + BUSY_COOLDOWN
                if not write:
                    self._skip_until = self._skip_writes_until
                if not self._warned_busy:
                    self._warned_busy = True
                    warnings.warn(f"lmbridge skips its disk cache while {self.path} is locked by another process "
                                  f"({exc}); calls go without it and try it again every {BUSY_COOLDOWN:g}s",
                                  RuntimeWarning, stacklevel=5)
        except sqlite3.DatabaseError:
            try:
                self._reset()
            except _Unavailable as exc:
                self._turn_off(exc)
        return []

    def _turn_off(self, exc: Exception) -> None:
        self.unavailable = str(exc)
        warnings.warn(f"lmbridge runs without its disk cache: {exc}", RuntimeWarning, stacklevel=5)

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _reset(self) -> None:
        self._drop_connection()
        self._move_aside()


class _Unavailable(Exception):
    """The cache directory or file cannot be created or written: the disk layer turns itself off."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class Cache:
    """Memory LRU over an optional disk cache. ``get`` returns a completion record or None."""

    def __init__(self, directory: Path | None = None, *, memory_size: int = 10_000, disk: bool = True) -> None:
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory_size = memory_size
        self._lock = threading.Lock()
        self.disk: DiskCache | None = None
        if disk:
            try:
                self.disk = DiskCache((directory or default_cache_dir()) / "completions.sqlite")
            except RuntimeError as exc:  # Path.home(): no HOME and no password entry
                warnings.warn(f"lmbridge runs without its disk cache: {exc}", RuntimeWarning, stacklevel=2)

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

    def discard(self, key: str) -> None:
        """Forget a record the caller found unusable (memory and disk), counted as a corrupt entry."""
        with self._lock:
            self._memory.pop(key, None)
        if self.disk is not None:
            self.disk.discard(key)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()


_shared: Cache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> Cache:
    """The process-wide cache every LM uses unless given its own."""
    global _shared
    with _shared_lock:
        try:
            directory: Path | None = default_cache_dir()
        except RuntimeError:
            directory = None
        if _shared is None or (_shared.disk is not None and _shared.disk.path.parent != directory):
            _shared = Cache(directory, disk=directory is not None)
        return _shared
