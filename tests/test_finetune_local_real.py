"""LocalLoRA on the real embedded model (SmolLM2): the training text is what the runtime sends; a tiny
fine-tune (3 steps on 16 SST-2 rows) loads in llama.cpp and moves the model's answers; label
scoring, constrained decoding, streaming and the cache work on it; a saved program reloads with its
weights and answers the same; a missing weights file is refused. And the adapter file means in
llama.cpp what the LoRA meant in transformers (query and key rows included).

Set ``LMBRIDGE_LOCAL_THREADS=1`` on a shared machine. Needs the ``local`` and ``finetune`` extras.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from examples.data import load_jsonl
from lmbridge.finetune import LocalLoRA, TrainingProgress
from lmbridge.lm import LocalModel
from lmbridge.programs import DEFAULT_FORMAT

pytestmark = pytest.mark.real_model

SIGNATURE = lmbridge.make_signature("text -> label: Literal['negative', 'positive']")


def _needs_finetune_extra() -> None:
    for name in ("torch", "transformers", "peft", "gguf"):
        pytest.importorskip(name, reason=f"needs the finetune extra ({name})")


def _sst2(split: str, n: int) -> list[dict[str, Any]]:
    try:
        return load_jsonl("sst2", split)[:n]
    except FileNotFoundError:
        pytest.skip("the SST-2 dataset is not available (set LMBRIDGE_DATASETS)")


def _example(row: dict[str, Any]) -> list[lmbridge.Message]:
    return [*lmbridge.Predict(SIGNATURE).messages(text=row["text"]),
            {"role": "assistant", "content": DEFAULT_FORMAT.render_outputs(SIGNATURE, {"label": row["label"]})}]


def test_the_training_text_is_exactly_what_the_runtime_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    example = _example({"text": "a gripping , funny film .", "label": "positive"})
    local = LocalModel.for_name("smollm2")
    prompt, target = local.training_tokens(example)
    sent: list[list[int]] = []
    real = llama_cpp.Llama.create_completion

    def recording(self: Any, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(list(prompt))
        return real(self, prompt, *args, **kwargs)

    monkeypatch.setattr(llama_cpp.Llama, "create_completion", recording)
    lmbridge.LM("local/smollm2", cache=False, max_tokens=2).complete(example[:-1])
    assert sent == [prompt]
    llama = local._load()
    assert llama.detokenize(target, special=True).decode() == "positive<|im_end|>"  # the stop token is learnt
    assert target[-1] == llama.token_eos()


@pytest.fixture(scope="module")
def tuned() -> Iterator[tuple[lmbridge.LM, list[TrainingProgress]]]:
    _needs_finetune_extra()
    reports: list[TrainingProgress] = []
    examples = [_example(row) for row in _sst2("train", 16)]
    lm = lmbridge.LM("local/smollm2", max_tokens=16)
    result = LocalLoRA(steps=3, batch_size=4).train(lm, examples, seed=0, on_progress=reports.append)
    assert lm.adapter is None  # the given LM is unchanged
    assert isinstance(result, lmbridge.LM)
    yield result, reports


def test_a_tiny_fine_tune_reports_progress_and_an_estimate(tuned: tuple[lmbridge.LM, list[TrainingProgress]]) -> None:
    lm, reports = tuned
    assert [r.status for r in reports] == ["loading", "estimate", "training", "training", "training"]
    assert [r.step for r in reports if r.status == "training"] == [1, 2, 3]
    estimate = reports[1].seconds_left
    assert estimate is not None and estimate > 0
    assert all(r.loss is not None and math.isfinite(r.loss) for r in reports[1:])
    assert lm.adapter is not None and lm.adapter.stat().st_size > 0


def test_the_adapter_runs_in_llama_cpp_and_moves_the_answers(tuned: tuple[lmbridge.LM, list[TrainingProgress]]) -> None:
    lm, _ = tuned
    base = lmbridge.LM("local/smollm2", max_tokens=16)
    moved = []
    for row in _sst2("dev", 4):
        messages = lmbridge.Predict(SIGNATURE).messages(text=row["text"])
        before = base.score_options(messages, ["negative", "positive"]).logprobs
        after = lm.score_options(messages, ["negative", "positive"]).logprobs
        moved.append(max(abs(a - b) for a, b in zip(before, after)))
    assert min(moved) > 0.05, moved  # the adapter changes the output distribution on every prompt
    predict = lmbridge.Predict(SIGNATURE, lm=lm)
    assert predict(text="an utterly charming and hilarious film .").label in ("negative", "positive")  # constrained
    messages = lmbridge.Predict(SIGNATURE).messages(text="dull and lifeless .")
    *chunks, done = list(lm.stream(messages))
    assert isinstance(done, lmbridge.lm.Completion) and "".join(c for c in chunks if isinstance(c, str)) == done.text
    assert lm.complete(messages).cached


def test_a_saved_program_reloads_its_weights_and_a_missing_file_is_refused(
        tuned: tuple[lmbridge.LM, list[TrainingProgress]], tmp_path: Path) -> None:
    lm, _ = tuned
    assert lm.adapter is not None
    copy = tmp_path / "weights" / "adapter.gguf"
    copy.parent.mkdir()
    shutil.copy(lm.adapter, copy)
    texts = [row["text"] for row in _sst2("dev", 4)]
    program = lmbridge.Predict(SIGNATURE, lm=lmbridge.LM("local/smollm2", adapter=copy, cache=False))
    answers = [program(text=t).label for t in texts]
    program.save(tmp_path / "program.json")
    loaded = lmbridge.Predict(SIGNATURE).load(tmp_path / "program.json")
    assert isinstance(loaded, lmbridge.Predict) and isinstance(loaded.lm, lmbridge.LM)
    assert loaded.lm.adapter == copy.resolve()
    assert [loaded(text=t).label for t in texts] == answers  # computed afresh: the first program cached nothing
    copy.unlink()
    with pytest.raises(lmbridge.StateError, match=r"adapter .*adapter\.gguf, which is missing"):
        lmbridge.Predict(SIGNATURE).load(tmp_path / "program.json")


def test_the_adapter_means_in_llama_cpp_what_the_lora_meant_in_transformers(tmp_path: Path) -> None:
    """A LoRA on every projection (query and key rows reordered for llama.cpp) shifts llama.cpp's
    next-token log-probabilities as it shifts transformers': the gap between the two runtimes stays
    small next to the adapter's own effect (without the reordering it is about two thirds of it)."""
    _needs_finetune_extra()
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model

    from lmbridge.finetune import _local_gguf, _local_torch

    local = LocalModel.for_name("smollm2")
    torch.manual_seed(0)
    model = get_peft_model(_local_torch.load_base(local.path),
                           LoraConfig(r=8, lora_alpha=16, target_modules=list(LocalLoRA().target_modules)))
    for module in model.modules():
        if hasattr(module, "lora_B") and "default" in module.lora_B:
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.05)
    config = model.base_model.model.config
    tensors = _local_gguf.adapter_tensors(_local_torch.lora_pairs(model), "llama", config.num_attention_heads,
                                          config.num_key_value_heads)
    _local_gguf.write_adapter(tmp_path / "a.gguf", tensors, "llama", 16)
    prompt, _ = local.training_tokens(_example({"text": "a gripping , funny film .", "label": "positive"}))

    def llama_cpp_logprobs(adapter: Path | None) -> Any:
        llama = Llama(model_path=str(local.path), n_ctx=512, n_threads=1, logits_all=True, verbose=False,
                      lora_path=str(adapter) if adapter else None)
        llama.eval(prompt)
        logits = np.array(llama.scores[len(prompt) - 1], dtype=np.float64)
        return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()

    with torch.no_grad():
        hf = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1].double(), -1).numpy()
    with_adapter, without = llama_cpp_logprobs(tmp_path / "a.gguf"), llama_cpp_logprobs(None)
    effect = np.abs(with_adapter - without).max()
    assert effect > 1.0
    assert np.abs(with_adapter - hf).max() < 0.4 * effect
