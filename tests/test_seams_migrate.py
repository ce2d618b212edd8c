"""``lmbridge migrate`` as a user runs it on their prompts module: a LlamaIndex prompt prints its
signature class, the printed class imports every name it uses (it runs as printed), and a lead-in
sentence closing a LlamaIndex prompt keeps its value in that sentence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from llama_index.core.prompts import PromptTemplate as LIPromptTemplate
from llama_index.core.prompts.default_prompts import DEFAULT_TABLE_CONTEXT_PROMPT

import lmbridge
from lmbridge.adapters.llamaindex import from_llamaindex_prompt
from lmbridge.cli._main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prompts_app.py").write_text(
        "import enum\n"
        "from langchain_core.prompts import PromptTemplate\n"
        "from llama_index.core.prompts.default_prompts import DEFAULT_REFINE_PROMPT as REFINE\n"
        "REVIEW = PromptTemplate.from_template('Classify the movie review.\\nReview: {review}\\nSentiment:')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_migrate_prints_a_llamaindex_prompt_as_a_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _app(tmp_path, monkeypatch)
    assert main(["migrate", "prompts_app:REFINE"]) == 0
    source = capsys.readouterr().out
    namespace: dict[str, Any] = {}
    exec(compile(source, "<printed>", "exec", dont_inherit=True), namespace)
    refine = namespace["Refine"]
    assert refine.spec() == "query_str: str, existing_answer: str, context_msg: str -> answer: str"
    assert refine.output_fields["answer"].label == "Refined Answer"


def test_the_printed_class_imports_what_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _app(tmp_path, monkeypatch)
    assert main(["migrate", "prompts_app:REVIEW", "--output-fields",
                 "sentiment: Literal['positive', 'negative'], notes: Optional[str]"]) == 0
    source = capsys.readouterr().out
    namespace: dict[str, Any] = {}
    exec(compile(source, "<printed>", "exec", dont_inherit=True), namespace)  # old code: Literal is not defined
    sig = namespace["Review"]
    assert sig.spec() == "review: str -> sentiment: Literal['positive', 'negative'], notes: Optional[str]"


def test_the_printed_class_imports_an_enum_from_its_module() -> None:
    from lmbridge.adapters.langchain._migrate import signature_source, source_imports

    class_source = source_imports(_EnumSig)
    assert f"from {__name__} import Mood" in class_source
    namespace: dict[str, Any] = {}
    exec(compile(class_source + "\n\n\n" + signature_source(_EnumSig), "<printed>", "exec", dont_inherit=True),
         namespace)
    assert namespace["EnumSig"].output_fields["mood"].annotation is Mood


import enum  # noqa: E402


class Mood(enum.Enum):
    happy = "happy"
    sad = "sad"


class _EnumSig(lmbridge.Signature):
    """Read the mood."""

    text: str = lmbridge.InputField()
    mood: Mood = lmbridge.OutputField()


_EnumSig.__name__ = "EnumSig"


def test_a_closing_lead_in_sentence_keeps_its_value_in_place() -> None:
    sig = from_llamaindex_prompt(DEFAULT_TABLE_CONTEXT_PROMPT)  # ends "... to the following task: {query_str}"
    lead_in = "Given the context information and the table schema, give a response to the following task"
    assert sig.input_fields["query_str"].label == lead_in
    rendered = lmbridge.Predict(sig).messages(schema="TABLE teams(name)", context_str=["a"], query_str="Who won?")
    assert f"{lead_in}: Who won?" in rendered[-1]["content"]
    assert lead_in not in sig.instructions


def test_a_lead_in_sentence_above_more_text_stays_an_instruction() -> None:
    sig = from_llamaindex_prompt(LIPromptTemplate("The question is as follows: {q}\nAnswer it in French.\nAnswer: "))
    assert sig.instructions == "The question is as follows: {q}\nAnswer it in French."


def test_the_benchmark_reports_a_similarity_and_a_reason_per_prompt() -> None:
    import llamaindex_prompts

    lines, total, migrated, _ = llamaindex_prompts.measure()
    rows = [line for line in lines if line.startswith("| DEFAULT") or line.startswith("| RANKGPT")
            or line.startswith("| STRUCTURED")]
    assert len(rows) == total == migrated
    for row in rows:
        ratio = float(row.split("|")[3])
        assert ratio >= llamaindex_prompts.GOAL or f"below {llamaindex_prompts.GOAL}:" in row, row


def test_the_langchain_benchmark_measures_a_rendered_prompt_the_same_way() -> None:
    import langchain_migration
    from langchain_core.prompts import PromptTemplate

    from lmbridge.adapters.langchain import migrate_prompt

    rag = PromptTemplate.from_template(  # the text of LangChain's hub prompt rlm/rag-prompt
        "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
        "answer the question. If you don't know the answer, just say that you don't know. Use three sentences "
        "maximum and keep the answer concise.\nQuestion: {question} \nContext: {context} \nAnswer:")
    assert langchain_migration.similarity(rag, migrate_prompt(rag)) >= langchain_migration.GOAL
    refine = PromptTemplate.from_template("The original question is as follows: {question}\nWe have provided an "
                                          "existing answer: {existing_answer}\nRefine it.\nAnswer:")
    migrated = migrate_prompt(refine)  # values inside sentences stay there, as input slots
    assert langchain_migration.similarity(refine, migrated) >= langchain_migration.GOAL
    example = PromptTemplate.from_template("Human: {input_prompt}\n\nModel: {output_from_model}")
    assert "variables and their labels alone" in langchain_migration.reason(example, migrate_prompt(example))
