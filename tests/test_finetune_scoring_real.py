"""Label scoring on the embedded models feeds the model the prompt that training used (and that
``chat`` sends): one rendering of a chat into tokens, llama.cpp's chat handler. Checked on SmolLM2
and Gemma 3, with the scores of a base model unchanged from the chat template rendered directly; and
on a model llama.cpp answers through a built-in chat format instead of the file's template, where a
second rendering used to score another prompt than the one training and generation use.

Set ``LMBRIDGE_LOCAL_THREADS=1`` on a shared machine. Needs the ``local`` extra.
"""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
import lmbridge.lm._local as local_module
from examples.data import load_jsonl
from lmbridge.lm import LocalModel
from lmbridge.programs import DEFAULT_FORMAT

pytestmark = pytest.mark.real_model

SIGNATURE = lmbridge.make_signature("text -> label: Literal['negative', 'positive']")
OPTIONS = [DEFAULT_FORMAT.render_outputs(SIGNATURE, {"label": label}) for label in ("negative", "positive")]


def _rows(n: int) -> list[dict[str, Any]]:
    try:
        return load_jsonl("sst2", "test")[:n]
    except FileNotFoundError:
        pytest.skip("the SST-2 dataset is not available (set LMBRIDGE_DATASETS)")


def _chat(text: str) -> list[lmbridge.Message]:
    return list(lmbridge.Predict(SIGNATURE).messages(text=text))


def _scored_prompts(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Records the prompt tokens each option is scored after."""
    seen: list[list[int]] = []
    real = local_module._option_logprob

    def recording(llama: Any, prompt: list[int], option: list[int]) -> float:
        seen.append(list(prompt))
        return real(llama, prompt, option)

    monkeypatch.setattr(local_module, "_option_logprob", recording)
    return seen


def _template_prompt(local: LocalModel, messages: list[lmbridge.Message]) -> list[int]:
    """The chat rendered straight from the model's chat template (how scoring rendered it before)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llama = local._load()
    if local.spec is not None and local.spec.chat_template is not None:
        template, eos, bos = local.spec.chat_template, local.spec.eos_token, local.spec.bos_token
    else:
        template = str(llama.metadata["tokenizer.chat_template"])
        eos = llama.detokenize([llama.token_eos()], special=True).decode()
        bos = llama.detokenize([llama.token_bos()], special=True).decode()
    text = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages).prompt
    return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _forget(local: LocalModel) -> None:
    """Empty the KV cache, so two scorings evaluate the same tokens in the same batches (a prompt's last
    token evaluated alone rather than in its batch moves a log-probability by up to a few hundredths)."""
    with local._lock:
        local._load().reset()


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_label_scoring_feeds_the_prompt_training_used_and_base_scores_are_unchanged(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    local = LocalModel.for_name(name)
    lm = lmbridge.LM(f"local/{name}", cache=False)
    for row in _rows(3):
        chat = _chat(row["text"])
        prompt, _ = local.training_tokens([*chat, {"role": "assistant", "content": OPTIONS[0]}])
        seen = _scored_prompts(monkeypatch)
        _forget(local)
        scores = lm.score_options(chat, OPTIONS).logprobs
        assert seen == [prompt, prompt]
        monkeypatch.undo()
        # A base model scores as before: the same prompt as the chat template gives, the same numbers.
        reference = _template_prompt(local, chat)
        assert reference == prompt
        _forget(local)
        with local._lock:
            llama = local._load()
            expected = [local_module._option_logprob(llama, reference, llama.tokenize(o.encode(), add_bos=False))
                        for o in OPTIONS]
        assert scores == pytest.approx(expected, abs=1e-6)


def test_scoring_follows_the_chat_handler_llama_cpp_picked_not_the_files_template() -> None:
    # llama.cpp answers a GGUF whose template it recognises (ChatML, Llama 3, Mistral) with its own
    # built-in format; a chat with no system turn then reads differently from SmolLM2's template
    # (which adds a default system prompt). Scoring must follow what generation and training send.
    base = LocalModel.for_name("smollm2")
    local = LocalModel(base.path)  # an instance of its own: the shared one is left as it is
    llama = local._load()
    llama.chat_format = "chatml"
    chat: list[lmbridge.Message] = [{"role": "user", "content": "Text: a gripping , funny film .\nLabel:"}]
    prompt, _ = local.training_tokens([*chat, {"role": "assistant", "content": "positive"}])
    assert prompt != _template_prompt(local, chat)  # the two renderings do differ here
    sent: list[list[int]] = []
    real = llama.create_completion

    def recording(prompt: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(list(prompt))
        return real(prompt, *args, **kwargs)

    llama.create_completion = recording
    local.chat(chat, {"max_tokens": 1})
    del llama.create_completion
    assert sent == [prompt]
    _forget(local)
    scores, prompt_tokens = local.score(chat, ["positive", "negative"])
    assert prompt_tokens == len(prompt)
    _forget(local)
    with local._lock:
        expected = [local_module._option_logprob(llama, prompt, llama.tokenize(o.encode(), add_bos=False))
                    for o in ("positive", "negative")]
    assert scores == pytest.approx(expected, abs=1e-6)
