"""Prompt migration, faithful to the hand-written text: answer cues as output prefixes, every
non-slot character kept, few-shot examples as demos, template logic read or refused by name,
output parsers as typed outputs, and the signature written out as Python source."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")

from langchain_core.output_parsers import (
    CommaSeparatedListOutputParser,
    JsonOutputParser,
    PydanticOutputParser,
)
from langchain_core.prompts import (
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    FewShotPromptTemplate,
    PromptTemplate,
)
from pydantic import BaseModel, Field

from lmbridge.adapters.langchain import from_prompt_template
from lmbridge.adapters.langchain._migrate import demos_jsonl, migrate_prompt, signature_source

SQL = PromptTemplate.from_template(
    "Given an input question, write a syntactically correct {dialect} query.\n"
    "Wrap it like this:\n```sql\nSELECT ...\n```\n"
    'Return errors as {{"error": "..."}}.\n---\n\n'
    "Question: {input}\nSQL Query:")


def test_the_answer_cue_becomes_the_output_prefix_and_every_character_stays() -> None:
    sig = from_prompt_template(SQL, output_fields="query")
    assert sig.output_fields["query"].label == "SQL Query"
    assert sig.instructions == ("Given an input question, write a syntactically correct {dialect} query.\n"
                                "Wrap it like this:\n```sql\nSELECT ...\n```\n"
                                'Return errors as {"error": "..."}.\n---')
    lm = ScriptedLM(["SELECT 1;"])
    lmbridge.Predict(sig, lm=lm)(dialect="SQLite", input="One?")
    sent = lm.calls[0][-1]["content"]  # the dialect stays in its sentence, as the template has it
    assert sent.startswith("Given an input question, write a syntactically correct SQLite query.\n")
    assert sent.endswith("---\n\nQuestion: One?\nSQL Query:") and "Dialect:" not in sent


def test_a_standalone_question_cue() -> None:
    condense = PromptTemplate.from_template(
        "Rephrase the follow up question to be a standalone question.\n\nChat History:\n{chat_history}\n"
        "Follow Up Input: {question}\nStandalone question:")
    sig = from_prompt_template(condense, output_fields="standalone_question")
    assert sig.output_fields["standalone_question"].prefix == ""  # the cue is the field's own label
    assert sig.input_fields["question"].label == "Follow Up Input"
    renamed = from_prompt_template(condense)
    assert renamed.output_fields["answer"].label == "Standalone question"


def test_few_shot_prompt_template_becomes_signature_and_demos() -> None:
    examples = [{"word": "happy", "antonym": "sad"}, {"word": "tall", "antonym": "short"}]
    template = FewShotPromptTemplate(
        examples=examples, example_prompt=PromptTemplate.from_template("Word: {word}\nAntonym: {antonym}"),
        prefix="Give the antonym of every input.", suffix="Word: {input}\nAntonym:", input_variables=["input"])
    migrated = migrate_prompt(template, output_fields="antonym")
    assert migrated.signature.instructions == "Give the antonym of every input."
    assert [d.to_dict() for d in migrated.demos] == [{"input": "happy", "antonym": "sad"},
                                                     {"input": "tall", "antonym": "short"}]
    assert migrated.demos[0].input_keys == ("input",)
    with pytest.raises(lmbridge.SignatureError, match="migrate_prompt"):
        from_prompt_template(template, output_fields="antonym")
    assert demos_jsonl(migrated.demos).splitlines()[0] == '{"input": "happy", "antonym": "sad"}'


def test_few_shot_chat_examples_are_not_dropped() -> None:
    block = FewShotChatMessagePromptTemplate(
        examples=[{"input": "2+2", "output": "4"}, {"input": "2+3", "output": "5"}],
        example_prompt=ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")]))
    template = ChatPromptTemplate.from_messages([("system", "You are a calculator."), block, ("human", "{input}")])
    migrated = migrate_prompt(template, output_fields="result: int")
    assert migrated.signature.instructions == "You are a calculator."
    assert [d.to_dict() for d in migrated.demos] == [{"input": "2+2", "result": "4"}, {"input": "2+3", "result": "5"}]
    lm = ScriptedLM([{"result": 7}])
    assert lmbridge.Predict(migrated.signature, lm=lm, demos=migrated.demos)(input="3+4").result == 7
    assert "2+3" in "\n".join(m["content"] for m in lm.calls[0])


def test_jinja_loops_read_and_other_logic_refused_by_name() -> None:
    loop = PromptTemplate.from_template(
        "Answer from these notes:\n{% for note in notes %}- {{ note }}\n{% endfor %}Question: {{ question }}",
        template_format="jinja2")
    sig = from_prompt_template(loop)
    assert sig.input_fields["notes"].annotation == list[str] and "question" in sig.input_fields
    assert sig.instructions == "Answer from these notes:"
    branch = PromptTemplate.from_template("{% if formal %}Be formal.{% endif %} {{ text }}", template_format="jinja2")
    with pytest.raises(lmbridge.SignatureError, match=r"jinja2 block '\{% if formal %\}'.*instructions="):
        from_prompt_template(branch)


class Person(BaseModel):
    name: str = Field(description="the full name")
    age: int


def test_output_parsers_become_typed_outputs() -> None:
    template = PromptTemplate.from_template("Extract the person from: {text}")
    sig = from_prompt_template(template, output_parser=PydanticOutputParser(pydantic_object=Person))
    assert {n: f.annotation for n, f in sig.output_fields.items()} == {"name": str, "age": int}
    assert sig.output_fields["name"].desc == "the full name"
    assert list(from_prompt_template(template, output_parser=CommaSeparatedListOutputParser()).output_fields) == [
        "items"]
    assert from_prompt_template(template, output_parser=JsonOutputParser()).output_fields["output"].annotation \
        == dict[str, Any]
    named = from_prompt_template(template, output_fields="person: Person", types={"Person": Person})
    assert named.output_fields["person"].annotation is Person


def test_a_variable_named_like_the_default_output_is_renamed_clearly() -> None:
    grade = PromptTemplate.from_template("Question: {question}\nStudent answer: {answer}\nGrade:")
    migrated = migrate_prompt(grade)
    assert list(migrated.signature.output_fields) == ["output"]
    assert migrated.signature.output_fields["output"].label == "Grade"
    assert "named 'answer'" in migrated.notes[0]
    with pytest.raises(lmbridge.SignatureError, match="output_fields"):
        from_prompt_template(grade, output_fields="answer")


def test_signature_source_round_trips() -> None:
    sig = from_prompt_template(SQL, output_fields="query")
    source = signature_source(sig)
    namespace: dict[str, Any] = {"lmbridge": lmbridge}
    exec(source, namespace)
    rebuilt = namespace[sig.__name__]
    assert rebuilt.spec() == sig.spec() and rebuilt.instructions == sig.instructions
    assert rebuilt.output_fields["query"].label == "SQL Query"


def test_lmbridge_migrate_prints_the_class_and_writes_demos(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from lmbridge.cli._main import main

    (tmp_path / "team_prompts.py").write_text(
        "from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate\n"
        "ANTONYMS = FewShotPromptTemplate(examples=[{'word': 'happy', 'antonym': 'sad'}],\n"
        "    example_prompt=PromptTemplate.from_template('Word: {word}\\nAntonym: {antonym}'),\n"
        "    prefix='Give the antonym.', suffix='Word: {input}\\nAntonym:', input_variables=['input'])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["migrate", "team_prompts:ANTONYMS", "--output-fields", "antonym", "--demos", "demos.jsonl"]) == 0
    source = capsys.readouterr().out
    assert "class Antonyms(lmbridge.Signature):" in source and "antonym: str = lmbridge.OutputField()" in source
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    assert namespace["Antonyms"].spec() == "input: str -> antonym: str"
    assert (tmp_path / "demos.jsonl").read_text() == '{"input": "happy", "antonym": "sad"}\n'
    (tmp_path / "ask.txt").write_text("Answer briefly.\nQuestion: {question}\nShort answer:")
    assert main(["migrate", "ask.txt"]) == 0
    assert "answer: str = lmbridge.OutputField(prefix='Short answer')" in capsys.readouterr().out


def test_partial_functions_are_called_at_format_time() -> None:
    calls: list[int] = []

    def today() -> str:
        calls.append(1)
        return f"day {len(calls)}"

    template = PromptTemplate.from_template("Today is {today}. Plan the {task}.").partial(today=today)
    migrated = migrate_prompt(template, output_fields="plan")
    assert list(migrated.signature.input_fields) == ["today", "task"] and calls == []
    assert migrated.signature.instructions == "Today is {today}. Plan the {task}."
    assert migrated.inputs(task="trip") == {"today": "day 1", "task": "trip"}
    assert migrated.inputs(task="trip")["today"] == "day 2"
    fixed = PromptTemplate.from_template("Reply in {language}.\nQuestion: {q}").partial(language="French")
    assert from_prompt_template(fixed).instructions == "Reply in French."
