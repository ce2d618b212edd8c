"""LlamaIndex prompts in: every default prompt of llama-index-core migrates verbatim; chat and rich
templates; template_var_mappings honoured, function_mappings refused; a migrated prompt runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate, RichPromptTemplate
from llama_index.core.prompts.default_prompts import DEFAULT_REFINE_PROMPT, DEFAULT_TEXT_QA_PROMPT

from lmbridge.adapters.llamaindex import from_llamaindex_prompt
from lmbridge.adapters.llamaindex._prompts import lost_lines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.llamaindex_prompts import default_prompts, measure


def test_every_default_prompt_migrates_verbatim() -> None:
    _, total, migrated, verbatim = measure()
    assert total == len(default_prompts()) >= 20
    assert migrated == total
    assert verbatim == total


def test_text_qa_prompt() -> None:
    qa = from_llamaindex_prompt(DEFAULT_TEXT_QA_PROMPT)
    assert qa.spec() == "context_str: list[str], query_str: str -> answer: str"
    assert qa.instructions.startswith("Context information is below.\n---------------------")
    assert "Given the context information and not prior knowledge, answer the query." in qa.instructions
    assert [f.label for f in qa.fields().values()] == ["Context", "Query", "Answer"]
    lm = ScriptedLM([{"answer": "Levi's Stadium"}])
    pred = lmbridge.Predict(qa, lm=lm)(context_str=["Super Bowl 50 was at Levi's Stadium."], query_str="Where?")
    assert pred.answer == "Levi's Stadium"
    sent = lm.calls[0][-1]["content"]  # the passages stay between the separators, where the template puts them
    assert "---------------------\n[1] Super Bowl 50 was at Levi's Stadium.\n---------------------" in sent
    assert sent.endswith("Query: Where?\nAnswer:")


def test_a_sentence_with_a_variable_keeps_it_as_a_slot() -> None:
    refine = from_llamaindex_prompt(DEFAULT_REFINE_PROMPT)
    assert "The original query is as follows: {query_str}" in refine.instructions
    assert refine.output_fields["answer"].label == "Refined Answer"
    assert lost_lines(DEFAULT_REFINE_PROMPT, refine) == []
    values = {"query_str": "Who won?", "existing_answer": "Denver.", "context_msg": "Denver won 24-10."}
    sent = lmbridge.Predict(refine).messages(**values)[-1]["content"]
    assert sent == DEFAULT_REFINE_PROMPT.format(**values).rstrip().replace("answer.\nRefined", "answer.\n\nRefined")


def test_chat_template_and_partials() -> None:
    template = ChatPromptTemplate(message_templates=[
        ChatMessage(role="system", content="You are a careful {domain} assistant."),
        ChatMessage(role="user", content="Question: {question}\nAnswer in {n_words} words."),
    ]).partial_format(domain="sports")
    sig = from_llamaindex_prompt(template, "answer: str, confidence: float")
    assert sig.spec() == "question: str, n_words: str -> answer: str, confidence: float"
    assert sig.instructions == "You are a careful sports assistant.\nQuestion: {question}\nAnswer in {n_words} words."
    assert sig.input_fields["question"].label == "Question"


def test_rich_template() -> None:
    rich = RichPromptTemplate("{% chat role=\"system\" %}Be brief.{% endchat %}"
                              "{% chat role=\"user\" %}Context:\n{{ context_str }}\n"
                              "Question: {{ question }}{% endchat %}")
    sig = from_llamaindex_prompt(rich)
    assert sig.spec() == "context_str: list[str], question: str -> answer: str"
    assert sig.instructions == "Be brief."
    with pytest.raises(lmbridge.SignatureError, match="jinja"):
        from_llamaindex_prompt(RichPromptTemplate("{% for x in items %}{{ x }}{% endfor %} {{ question }}"))


def test_template_var_mappings_are_honoured() -> None:
    template = PromptTemplate("Context:\n{context_str}\nQuery: {query_str}\nAnswer: ",
                              template_var_mappings={"passages": "context_str", "question": "query_str"})
    sig = from_llamaindex_prompt(template)
    assert sig.spec() == "passages: list[str], question: str -> answer: str"
    assert sig.input_fields["question"].label == "Query"


def test_function_mappings_are_refused_clearly() -> None:
    template = PromptTemplate("Examples:\n{few_shot}\nQuery: {query_str}",
                              function_mappings={"few_shot": lambda **kw: ""})
    with pytest.raises(lmbridge.SignatureError, match="function_mappings"):
        from_llamaindex_prompt(template)


def test_a_fixed_assistant_turn_is_refused() -> None:
    template = ChatPromptTemplate(message_templates=[ChatMessage(role="user", content="Q: {q}"),
                                                     ChatMessage(role="assistant", content="A: 4")])
    with pytest.raises(lmbridge.SignatureError, match="demo"):
        from_llamaindex_prompt(template)


def test_the_langchain_migrator_refuses_a_llamaindex_template_clearly() -> None:
    pytest.importorskip("langchain_core")
    from lmbridge.adapters.langchain import from_prompt_template

    with pytest.raises(lmbridge.SignatureError, match="from_llamaindex_prompt"):
        from_prompt_template(DEFAULT_TEXT_QA_PROMPT)  # type: ignore[arg-type]
