"""Reading typed values out of completion text, and writing values into prompts."""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pydantic
import pytest

import bridge
from bridge.values import coerce, describe_type, render, render_input


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Point(pydantic.BaseModel):
    x: int
    y: int


Label = Literal["positive", "negative"]


@pytest.mark.parametrize(
    ("text", "annotation", "expected"),
    [
        ("  hello world \n", str, "hello world"),
        ("42", int, 42),
        ("The answer is 42.", int, 42),
        ("1,234", int, 1234),
        ("$12", int, 12),
        ("-7", int, -7),
        ("3.5", float, 3.5),
        ("about 0.25 of it", float, 0.25),
        ("8.0", int, 8),
        ("yes", bool, True),
        ("No, it is not.", bool, False),
        ("True", bool, True),
        ("positive", Label, "positive"),
        ("Positive.", Label, "positive"),
        ("**negative**", Label, "negative"),
        ("The sentiment is negative", Label, "negative"),
        ("happy", Mood, Mood.HAPPY),
        ("SAD", Mood, Mood.SAD),
        ('["a", "b"]', list[str], ["a", "b"]),
        ("a, b, c", list[str], ["a", "b", "c"]),
        ("- one\n- two", list[str], ["one", "two"]),
        ("1. one\n2. two", list[str], ["one", "two"]),
        ('```json\n[1, 2]\n```', list[int], [1, 2]),
        ('{"a": 1}', dict[str, int], {"a": 1}),
        ('Here: {"x": 1, "y": 2} done', Point, Point(x=1, y=2)),
        ("none", Optional[int], None),  # noqa: UP045
        ("N/A", Optional[int], None),  # noqa: UP045
        ("5", Optional[int], 5),  # noqa: UP045
    ],
)
def test_coerce_reads_values(text: str, annotation: Any, expected: Any) -> None:
    assert coerce(text, annotation, "f") == expected


@pytest.mark.parametrize(
    ("text", "annotation"),
    [
        ("no number here", int),
        ("3 or 4", int),
        ("2.5", int),
        ("maybe", bool),
        ("neutral", Label),
        ("positive and negative", Label),
        ("angry", Mood),
        ("not json at all", dict[str, int]),
        ('{"x": "one", "y": 2}', Point),
        ("[1, 2", list[int]),
    ],
)
def test_coerce_raises_parse_error_naming_the_field(text: str, annotation: Any) -> None:
    with pytest.raises(bridge.ParseError) as info:
        coerce(text, annotation, "myfield")
    assert info.value.field == "myfield"
    assert "myfield" in str(info.value)


def test_literal_does_not_match_inside_other_words() -> None:
    # "unpositive" must not count as "positive"; "non-negative" must not count as "negative"
    with pytest.raises(bridge.ParseError):
        coerce("unpositive", Label, "f")
    with pytest.raises(bridge.ParseError):
        coerce("non-negative", Label, "f")


def test_literal_glued_to_run_on_text_at_the_start_is_read() -> None:
    # Gemma 3 base answers "negative" and runs straight on into another token: "negativeattended".
    assert coerce("negativeattended\n subtreemodel", Label, "f") == "negative"
    assert coerce("Positively", Label, "f") == "positive"
    # Only at the very start, and only when no option stands as a whole word anywhere.
    with pytest.raises(bridge.ParseError):
        coerce("unnegativeattended", Label, "f")
    assert coerce("positivenot\nnegative", Label, "f") == "negative"


def test_literal_answer_on_the_first_line_wins_over_rambling_after_it() -> None:
    # A base model answers, then goes on echoing the prompt, which lists every option.
    rambling = "negative\nClassify the review.\nAnswer with exactly one of: negative, positive."
    assert coerce(rambling, Label, "f") == "negative"
    # A first line naming both options (or none) is still ambiguous.
    with pytest.raises(bridge.ParseError, match="several"):
        coerce("positive or negative?\nnegative", Label, "f")
    with pytest.raises(bridge.ParseError, match="several"):
        coerce("Hmm.\nnegative, positive", Label, "f")


def test_literal_with_numbers_and_bools() -> None:
    assert coerce("2", Literal[1, 2, 3], "f") == 2
    assert coerce("choice 3", Literal[1, 2, 3], "f") == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [("text", "text"), (True, "yes"), (False, "no"), (3, "3"), (2.5, "2.5"), (Mood.SAD, "sad"),
     (["a", 1], '["a", 1]'), ({"k": [1]}, '{"k": [1]}'), (Point(x=1, y=2), '{"x": 1, "y": 2}'),
     (None, "null")],
)
def test_render(value: Any, expected: str) -> None:
    assert render(value) == expected


@pytest.mark.parametrize(
    ("value", "annotation"),
    [("hi", str), (7, int), (-2.5, float), (True, bool), (False, bool), ("negative", Label),
     (Mood.HAPPY, Mood),
     (["x", "y, z"], list[str]), ({"a": 1}, dict[str, int]), (Point(x=3, y=4), Point), (None, Optional[int])],  # noqa: UP045
)
def test_render_then_coerce_round_trips(value: Any, annotation: Any) -> None:
    assert coerce(render(value), annotation, "f") == value


def test_render_input_numbers_passages() -> None:
    assert render_input(["first", "second"]) == "[1] first\n[2] second"
    assert render_input([1, 2]) == "[1, 2]"


def test_describe_type_tells_the_model_what_to_write() -> None:
    assert describe_type(str) == ""
    assert "positive" in describe_type(Label) and "negative" in describe_type(Label)
    assert "yes or no" in describe_type(bool)
    assert "integer" in describe_type(int)
    assert "JSON list" in describe_type(list[int])
    assert "none" in describe_type(Optional[int])  # noqa: UP045
