"""Checkpoints: finished work that a restarted compile reads back instead of paying for again.

Two stores share one small interface (``get`` / ``put`` of JSON values under string keys):

* ``FileCheckpoint``: one JSON file, rewritten atomically after each finished unit of work. The
  few-shot and random-search optimizers use it.
* MIPROv2 keeps its trials in an optuna study (see ``mipro.py``) and its setup in the study's user
  attributes through ``StudyCheckpoint``, so that several worker processes can share one
  database.

Each checkpoint records a fingerprint of the compile (optimizer settings, program, data, seed). A
checkpoint written by a different compile is refused with a StateError rather than silently mixed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lmbridge.errors import StateError
from lmbridge.programs import Module, program_state
from lmbridge.signatures import to_jsonable
from lmbridge.types import Example


class Checkpoint(Protocol):
    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...


def fingerprint(optimizer: str, settings: Mapping[str, Any], program: Module,
                trainset: Sequence[Example], valset: Sequence[Example] | None) -> str:
    """A hash of everything that decides what a compile computes. The budget caps are left out, so
    a compile stopped by ``max_lm_calls`` resumes under a larger cap."""
    settings = {k: v for k, v in settings.items() if k not in ("max_lm_calls", "max_cost")}

    state = program_state(program)
    state.pop("lmbridge_version", None)
    state.pop("report", None)
    blob = json.dumps({
        "optimizer": optimizer,
        "settings": settings,
        "program": state,
        "trainset": [{k: to_jsonable(v) for k, v in e.items()} for e in trainset],
        "valset": None if valset is None else [{k: to_jsonable(v) for k, v in e.items()} for e in valset],
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FileCheckpoint:
    """Keyed JSON records in one file. Safe across threads; each ``put`` is an atomic rewrite."""

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise StateError(f"checkpoint {self.path} cannot be read: {exc}") from exc
            if not isinstance(data, dict) or not isinstance(data.get("records"), dict):
                raise StateError(f"{self.path} is not an lmbridge checkpoint")
            if data.get("fingerprint") != fingerprint:
                raise StateError(
                    f"checkpoint {self.path} belongs to a different compile (other program, data, seed "
                    "or settings); delete it or pass another path")
            self._data = data["records"]
        self.fingerprint = fingerprint
        self.resumed = bool(self._data)

    def get(self, key: str) -> Any:
        with self._lock:
            return self._data.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            text = json.dumps({"format": "lmbridge.checkpoint", "fingerprint": self.fingerprint,
                               "records": self._data}, ensure_ascii=False)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


class MemoryCheckpoint:
    """The store used when no checkpoint is given: same interface, kept in memory."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.resumed = False

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def keys(self) -> list[str]:
        return list(self._data)

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value


def open_checkpoint(path: str | Path | None, fp: str) -> FileCheckpoint | MemoryCheckpoint:
    return MemoryCheckpoint() if path is None else FileCheckpoint(path, fp)


def storage_url(checkpoint: str | Path) -> str:
    """An optuna RDB URL for a checkpoint: a URL is used as is, a path becomes an SQLite URL."""
    text = str(checkpoint)
    if "://" in text:
        return postgres_driver(text)
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def postgres_driver(url: str) -> str:
    """A ``postgresql://`` URL names no driver, and SQLAlchemy then needs psycopg2; with only psycopg
    (3, from ``lmbridge[postgres]``) installed, the URL is pointed at it."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg{sep}{rest}"
    return url
