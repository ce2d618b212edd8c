"""Reading typed values out of completion text, and writing values into prompts."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest
from helpers import Mood, Point

import lmbridge
from lmbridge.signatures._values import coerce, describe_type, render, render_input

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
    with pytest.raises(lmbridge.ParseError) as info:
        coerce(text, annotation, "myfield")
    assert info.value.field == "myfield"
    assert "myfield" in str(info.value)


def test_literal_does_not_match_inside_other_words() -> None:
    # "unpositive" must not count as "positive"; "non-negative" must not count as "negative"
    with pytest.raises(lmbridge.ParseError):
        coerce("unpositive", Label, "f")
    with pytest.raises(lmbridge.ParseError):
        coerce("non-negative", Label, "f")


@pytest.mark.parametrize("text", ["positively", "Positively", "neutralnone", "negativeattended\n subtreemodel",
                                  "positive1", "2negative", "unnegativeattended", "positive_ly"])
def test_a_label_glued_to_letters_or_digits_is_refused(text: str) -> None:
    # Issue 24: "positively" was read as positive and "neutralnone" as neutral: words the model did
    # not write as the label. A label counts only as a whole word.
    with pytest.raises(lmbridge.ParseError):
        coerce(text, Literal["positive", "negative", "neutral"], "f")


@pytest.mark.parametrize("text", ["Positive", "POSITIVE.", '"positive"', "**positive**", "(positive)",
                                  "positive\nThe review praises the film.", "Sentiment: positive!",
                                  "'positive',"])
def test_a_label_standing_as_a_whole_word_is_still_read(text: str) -> None:
    assert coerce(text, Literal["positive", "negative", "neutral"], "f") == "positive"


def test_literal_answer_on_the_first_line_wins_over_rambling_after_it() -> None:
    # A base model answers, then goes on echoing the prompt, which lists every option.
    rambling = "negative\nClassify the review.\nAnswer with exactly one of: negative, positive."
    assert coerce(rambling, Label, "f") == "negative"
    # A first line naming both options (or none) is still ambiguous.
    with pytest.raises(lmbridge.ParseError, match="several"):
        coerce("positive or negative?\nnegative", Label, "f")
    with pytest.raises(lmbridge.ParseError, match="several"):
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


# -- a value is read only when the text states it (issue 9) -----------------------------------------

Options = Literal["A", "B", "C", "D"]


@pytest.mark.parametrize(
    ("text", "annotation"),
    [
        ("10", Literal[1, 2, 3]),  # was read as 1: "1" glued to a digit
        ("2.5", Literal[1, 2, 3]),  # was read as 2: "2" is only the integer part of 2.5
        ("-2", Literal[1, 2, 3]),  # minus two is not two
        ("\u22122", Literal[1, 2, 3]),  # nor with the Unicode minus
        ("Both are wrong", Options),  # was read as B: a one-letter option is never read glued
        ("It is a tough one", Options),  # was read as A: the article "a" is not option A
        ("12abc", int),  # was 12: a word with letters in it is not a number
        ("3,5", float),  # was 35.0: a decimal comma is a locale form, not a number we can read
        ("3,5", int),
        ("1,234", float),  # 1234.0 or 1.234 depending on the locale: refused for a float
        ("50%", float),  # was 50.0: 50 or 0.5?
        ("\u0663", int),  # an Arabic-Indic digit: Python's int() takes it, the number rules do not
        ("nan", float),  # was nan
        ("inf", float),  # was inf
        ("-Infinity", float),
        ("1e400", float),  # overflows to infinity
        ("10", bool),  # was True: its first character is 1
        ("yes or no", bool),  # was True: the first line says both
        ("Yesterday", bool),
    ],
)
def test_values_the_text_does_not_state_are_refused(text: str, annotation: Any) -> None:
    with pytest.raises(lmbridge.ParseError):
        coerce(text, annotation, "f")


def test_the_unicode_minus_is_read_as_a_minus_never_dropped() -> None:
    assert coerce("\u22125", int, "f") == -5  # was 5
    assert coerce("It fell to \u22122.5 degrees", float, "f") == -2.5


@pytest.mark.parametrize(
    ("text", "annotation", "expected", "why"),
    [
        ("The answer is 42.", int, 42, "one number in a sentence; the full stop ends the sentence"),
        ("**42**", int, 42, "markdown emphasis around the number"),
        ("\\boxed{18}", int, 18, "LaTeX answer box: braces are not part of the number"),
        ("$12", int, 12, "a currency sign before the number"),
        ("1,234", int, 1234, "thousands in threes: the only integer reading of 1,234"),
        ("1,234.5", float, 1234.5, "grouping commas with a decimal point: no locale reads it otherwise"),
        ("8.0", int, 8, "a float token with no fraction states an integer"),
        (".5", float, 0.5, "the leading point belongs to the number"),
        ("1e3", float, 1000.0, "exponent form, as Python and JSON write it"),
        ("H2O boils at 100", int, 100, "a word with digits in it (H2O) is not a number"),
        ("B", Options, "B", "the option alone"),
        ("b", Options, "B", "the option alone, in either case"),
        ("The answer is B.", Options, "B", "a one-letter option standing as a word in its own case"),
        ("choice 3.", Literal[1, 2, 3], 3, "a number option at the end of a sentence"),
        ("Yes, it is.", bool, True, "a leading yes"),
        ("1", bool, True, "1 alone is the usual true"),
    ],
)
def test_lenient_readings_that_are_safe(text: str, annotation: Any, expected: Any, why: str) -> None:
    assert coerce(text, annotation, "f") == expected, why


def test_a_short_or_coarse_label_glued_to_a_word_is_refused() -> None:
    with pytest.raises(lmbridge.ParseError):
        coerce("NUMBER of people", Literal["NUM", "LOC", "HUM"], "f")  # was read as NUM
    with pytest.raises(lmbridge.ParseError):
        coerce("nothing", Literal["no", "ok"], "f")


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"a": ' * 5000 + "1" + "}" * 5000],
                         ids=["lists", "objects"])
def test_deeply_nested_json_is_a_parse_error(text: str) -> None:
    for annotation in (list[Any], dict[str, Any], Point):
        with pytest.raises(lmbridge.ParseError):
            coerce(text, annotation, "f")


def test_json_numbers_that_are_not_finite_are_refused() -> None:
    for text in ("[NaN]", "[Infinity]", "[1e400]", "[-Infinity]"):
        with pytest.raises(lmbridge.ParseError):
            coerce(text, list[float], "f")


def test_structured_values_are_checked_strictly() -> None:
    # pydantic strict mode, chosen on purpose: lax mode turns true into 1 and "3" into 3 silently.
    with pytest.raises(lmbridge.ParseError):
        coerce("[true, 2]", list[int], "f")
    with pytest.raises(lmbridge.ParseError):
        coerce('{"x": 1.5, "y": 2}', Point, "f")
    with pytest.raises(lmbridge.ParseError):
        coerce('{"x": "1", "y": 2}', Point, "f")
    assert coerce('{"x": 1, "y": 2}', Point, "f") == Point(x=1, y=2)
    assert coerce("[1, 2.5]", list[float], "f") == [1.0, 2.5]  # an int is a float in JSON too


def test_render_writes_dates_as_iso_8601() -> None:
    import datetime

    assert render(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert render(datetime.datetime(2024, 5, 1, 12, 30)) == "2024-05-01T12:30:00"
    assert render([datetime.date(2024, 5, 1)]) == '["2024-05-01"]'


# -- numbers, read exactly (issue 24) -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("-7.194179821876166e+16", -71941798218761660),  # was -71941798218761664: read through a float
    ("1e3", 1000), ("8.0", 8), ("-0.0", 0), ("12.500e1", 125), ("1,234", 1234),
    ("9" * 400, int("9" * 400)),  # was an OverflowError
    ("123456789012345678901234567890.0", 123456789012345678901234567890),
])
def test_an_int_is_read_exactly_as_the_text_states_it(text: str, expected: int) -> None:
    for annotation in (int, Optional[int]):  # noqa: UP045
        value = coerce(text, annotation, "f")
        assert type(value) is int and value == expected


@pytest.mark.parametrize("text", [
    "3.0000000000000001",  # was 3: the float nearest to it
    "2.5", "1e-400", "12345678901234567.5", "1e5000",  # 5001 digits: past the int-string limit
    "1" * 4301, "-" + "9" * 5000,
])
def test_a_number_that_states_no_readable_integer_is_a_parse_error(text: str) -> None:
    for annotation in (int, Optional[int]):  # noqa: UP045
        with pytest.raises(lmbridge.ParseError):
            coerce(text, annotation, "f")


@pytest.mark.parametrize("text", ["1e400", "-1e309", "9" * 400, "1e-400", "-2.5e-330"])
def test_a_float_no_float_can_hold_is_a_parse_error(text: str) -> None:
    # Too large would read as inf, too small (and not zero) as 0.0: neither is what the text says.
    with pytest.raises(lmbridge.ParseError):
        coerce(text, float, "f")
    assert coerce("0.0e-400", float, "f") == 0.0


def test_a_json_integer_too_large_for_a_float_field_is_a_parse_error() -> None:
    from lmbridge.signatures import validate

    with pytest.raises(lmbridge.ParseError):
        validate(10**400, float, "f")  # was an OverflowError
    with pytest.raises(lmbridge.ParseError):
        validate([1.5, 10**400], list[float], "f")  # pydantic would read inf
    assert validate(10**400, int, "f") == 10**400
