"""Where trained weights live: a content-addressed folder under lmbridge's cache directory.

``<cache dir>/weights/<sha256>/adapter.gguf`` holds each finished adapter, named by the sha256 of its
bytes (the cache directory is ``LMBRIDGE_CACHE_DIR`` or ``~/.cache/lmbridge``, as for the disk
cache). ``<cache dir>/weights/runs/<run key>.json`` maps a training run (base model file, examples,
hyper-parameters, seed) to the adapter it produced, so a run killed after training, or repeated,
reuses the finished adapter instead of training again.

A file enters the store whole or not at all: it is written to a temporary file in the store, then
renamed. A full disk raises ``ConfigurationError`` naming the folder and leaves no partial file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from lmbridge.errors import ConfigurationError
from lmbridge.lm import default_cache_dir, file_sha256

ADAPTER_NAME = "adapter.gguf"


def store_root() -> Path:
    """The store's folder: ``weights`` in lmbridge's cache directory."""
    return default_cache_dir() / "weights"


def _full(exc: OSError, folder: Path) -> ConfigurationError:
    return ConfigurationError(f"no space left on the disk holding {folder} while writing trained weights; free "
                              "some space or point LMBRIDGE_CACHE_DIR at a disk with room, then run again")


def check_free_space(needed: int, root: Path | None = None) -> None:
    """Refuse to start when the store's disk has less than ``needed`` bytes free."""
    folder = root or store_root()
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ConfigurationError(f"the disk holding {folder} has {free // 2**20} MB free; training needs about "
                                 f"{needed // 2**20 + 1} MB there. Free some space or point LMBRIDGE_CACHE_DIR "
                                 "at a disk with room")


def put(write: Callable[[Path], None], root: Path | None = None) -> Path:
    """Store the file that ``write`` writes at the path it is given, under its sha256; returns its
    path in the store. A full disk raises ``ConfigurationError`` and leaves nothing behind."""
    folder = root or store_root()
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="incoming-", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        digest = file_sha256(tmp)
        target = folder / digest / ADAPTER_NAME
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
        return target
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full(exc, folder) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def lookup(sha256: str, root: Path | None = None) -> Path | None:
    """The stored file whose content hashes to ``sha256``, or None when it is missing or changed."""
    path = (root or store_root()) / sha256 / ADAPTER_NAME
    return path if path.is_file() and file_sha256(path) == sha256 else None


def finished_run(run_key: str, root: Path | None = None) -> Path | None:
    """The adapter a finished training run with this key produced, when it is still in the store."""
    record = (root or store_root()) / "runs" / f"{run_key}.json"
    try:
        sha256 = json.loads(record.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return lookup(sha256, root) if isinstance(sha256, str) else None


def record_run(run_key: str, sha256: str, root: Path | None = None) -> None:
    """Remember that the training run ``run_key`` produced the adapter ``sha256`` (written atomically)."""
    folder = (root or store_root()) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=run_key[:16], suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"sha256": sha256}, fh)
        os.replace(name, folder / f"{run_key}.json")
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full(exc, folder) from exc
        raise
