"""LocalLoRA without a model: the weights store, the adapter file format, the checks before training,
the adapter in ``LM`` (its hash in the cache key) and the weights entry of a saved program.

The model is a stand-in ``.gguf`` path (``LM("local//path.gguf")`` loads nothing until called) and
the adapter any file: these tests never load llama.cpp or torch. ``test_finetune_local_real.py``
trains and runs a real adapter.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.finetune import LocalLoRA, TrainingProgress, _local_train, _weights_store
from lmbridge.finetune._local_gguf import adapter_tensors, gguf_tensor_name, write_adapter
from lmbridge.lm import Cache, LocalModel, RawResult
from lmbridge.lm._cache import cache_key
from lmbridge.testing import ScriptedLM

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "Text: great film\nLabel:"}]
EXAMPLES = [[*MESSAGES, {"role": "assistant", "content": "positive"}],
            [{"role": "user", "content": "Text: dull\nLabel:"}, {"role": "assistant", "content": "negative"}]]


@pytest.fixture
def base(tmp_path: Path) -> str:
    """A stand-in embedded model: a ``.gguf`` path that ``LM("local//...")`` accepts without loading it."""
    path = tmp_path / "base.gguf"
    path.write_bytes(b"GGUF stand-in")
    return f"local/{path}"


def _adapter(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(content).hexdigest()[:8]}.gguf"
    path.write_bytes(content)
    return path


# -- the weights store -------------------------------------------------------------------------------
def test_the_store_names_a_file_by_its_sha256_under_the_cache_dir() -> None:
    stored = _weights_store.put(lambda path: path.write_bytes(b"weights"))
    digest = hashlib.sha256(b"weights").hexdigest()
    assert stored == lmbridge.lm.default_cache_dir() / "weights" / digest / "adapter.gguf"
    assert stored.read_bytes() == b"weights"
    assert _weights_store.lookup(digest) == stored
    stored.write_bytes(b"tampered")
    assert _weights_store.lookup(digest) is None


def test_a_run_key_maps_to_its_finished_adapter(tmp_path: Path) -> None:
    stored = _weights_store.put(lambda path: path.write_bytes(b"run"), tmp_path)
    assert _weights_store.finished_run("k1", tmp_path) is None
    _weights_store.record_run("k1", stored.parent.name, tmp_path)
    assert _weights_store.finished_run("k1", tmp_path) == stored
    stored.unlink()
    assert _weights_store.finished_run("k1", tmp_path) is None


def test_a_full_disk_while_writing_gives_a_clear_error_and_leaves_no_file(tmp_path: Path) -> None:
    def fills_the_disk(path: Path) -> None:
        path.write_bytes(b"half an adapt")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(lmbridge.ConfigurationError, match=r"no space left.*LMBRIDGE_CACHE_DIR"):
        _weights_store.put(fills_the_disk, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_stops_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Usage:
        free = 10 << 20

    monkeypatch.setattr(_weights_store.shutil, "disk_usage", lambda folder: Usage())
    with pytest.raises(lmbridge.ConfigurationError, match="10 MB free; training needs about 65 MB"):
        _weights_store.check_free_space(64 << 20, tmp_path)


# -- the adapter file ---------------------------------------------------------------------------------
def test_the_adapter_file_is_what_llama_cpp_reads(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    a = np.arange(2 * 6, dtype=np.float32).reshape(2, 6)  # (rank, in), as peft holds lora_A
    b = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)  # (out, rank)
    tensors = adapter_tensors({"base_model.model.model.layers.3.mlp.up_proj": (a, b)}, "llama", 4, 2)
    write_adapter(tmp_path / "a.gguf", tensors, "llama", 16)
    reader = gguf.GGUFReader(str(tmp_path / "a.gguf"))

    def text(key: str) -> str:
        field = reader.fields[key]
        return str(bytes(field.parts[field.data[0]]), "utf-8")

    assert (text("general.type"), text("general.architecture"), text("adapter.type")) == ("adapter", "llama", "lora")
    assert float(reader.fields["adapter.lora.alpha"].parts[-1][0]) == 16.0
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # llama.cpp's ne order
    assert shapes == {"blk.3.ffn_up.weight.lora_a": [6, 2], "blk.3.ffn_up.weight.lora_b": [2, 8]}


def test_query_and_key_rows_follow_the_llama_converter_and_nothing_else_moves() -> None:
    np = pytest.importorskip("numpy")
    a = np.zeros((1, 4), dtype=np.float32)
    b = np.arange(8, dtype=np.float32).reshape(8, 1)  # one head of 8 rows: halves [0..3] and [4..7]
    for module, moved in (("layers.0.self_attn.q_proj", True), ("layers.0.self_attn.v_proj", False)):
        out = adapter_tensors({module: (a, b)}, "llama", 1, 1)
        name = gguf_tensor_name(module)
        rows = out[f"{name}.lora_b"].ravel().tolist()
        assert rows == ([0, 4, 1, 5, 2, 6, 3, 7] if moved else list(range(8)))  # the halves interleaved
    gemma = adapter_tensors({"layers.0.self_attn.q_proj": (a, b)}, "gemma3", 1, 1)
    assert gemma["blk.0.attn_q.weight.lora_b"].ravel().tolist() == list(range(8))


def test_an_unknown_target_module_is_refused() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="qkv_proj"):
        LocalLoRA(target_modules=("qkv_proj",))
    with pytest.raises(lmbridge.ConfigurationError, match="rank=0"):
        LocalLoRA(rank=0)


# -- check() and train() without training --------------------------------------------------------------
def test_check_names_the_extra_when_a_package_is_missing(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _local_train.importlib.util.find_spec
    monkeypatch.setattr(_local_train.importlib.util, "find_spec", lambda name: None if name == "peft" else real(name))
    with pytest.raises(lmbridge.MissingDependencyError, match=r"peft.*pip install 'lmbridge\[finetune\]'"):
        LocalLoRA().check(lmbridge.LM(base))


@pytest.mark.parametrize("lm", [ScriptedLM(["x"]), lmbridge.LM("openai/gpt-4o-mini")], ids=["scripted", "provider"])
def test_check_refuses_a_model_that_is_not_embedded(lm: lmbridge.lm.BaseLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    with pytest.raises(lmbridge.ConfigurationError, match="embedded models only"):
        LocalLoRA().check(lm)


def test_check_refuses_an_lm_that_already_has_an_adapter(base: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    with pytest.raises(lmbridge.ConfigurationError, match="already runs with an adapter"):
        LocalLoRA().check(lmbridge.LM(base, adapter=_adapter(tmp_path / "a", b"A")))


@pytest.mark.parametrize("examples, problem", [
    ([], "no training examples"),
    ([[{"role": "user", "content": "hi"}]], "example 0 must end with a non-empty assistant turn"),
    ([EXAMPLES[0], [{"role": "assistant", "content": "alone"}]], "example 1 must end"),
    ([[{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]], "example 0 must be a list"),
])
def test_bad_examples_are_refused_before_any_work(base: str, examples: Any, problem: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    monkeypatch.setattr(LocalModel, "training_tokens", lambda self, messages: pytest.fail("rendered bad examples"))
    with pytest.raises(lmbridge.ConfigurationError, match=problem):
        LocalLoRA().train(lmbridge.LM(base), examples)


class _FakeTraining:
    """Stands in for the torch loop: writes a fake adapter into the store, counting runs."""

    def __init__(self) -> None:
        self.runs: list[int] = []

    def __call__(self, base: Path, tokens: Any, seed: int, report: Any) -> Path:
        self.runs.append(seed)
        report(TrainingProgress(1, 1, 0.5))
        return _weights_store.put(lambda path: path.write_bytes(f"adapter {seed} {tokens}".encode()))


class _Checkpoint:
    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.state

    def save(self, state: dict[str, Any]) -> None:
        self.state = state


def test_a_finished_run_is_reused_and_the_given_lm_is_unchanged(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    monkeypatch.setattr(LocalModel, "training_tokens", lambda self, messages: ([1, 2], [3]))
    fake = _FakeTraining()
    monkeypatch.setattr(LocalLoRA, "_train", lambda self, *args: fake(*args))
    lm = lmbridge.LM(base, max_tokens=16)
    checkpoint = _Checkpoint()
    tuned = LocalLoRA(steps=2).train(lm, EXAMPLES, seed=0, checkpoint=checkpoint)
    assert isinstance(tuned, lmbridge.LM) and tuned is not lm
    assert lm.adapter is None and lm.weights_state() is None
    assert tuned.model == lm.model and tuned.params == lm.params
    assert tuned.adapter is not None and tuned.adapter.parent.parent == _weights_store.store_root()
    assert checkpoint.state is not None and checkpoint.state["sha256"] == tuned.adapter_sha256
    again = LocalLoRA(steps=2).train(lm, EXAMPLES, seed=0)
    assert fake.runs == [0] and again.adapter == tuned.adapter  # run key found in the store: not trained again
    LocalLoRA(steps=2).train(lm, EXAMPLES, seed=1)
    LocalLoRA(steps=3).train(lm, EXAMPLES, seed=0)
    assert fake.runs == [0, 1, 0]  # another seed, other settings: another run


def test_an_example_longer_than_max_length_is_refused(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    monkeypatch.setattr(LocalModel, "training_tokens", lambda self, messages: (list(range(30)), [1, 2]))
    monkeypatch.setattr(LocalLoRA, "_train", lambda self, *args: _FakeTraining()(*args))
    with pytest.raises(lmbridge.ConfigurationError, match="example 0 is 32 tokens long, over max_length=20"):
        LocalLoRA(max_length=20).train(lmbridge.LM(base), EXAMPLES)


def test_steps_follow_epochs_when_not_given() -> None:
    assert LocalLoRA(epochs=2.0, batch_size=8).total_steps(20) == 5
    assert LocalLoRA(steps=7).total_steps(20) == 7


# -- LM with an adapter ----------------------------------------------------------------------------------
def test_an_adapter_needs_an_embedded_model_and_an_existing_file(base: str, tmp_path: Path) -> None:
    with pytest.raises(lmbridge.ConfigurationError, match="only on an embedded model"):
        lmbridge.LM("openai/gpt-4o-mini", adapter=_adapter(tmp_path, b"A"))
    with pytest.raises(lmbridge.ConfigurationError, match=r"adapter file .*missing\.gguf' does not exist"):
        lmbridge.LM(base, adapter=tmp_path / "missing.gguf")


def test_the_adapter_hash_is_in_the_cache_key(base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def chat(self: LocalModel, messages: Any, params: Any) -> RawResult:
        sent.append(str(self.adapter))
        return RawResult(f"answer {len(sent)}", 3, 1, 0.0)

    monkeypatch.setattr(LocalModel, "chat", chat)
    cache = Cache(tmp_path / "cache")
    first, second = _adapter(tmp_path / "a", b"A"), _adapter(tmp_path / "b", b"B")
    plain = lmbridge.LM(base, cache=cache)
    texts = [lmbridge.LM(base, adapter=a, cache=cache).complete(MESSAGES).text for a in (first, second)]
    texts.append(plain.complete(MESSAGES).text)
    assert texts == ["answer 1", "answer 2", "answer 3"]  # no LM answered from another's entry
    copy = _adapter(tmp_path / "copy", b"A")
    assert lmbridge.LM(base, adapter=copy, cache=cache).complete(MESSAGES).cached  # same bytes: same entry
    assert cache.get(cache_key(base, MESSAGES, plain.params)) is not None  # without an adapter: key unchanged


def test_weights_state_says_what_rebuilds_the_lm(base: str, tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, b"A")
    assert lmbridge.LM(base).weights_state() is None
    assert lmbridge.LM(base, adapter=adapter).weights_state() == {
        "model": base, "adapter": str(adapter.resolve()), "sha256": hashlib.sha256(b"A").hexdigest()}
    assert lmbridge.LM("openai/ft:gpt-4o-mini:acme::x1", fine_tuned=True).weights_state() == {
        "model": "openai/ft:gpt-4o-mini:acme::x1"}


# -- a saved program's weights -----------------------------------------------------------------------
def _program(lm: lmbridge.lm.BaseLM | None) -> lmbridge.Predict:
    return lmbridge.Predict("text -> label", lm=lm)


def test_a_saved_program_reloads_its_adapter(base: str, tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "w", b"A")
    _program(lmbridge.LM(base, adapter=adapter)).save(tmp_path / "p.json")
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["predictors"]["self"]["weights"]["sha256"] == hashlib.sha256(b"A").hexdigest()
    loaded = _program(None).load(tmp_path / "p.json")
    assert isinstance(loaded, lmbridge.Predict) and isinstance(loaded.lm, lmbridge.LM)
    assert (loaded.lm.model, loaded.lm.adapter) == (base, adapter.resolve())


def test_a_saved_program_keeps_a_providers_fine_tuned_model(tmp_path: Path) -> None:
    _program(lmbridge.LM("openai/ft:gpt-4o-mini:acme::x1", fine_tuned=True)).save(tmp_path / "p.json")
    loaded = _program(None).load(tmp_path / "p.json")
    assert isinstance(loaded, lmbridge.Predict) and isinstance(loaded.lm, lmbridge.LM)
    assert loaded.lm.model == "openai/ft:gpt-4o-mini:acme::x1" and loaded.lm.weights_state() is not None


@pytest.mark.parametrize("damage, message", [("delete", "which is missing; copy that file back"),
                                             ("change", "has changed since the program was saved")])
def test_missing_or_changed_weights_are_refused_and_change_nothing(base: str, tmp_path: Path, damage: str,
                                                                   message: str) -> None:
    adapter = _adapter(tmp_path / "w", b"A")
    _program(lmbridge.LM(base, adapter=adapter)).save(tmp_path / "p.json")
    if damage == "delete":
        adapter.unlink()
    else:
        adapter.write_bytes(b"B")
    plain = lmbridge.LM(base)
    target = _program(plain)
    with pytest.raises(lmbridge.StateError, match=message):
        target.load(tmp_path / "p.json")
    assert target.lm is plain  # never the base model silently: the program was left as it was


def test_a_file_without_weights_leaves_the_lm_alone(base: str, tmp_path: Path) -> None:
    _program(None).save(tmp_path / "p.json")
    assert "weights" not in json.loads((tmp_path / "p.json").read_text())["predictors"]["self"]
    mine = lmbridge.LM(base)
    assert _program(mine).load(tmp_path / "p.json").lm is mine  # type: ignore[attr-defined]


@pytest.mark.parametrize("weights", [{"model": ""}, {"model": "local/smollm2", "adapter": "/x.gguf"}, "local/x"])
def test_a_malformed_weights_entry_is_a_state_error(tmp_path: Path, weights: Any) -> None:
    _program(None).save(tmp_path / "p.json")
    state = json.loads((tmp_path / "p.json").read_text())
    state["predictors"]["self"]["weights"] = weights
    with pytest.raises(lmbridge.StateError, match="'weights'"):
        _program(None).load_state(state)


# -- the training data -----------------------------------------------------------------------------------
def test_the_loss_is_on_the_target_tokens_only() -> None:
    pytest.importorskip("torch")
    from lmbridge.finetune import _local_torch

    batch = _local_torch.batch_tensors([([5, 6, 7], [8, 9]), ([1], [2])])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [1, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 8, 9], [-100, 2, -100, -100, -100]]


def test_the_order_of_examples_is_seeded_and_each_pass_covers_every_example() -> None:
    from lmbridge.finetune._local_torch import order

    steps = order(5, 4, 2, seed=0)
    assert steps == order(5, 4, 2, seed=0) and steps != order(5, 4, 2, seed=1)
    flat = [i for step in steps for i in step]
    assert len(steps) == 4 and all(len(s) == 2 for s in steps)
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4]  # the first pass, shuffled, holds each example once


def test_a_model_transformers_cannot_read_is_a_configuration_error(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    monkeypatch.setattr(_local_train, "REQUIRED", ())
    monkeypatch.setattr(LocalModel, "training_tokens", lambda self, messages: ([1, 2], [3]))
    with pytest.raises(lmbridge.ConfigurationError, match=r"cannot train a LoRA adapter for base\.gguf"):
        LocalLoRA(steps=1).train(lmbridge.LM(base), EXAMPLES)  # a stand-in file, not a GGUF model
