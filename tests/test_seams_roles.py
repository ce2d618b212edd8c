"""A migrated chat template that opens with a system message keeps it one: in the predictor's messages,
and in the LangChain prompt exported from it."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.prompts import ChatPromptTemplate

from lmbridge.adapters.langchain import migrate_prompt, print_migration, to_langchain_prompt
from lmbridge.testing import ScriptedLM

TEMPLATE = ChatPromptTemplate.from_messages([
    ("system", "You are a film critic. Answer with one word: positive or negative."),
    ("human", "Review: {text}"),
])


def test_a_system_message_stays_a_system_message_after_migration_and_export() -> None:
    migrated = migrate_prompt(TEMPLATE, output_fields="label: Literal['negative', 'positive']")
    predictor = migrated.predictor(lm=ScriptedLM([{"label": "positive"}]))
    sent = predictor.messages(text="a gem")
    assert sent[0]["role"] == "system" and "film critic" in sent[0]["content"]
    assert "film critic" not in sent[-1]["content"]
    exported = to_langchain_prompt(predictor).format_messages(text="a gem")
    assert exported[0].type == "system" and "film critic" in str(exported[0].content)
    assert predictor(text="a gem").label == "positive"


def test_a_template_without_a_system_message_keeps_the_default_format() -> None:
    human_only = ChatPromptTemplate.from_messages([("human", "Classify: {text}")])
    assert migrate_prompt(human_only, output_fields="label").format is None


def test_the_printed_migration_says_how_to_keep_the_system_message(capsys: pytest.CaptureFixture[str]) -> None:
    print_migration("app:CRITIC", TEMPLATE, output_fields="label: Literal['negative', 'positive']")
    out = capsys.readouterr().out
    assert 'format=lmbridge.ChatFormat(instructions="system")' in out
