"""A value inside a sentence stays there: ``{name}`` in a signature's instructions (an input slot) is
written with the call's value by every format, and that input is not written again under its label;
LlamaIndex's default prompts migrate that way, and a migrated prompt still compiles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

SIG = lmbridge.make_signature("question, context -> answer",
                              "The original query is as follows: {question}\nRefine the answer with the context.")
DEMO = {"question": "Q1?", "context": "c1", "answer": "A1"}
FORMATS = [lmbridge.ChatFormat(), lmbridge.ChatFormat(demos="inline"), lmbridge.ChatFormat(instructions="system"),
           lmbridge.JSONFormat(), lmbridge.JSONFormat(instructions="user"), lmbridge.TextFormat()]


@pytest.mark.parametrize("fmt", FORMATS, ids=repr)
def test_every_format_writes_the_value_in_its_sentence_once(fmt: lmbridge.PromptFormat) -> None:
    messages = lmbridge.Predict(SIG, format=fmt).messages(question="Who won {it}?", context="Denver won.")
    text = "\n".join(m["content"] for m in messages)
    assert "The original query is as follows: Who won {it}?\n" in text
    assert text.count("Who won {it}?") == 1 and "{question}" not in text
    assert "Context: Denver won." in text


@pytest.mark.parametrize("fmt", FORMATS, ids=repr)
def test_demos_keep_their_labels_and_come_before_the_calls_instructions(fmt: lmbridge.PromptFormat) -> None:
    messages = lmbridge.Predict(SIG, format=fmt, demos=[DEMO]).messages(question="Who won?", context="Denver won.")
    text = "\n".join(m["content"] for m in messages)
    assert "Question: Q1?" in text  # a demo's value is not the call's: it stays under its label
    assert text.index("Question: Q1?") < text.index("as follows: Who won?") or messages[0]["role"] == "system"
    assert "Question: Who won?" not in text


def test_instructions_without_the_slot_put_the_value_back_under_its_label() -> None:
    slotted = lmbridge.Predict(SIG).messages(question="Who won?", context="Denver won.")[-1]["content"]
    assert slotted.endswith("\n\nContext: Denver won.\nAnswer:")
    rewritten = lmbridge.Predict(SIG.with_instructions("Refine the answer."))  # an optimizer's new text
    sent = rewritten.messages(question="Who won?", context="Denver won.")[-1]["content"]
    assert "Question: Who won?\nContext: Denver won.\nAnswer:" in sent


def test_a_value_holding_another_slot_is_written_as_given() -> None:
    sig = lmbridge.make_signature("question, context -> answer", "Q: {question}\nC: {context}")
    sent = lmbridge.Predict(sig).messages(question="use {context}", context="ctx")[-1]["content"]
    assert sent.startswith("Q: use {context}\nC: ctx\n")


def test_a_slotted_prompt_saves_and_loads_unchanged(tmp_path: Path) -> None:
    predictor = lmbridge.Predict(SIG, demos=[DEMO])
    predictor.save(tmp_path / "p.json")
    loaded = lmbridge.Predict(SIG.with_instructions("x"))
    loaded.load(tmp_path / "p.json")
    sent = loaded.messages(question="Who?", context="c")
    assert sent == predictor.messages(question="Who?", context="c")
    assert "The original query is as follows: Who?\n" in sent[-1]["content"]


# -- LlamaIndex's prompts ---------------------------------------------------------------------------

def test_every_llamaindex_default_prompt_renders_at_or_above_the_goal() -> None:
    pytest.importorskip("llama_index.core")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.llamaindex_prompts import GOAL, default_prompts, similarity
    from lmbridge.adapters.llamaindex import from_llamaindex_prompt

    below = {}
    for name, template in default_prompts().items():
        ratio = similarity(template, from_llamaindex_prompt(template))  # type: ignore[arg-type]
        if ratio < GOAL:
            below[name] = round(ratio, 3)
    assert below == {}


def test_the_refine_prompt_keeps_its_values_in_their_sentences() -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.prompts.default_prompts import DEFAULT_REFINE_PROMPT

    from lmbridge.adapters.llamaindex import from_llamaindex_prompt

    refine = from_llamaindex_prompt(DEFAULT_REFINE_PROMPT)
    values = {"query_str": "Who won?", "existing_answer": "Denver.", "context_msg": "Denver won 24-10."}
    sent = lmbridge.Predict(refine).messages(**values)[-1]["content"]
    assert "The original query is as follows: Who won?\nWe have provided an existing answer: Denver.\n" in sent
    assert "------------\nDenver won 24-10.\n------------" in sent and sent.endswith("\nRefined Answer:")


def test_a_variable_alone_is_the_prompt_itself() -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.prompts.default_prompts import DEFAULT_SIMPLE_INPUT_PROMPT

    from lmbridge.adapters.llamaindex import from_llamaindex_prompt

    sig = from_llamaindex_prompt(DEFAULT_SIMPLE_INPUT_PROMPT)
    assert sig.instructions == "{query_str}"
    assert lmbridge.Predict(sig).messages(query_str="Hi there")[-1]["content"] == "Hi there\n\nAnswer:"


def test_a_migrated_prompt_compiles_and_the_compile_may_rewrite_its_instructions() -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.prompts.default_prompts import DEFAULT_REFINE_PROMPT

    from lmbridge.adapters.llamaindex import from_llamaindex_prompt

    refine = lmbridge.Predict(from_llamaindex_prompt(DEFAULT_REFINE_PROMPT))
    rows = [lmbridge.Example(query_str=f"q{i}", existing_answer=f"e{i}", context_msg=f"c{i}",
                             answer=f"a{i}").with_inputs("query_str", "existing_answer", "context_msg")
            for i in range(4)]
    lm = ScriptedLM(lambda messages: "a0")
    compiled: Any = lmbridge.LabeledFewShot(k=2).compile(refine, trainset=rows)
    assert len(compiled.demos) == 2 and compiled.instructions == refine.instructions
    with lmbridge.context(lm=lm):
        assert compiled(query_str="Who?", existing_answer="Denver.", context_msg="24-10").answer == "a0"
    sent = lm.calls[0]
    assert sent[0]["content"].startswith("Query: q")  # the demos, labelled, then the template with the call's values
    assert "The original query is as follows: Who?\n" in sent[-1]["content"]


@pytest.mark.real_model
def test_a_migrated_refine_prompt_answers_on_the_embedded_model_with_its_values_in_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.prompts.default_prompts import DEFAULT_REFINE_PROMPT

    from lmbridge.adapters.llamaindex import from_llamaindex_prompt

    monkeypatch.setenv("LMBRIDGE_LOCAL_THREADS", "1")
    lm = lmbridge.LM("local/smollm2", max_tokens=32, cache=False)
    refine = lmbridge.Predict(from_llamaindex_prompt(DEFAULT_REFINE_PROMPT), lm=lm)
    values = {"query_str": "Which team won Super Bowl 50?", "existing_answer": "The Carolina Panthers.",
              "context_msg": "The Denver Broncos defeated the Carolina Panthers 24-10 in Super Bowl 50."}
    pred = refine(**values)
    assert isinstance(pred.answer, str) and pred.answer.strip()
    sent = lm.history[-1].messages[-1]["content"]
    assert sent.startswith("The original query is as follows: Which team won Super Bowl 50?\n")
    assert "------------\nThe Denver Broncos defeated" in sent and "Query:" not in sent
