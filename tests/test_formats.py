"""ChatFormat and JSONFormat: messages out, typed values back, without any model."""

from __future__ import annotations

import os
from typing import Any, Literal, Optional

import pytest
from helpers import Mood, Point
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.formats._base import PromptFormat, format_from_state
from lmbridge.signatures._signature import make_signature


class Everything(lmbridge.Signature):
    """Fill in every field."""

    text: str = lmbridge.InputField()
    passages: list[str] = lmbridge.InputField()
    summary: str = lmbridge.OutputField(desc="one line")
    count: int = lmbridge.OutputField()
    ratio: float = lmbridge.OutputField()
    ok: bool = lmbridge.OutputField()
    kind: Literal["alpha", "beta"] = lmbridge.OutputField()
    mood: Mood = lmbridge.OutputField()
    tags: list[str] = lmbridge.OutputField()
    scores: dict[str, int] = lmbridge.OutputField()
    maybe: Optional[int] = lmbridge.OutputField()  # noqa: UP045
    point: Point = lmbridge.OutputField()


EVERYTHING_VALUES: dict[str, Any] = {
    "summary": "A short: summary with a colon",
    "count": 3,
    "ratio": 0.5,
    "ok": False,
    "kind": "beta",
    "mood": Mood.SAD,
    "tags": ["x", "y z"],
    "scores": {"a": 1, "b": 2},
    "maybe": None,
    "point": Point(x=1, y=-2),
}

QA = make_signature("question -> answer")
Sentiment = make_signature("text -> sentiment: Literal['positive', 'negative', 'neutral']")
Multi = make_signature("question -> reasoning, answer: int")

FORMATS: list[PromptFormat] = [
    lmbridge.ChatFormat(),
    lmbridge.ChatFormat(demos="inline", instructions="system"),
    lmbridge.JSONFormat(),
    lmbridge.JSONFormat(demos="inline", instructions="user"),
]
FORMAT_IDS = ["chat", "chat-inline-system", "json", "json-inline-user"]


# -- round trips ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_render_then_parse_round_trips_every_type(fmt: PromptFormat) -> None:
    text = fmt.render_outputs(Everything, EVERYTHING_VALUES)
    assert fmt.parse(Everything, text) == EVERYTHING_VALUES


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize(
    ("sig", "values"),
    [
        (QA, {"answer": "Paris"}),
        (QA, {"answer": "line one\nline two"}),
        (Sentiment, {"sentiment": "neutral"}),
        (Multi, {"reasoning": "2 + 2 is 4. Answer: is below", "answer": 4}),
    ],
)
def test_round_trips_per_signature(fmt: PromptFormat, sig: type[lmbridge.Signature],
                                   values: dict[str, Any]) -> None:
    assert fmt.parse(sig, fmt.render_outputs(sig, values)) == values


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_state_round_trips(fmt: PromptFormat) -> None:
    again = format_from_state(fmt.to_state())
    assert again == fmt and type(again) is type(fmt)
    with pytest.raises(ValueError):
        format_from_state({"name": "pickle"})


# -- the messages ---------------------------------------------------------------------------------

def test_chat_messages_end_with_the_first_output_label() -> None:
    messages = lmbridge.ChatFormat().format(Multi, [], {"question": "What is 2+2?"})
    assert len(messages) == 1
    last = messages[-1]
    assert last["role"] == "user"
    assert "Question: What is 2+2?" in last["content"]
    assert last["content"].endswith("Reasoning:")
    assert Multi.instructions in last["content"]


def test_chat_instructions_in_system_message() -> None:
    messages = lmbridge.ChatFormat(instructions="system").format(QA, [], {"question": "q?"})
    assert [m["role"] for m in messages] == ["system", "user"]
    assert QA.instructions in messages[0]["content"]
    assert QA.instructions not in messages[1]["content"]


DEMOS = [lmbridge.Example(question="Capital of France?", answer="Paris"),
         lmbridge.Example(question="Capital of Peru?", answer="Lima")]


def test_chat_demos_as_turns() -> None:
    fmt = lmbridge.ChatFormat()
    messages = fmt.format(QA, DEMOS, {"question": "Capital of Chile?"})
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert "Capital of France?" in messages[0]["content"]
    assert messages[1]["content"] == "Paris"
    assert messages[3]["content"] == "Lima"
    assert "Capital of Chile?" in messages[4]["content"]
    assert QA.instructions in messages[0]["content"]
    assert QA.instructions not in messages[4]["content"]  # said once


def test_chat_demos_inline() -> None:
    messages = lmbridge.ChatFormat(demos="inline").format(QA, DEMOS, {"question": "Capital of Chile?"})
    assert len(messages) == 1
    content = messages[0]["content"]
    assert "Question: Capital of France?\nAnswer: Paris" in content
    assert "Question: Capital of Peru?\nAnswer: Lima" in content
    assert content.index("Lima") < content.index("Capital of Chile?")
    assert content.endswith("Question: Capital of Chile?\nAnswer:")


def test_demos_missing_an_input_are_left_out() -> None:
    demos = [lmbridge.Example(answer="orphan"), *DEMOS]
    messages = lmbridge.ChatFormat().format(QA, demos, {"question": "q"})
    assert all("orphan" not in m["content"] for m in messages)
    assert len(messages) == 5


def test_json_messages_and_demos() -> None:
    fmt = lmbridge.JSONFormat()
    messages = fmt.format(QA, DEMOS, {"question": "Capital of Chile?"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert '"answer"' in messages[0]["content"]
    assert messages[2]["content"] == '{"answer": "Paris"}'
    assert fmt.request_params(QA) == {"response_format": {"type": "json_object"}}


def test_json_guide_shows_schema_of_models() -> None:
    messages = lmbridge.JSONFormat().format(Everything, [], {"text": "t", "passages": []})
    assert '"x"' in messages[0]["content"] and '"point"' in messages[0]["content"]


def test_passages_are_numbered_in_the_prompt() -> None:
    messages = lmbridge.ChatFormat().format(Everything, [], {"text": "t", "passages": ["one", "two"]})
    assert "[1] one\n[2] two" in messages[-1]["content"]


# -- ChatFormat parsing of what models write ----------------------------------------------------------

def test_chat_first_field_may_come_without_its_label() -> None:
    fmt = lmbridge.ChatFormat()
    assert fmt.parse(Multi, " add them.\nAnswer: 4") == {"reasoning": "add them.", "answer": 4}


def test_chat_first_field_label_repeated_by_the_model() -> None:
    fmt = lmbridge.ChatFormat()
    assert fmt.parse(Multi, "Reasoning: add them.\nAnswer: 4") == {"reasoning": "add them.", "answer": 4}
    assert fmt.parse(QA, "Answer: Paris") == {"answer": "Paris"}


@pytest.mark.parametrize("text", ["**Answer:** 4", "## Answer: 4", "answer: 4", "ANSWER : 4"])
def test_chat_label_variants(text: str) -> None:
    assert lmbridge.ChatFormat().parse(Multi, "think\n" + text)["answer"] == 4


def test_chat_model_continuing_with_another_example_is_cut() -> None:
    fmt = lmbridge.ChatFormat()
    text = "Paris\n\nQuestion: Capital of Spain?\nAnswer: Madrid"
    assert fmt.parse(QA, text) == {"answer": "Paris"}
    text = "adding.\nAnswer: 4\nQuestion: what next?\nReasoning: more\nAnswer: 9"
    assert fmt.parse(Multi, text) == {"reasoning": "adding.", "answer": 4}


def test_chat_repeated_output_label_stops_reading() -> None:
    text = "first\nAnswer: 1\nReasoning: again\nAnswer: 2"
    assert lmbridge.ChatFormat().parse(Multi, text) == {"reasoning": "first", "answer": 1}


def test_chat_literal_is_matched_leniently() -> None:
    fmt = lmbridge.ChatFormat()
    assert fmt.parse(Sentiment, " Positive.") == {"sentiment": "positive"}
    assert fmt.parse(Sentiment, "The sentiment is **negative**") == {"sentiment": "negative"}
    with pytest.raises(lmbridge.ParseError):
        fmt.parse(Sentiment, "positive or negative")
    with pytest.raises(lmbridge.ParseError):
        fmt.parse(Sentiment, "unknown")


def test_chat_missing_field_raises_parse_error_naming_it() -> None:
    with pytest.raises(lmbridge.ParseError) as info:
        lmbridge.ChatFormat().parse(Multi, "I think it is four")
    assert info.value.field == "answer"
    assert info.value.completion == "I think it is four"


def test_chat_empty_typed_field_raises() -> None:
    with pytest.raises(lmbridge.ParseError):
        lmbridge.ChatFormat().parse(Multi, "why\nAnswer:")


# -- JSONFormat parsing ----------------------------------------------------------------------------

def test_json_parse_is_lenient_about_fences_and_prose() -> None:
    fmt = lmbridge.JSONFormat()
    fenced = 'Sure!\n```json\n{"reasoning": "r", "answer": 4}\n```'
    assert fmt.parse(Multi, fenced) == {"reasoning": "r", "answer": 4}
    assert fmt.parse(Multi, 'Here: {"reasoning": "r", "answer": "4"} ok') == {"reasoning": "r", "answer": 4}
    assert fmt.parse(Multi, '{"Reasoning": "r", "ANSWER": 4}') == {"reasoning": "r", "answer": 4}
    assert fmt.parse(QA, '{"answer": 12}') == {"answer": "12"}
    assert fmt.parse(Sentiment, '{"sentiment": "Negative"}') == {"sentiment": "negative"}


@pytest.mark.parametrize("text", ["no json", "[1, 2]", '{"reasoning": "r"}',
                                  '{"reasoning": "r", "answer": "x"}',
                                  '{"reasoning": "r", "answer": [1]}', "{broken"])
def test_json_bad_completions_raise_parse_error(text: str) -> None:
    with pytest.raises(lmbridge.ParseError):
        lmbridge.JSONFormat().parse(Multi, text)


def test_repair_message_shows_the_error() -> None:
    error = lmbridge.ParseError("field 'answer': expected an int, found no number in 'four'")
    for fmt in FORMATS:
        message = fmt.repair(Multi, error)
        assert "found no number" in message
        assert "Answer" in message


# -- fuzzing: a completion never raises anything but ParseError ---------------------------------------

FUZZ_SIGNATURES = [QA, Sentiment, Multi, Everything,
                   make_signature("a -> flag: bool, n: float, items: list[int], note: Optional[str]")]
LABEL_WORDS = sorted({w for s in FUZZ_SIGNATURES for f in s.fields().values()
                      for w in (f.label, f.name, f.label.upper())})
JUNK = st.sampled_from(["", " ", "\n", ":", "**", "##", "```", "```json", "{", "}", "[", "]", '"', ",",
                        "null",
                        "none", "yes", "no", "-1", "3.5", "1e309", "NaN", "positive", "alpha", "happy",
                        '{"x": 1}', "\u00a0", "\x00", "\u2028", "é"])
PIECES = st.one_of(st.sampled_from(LABEL_WORDS).map(lambda w: f"\n{w}:"), JUNK, st.text(max_size=20))
LABELLED_TEXT = st.lists(PIECES, max_size=25).map("".join)
# LMBRIDGE_FUZZ_EXAMPLES raises the count for a deeper hunt; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("LMBRIDGE_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _parse_or_parse_error(fmt: PromptFormat, sig: type[lmbridge.Signature], text: str) -> None:
    try:
        values = fmt.parse(sig, text)
    except lmbridge.ParseError:
        return
    assert set(values) == set(sig.output_fields)


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(), lmbridge.JSONFormat()], ids=["chat", "json"])
@pytest.mark.parametrize("sig", FUZZ_SIGNATURES, ids=lambda s: s.spec()[:40])
@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text_only_raises_parse_error(fmt: PromptFormat, sig: type[lmbridge.Signature],
                                                     text: str) -> None:
    _parse_or_parse_error(fmt, sig, text)


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(), lmbridge.JSONFormat()], ids=["chat", "json"])
@pytest.mark.parametrize("sig", FUZZ_SIGNATURES, ids=lambda s: s.spec()[:40])
@FUZZ
@given(text=LABELLED_TEXT)
def test_fuzz_labels_and_junk_only_raise_parse_error(fmt: PromptFormat, sig: type[lmbridge.Signature],
                                                     text: str) -> None:
    _parse_or_parse_error(fmt, sig, text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("sig", FUZZ_SIGNATURES, ids=lambda s: s.spec()[:40])
@FUZZ
@given(obj=st.dictionaries(st.sampled_from([*LABEL_WORDS, "answer", "count", "point", "maybe"]), JSON_VALUES,
                           max_size=8))
def test_fuzz_json_objects_with_wrong_types_only_raise_parse_error(sig: type[lmbridge.Signature],
                                                                   obj: dict[str, Any]) -> None:
    import json

    _parse_or_parse_error(lmbridge.JSONFormat(), sig, json.dumps(obj))


@pytest.mark.parametrize("sig", FUZZ_SIGNATURES[:3], ids=lambda s: s.spec()[:40])
@FUZZ
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_fuzz_chat_str_round_trip(sig: type[lmbridge.Signature], text: str) -> None:
    """Any single-line text value written by render_outputs comes back (stripped)."""
    fmt = lmbridge.ChatFormat()
    first = next(iter(sig.output_fields.values()))
    if first.annotation is not str:
        return
    line = " ".join(text.split())
    if not line:
        return
    values: dict[str, Any] = {first.name: line}
    if sig is Multi:
        values["answer"] = 7
    try:
        parsed = fmt.parse(sig, fmt.render_outputs(sig, values))
    except lmbridge.ParseError:
        # Only text that itself looks like a field label may fail to come back.
        assert ":" in line
        return
    if ":" not in line:
        assert parsed == values


@pytest.mark.parametrize("cls", [lmbridge.ChatFormat, lmbridge.JSONFormat])
def test_format_options_are_checked(cls: type[lmbridge.ChatFormat] | type[lmbridge.JSONFormat]) -> None:
    with pytest.raises(ValueError, match="demos"):
        cls(demos="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instructions"):
        cls(instructions="assistant")  # type: ignore[arg-type]


# -- issue 9: only ParseError escapes, and no value the text does not state ---------------------------

Pick = make_signature("question -> pick: Literal[1, 2, 3]")
EVERYTHING_JSON = ('{"summary": "s", "count": 1, "ratio": 0.5, "ok": true, "kind": "beta", "mood": "sad", '
                   '"tags": [], "scores": {"a": true}, "maybe": null, "point": {"x": 1, "y": 2}}')
Typed = make_signature("question -> flag: bool, n: float, note: Optional[str]")


@pytest.mark.parametrize("text", ["REASON\u0130NG: because\nAnswer: 4", "Rea\u017foning: because\nAnswer: 4"],
                         ids=["dotted-capital-i", "long-s"])
def test_chat_labels_with_case_folding_characters_do_not_raise_key_error(text: str) -> None:
    # re.I matches these letters to the label, but their lower() is not the label: was a KeyError.
    assert lmbridge.ChatFormat().parse(Multi, text) == {"reasoning": "because", "answer": 4}


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(), lmbridge.JSONFormat()], ids=["chat", "json"])
@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deeply_nested_json_is_a_parse_error_in_both_formats(fmt: PromptFormat, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    sig = make_signature("q -> items: list[Any]")
    for text in (nested, '{"items": ' + nested + "}", "Items: " + nested):
        with pytest.raises(lmbridge.ParseError):
            fmt.parse(sig, text)


@pytest.mark.parametrize(
    ("sig", "text"),
    [
        (QA, '{"answer": null}'),  # was the string "null"
        (Multi, '{"reasoning": "r", "answer": true}'),  # was 1
        (Multi, '{"reasoning": "r", "answer": 4.0}'),  # strict: a float is not an int in JSON
        (Pick, '{"pick": true}'),  # was 1 (pydantic's Literal compares True == 1)
        (Pick, '{"pick": 1.0}'),
        (Typed, '{"flag": 1, "n": 1, "note": null}'),  # was True
        (Typed, '{"flag": true, "n": NaN, "note": null}'),  # was nan
        (Typed, '{"flag": true, "n": Infinity, "note": null}'),
        (Typed, '{"flag": true, "n": 1e999, "note": null}'),  # overflows to inf
        (Everything, EVERYTHING_JSON),  # "scores": {"a": true} was {"a": 1}
    ],
)
def test_json_values_are_taken_strictly(sig: type[lmbridge.Signature], text: str) -> None:
    with pytest.raises(lmbridge.ParseError):
        lmbridge.JSONFormat().parse(sig, text)


def test_json_values_that_state_the_type_are_read() -> None:
    fmt = lmbridge.JSONFormat()
    assert fmt.parse(Typed, '{"flag": false, "n": 2, "note": null}') == {"flag": False, "n": 2.0, "note": None}
    assert fmt.parse(Pick, '{"pick": 2}') == {"pick": 2}
    assert fmt.parse(Pick, '{"pick": "3"}') == {"pick": 3}  # a string is read by the text rules
    # A JSON value that is not a string, for a text field, is the JSON the model wrote.
    assert fmt.parse(QA, '{"answer": true}') == {"answer": "true"}
    assert fmt.parse(QA, '{"answer": ["Paris"]}') == {"answer": '["Paris"]'}
    fixed = EVERYTHING_JSON.replace('{"a": true}', '{"a": 1}')
    assert fmt.parse(Everything, fixed)["scores"] == {"a": 1}


@pytest.mark.parametrize(
    ("sig", "text"),
    [
        (Pick, "10"), (Pick, "2.5"), (Multi, "so\nAnswer: 12abc"), (Multi, "so\nAnswer: 3,5"),
        (Typed, "yes\nN: nan\nNote: none"), (Typed, "10\nN: 1\nNote: none"),
    ],
)
def test_chat_values_not_stated_are_refused(sig: type[lmbridge.Signature], text: str) -> None:
    with pytest.raises(lmbridge.ParseError):
        lmbridge.ChatFormat().parse(sig, text)


# -- issue 24: numbers read exactly, type errors that say what was wrong --------------------------------

@pytest.mark.parametrize("digits", [309, 1000, 4300])
def test_chat_int_of_hundreds_of_digits_is_read_or_refused_never_an_overflow(digits: int) -> None:
    for spec in ("question -> n: int", "question -> n: Optional[int]"):
        sig = make_signature(spec)
        assert lmbridge.ChatFormat().parse(sig, "N: " + "7" * digits)["n"] == int("7" * digits)
        with pytest.raises(lmbridge.ParseError):
            lmbridge.ChatFormat().parse(sig, f"N: {'7' * digits}.5")


def test_chat_and_json_read_an_int_in_exponent_notation_exactly() -> None:
    sig = make_signature("question -> n: int")
    assert lmbridge.ChatFormat().parse(sig, "N: -7.194179821876166e+16")["n"] == -71941798218761660
    with pytest.raises(lmbridge.ParseError):
        lmbridge.ChatFormat().parse(sig, "N: 3.0000000000000001")
    with pytest.raises(lmbridge.ParseError):
        lmbridge.JSONFormat().parse(make_signature("question -> x: float"), '{"x": 1e-400}')


def test_json_type_error_names_the_field_the_type_expected_and_the_value_given() -> None:
    sig = make_signature("question -> n: int")
    with pytest.raises(lmbridge.ParseError) as caught:
        lmbridge.JSONFormat().parse(sig, '{"n": true}')
    message = str(caught.value)
    assert "'n'" in message and "integer" in message and "true" in message and "boolean" in message
    assert "errors.pydantic.dev" not in message
    nested = make_signature("question -> xs: list[int]")
    with pytest.raises(lmbridge.ParseError) as caught:
        lmbridge.JSONFormat().parse(nested, '{"xs": [1, "two"]}')
    assert "xs" in str(caught.value) and "1" in str(caught.value) and '"two"' in str(caught.value)


def test_a_prior_holding_a_huge_number_is_a_value_error_not_an_overflow() -> None:
    # Issue 24: a saved prior with a 400-digit probability raised OverflowError from math.isfinite.
    for p in (10**400, -(10**400)):
        with pytest.raises(ValueError, match="must be a number in"):
            lmbridge.ChatFormat(scoring="calibrated").with_prior(
                {"probabilities": {"yes": p, "no": 0.5}, "inputs": 4, "prompt": "abc"})
