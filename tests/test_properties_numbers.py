"""Property tests of numbers and labels (issue 24), generated rather than listed: numbers in every
notation and size, and labels glued to letters and digits, read by every format for every numeric and
label type. Two checks on each generated completion:

* nothing escapes but ``ParseError``;
* a value read is stated in the text: an ``int`` equals, exactly, the decimal a number token of the
  text writes (no float in between); a ``float`` is the nearest float to such a token, and finite; a
  label stands in the text as a whole word.

The oracle reads the text with ``decimal.Decimal`` and a regular expression of its own, not with the
reader under test. LMBRIDGE_PROPERTY_EXAMPLES sets the examples per test (``benchmarks/properties.py``
runs tens of thousands); the default keeps the suite fast.
"""

from __future__ import annotations

import json
import math
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.formats._base import PromptFormat
from lmbridge.signatures._signature import make_signature

EXAMPLES = int(os.environ.get("LMBRIDGE_PROPERTY_EXAMPLES") or os.environ.get("LMBRIDGE_FUZZ_EXAMPLES") or "40")
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NUMERIC: dict[str, Any] = {"int": int, "optional-int": Optional[int], "float": float,  # noqa: UP045
                           "list-int": list[int], "list-float": list[float]}
LABELS = ("positive", "negative", "neutral")
LABEL_TYPES: dict[str, Any] = {"literal-str": Literal["positive", "negative", "neutral"],
                               "literal-letter": Literal["A", "B", "C", "D"], "literal-num": Literal[1, 2, 3]}
FORMATS: list[PromptFormat] = [lmbridge.ChatFormat(), lmbridge.JSONFormat(), lmbridge.TextFormat()]


def _signature(annotation: Any) -> type[lmbridge.Signature]:
    return make_signature("question -> value: T", custom_types={"T": annotation})


SIGNATURES = {k: _signature(t) for k, t in {**NUMERIC, **LABEL_TYPES}.items()}

# -- numbers in every notation and size ------------------------------------------------------------------

UNICODE_DIGITS = "\u0660\u0661\u0663\u06f5\u0966\u09e7\uff10\uff19\u00b2\u00b9\u2463\U0001d7d8"
DIGITS = st.one_of(
    st.text("0123456789", min_size=1, max_size=20),
    st.integers(300, 330).map(lambda n: "9" * n),  # around a float's range: 309 digits
    st.integers(4290, 4310).map(lambda n: "1" + "0" * (n - 1)),  # around the int-string limit
    st.sampled_from(["0", "00", "007", "9007199254740993", "18446744073709551616"]),
)
FRACTION = st.one_of(st.just(""), st.just("."), st.text("0123456789", min_size=1, max_size=25).map(lambda d: "." + d),
                     st.integers(1, 40).map(lambda n: "." + "0" * n),
                     st.integers(1, 20).map(lambda n: "." + "0" * n + "1"))
EXPONENT = st.one_of(st.just(""), st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
                                            st.one_of(st.integers(0, 30), st.integers(290, 420),
                                                      st.integers(4000, 5000), st.just(999999999))
                                            ).map(lambda t: f"{t[0]}{t[1]}{t[2]}"))
SIGN = st.sampled_from(["", "", "-", "+", "\u2212", "--", "+-"])


@st.composite
def number_text(draw: st.DrawFn) -> str:
    """A number as a model might write one: signs, digits of any length, fraction, exponent, and
    sometimes underscores, grouping commas, unicode digits or a currency sign."""
    digits = draw(DIGITS)
    twist = draw(st.integers(0, 9))
    if twist == 0 and len(digits) > 3:  # underscores, as Python (but no model prose) writes them
        digits = digits[:1] + "_" + digits[1:]
    elif twist == 1 and len(digits) > 3:  # grouping commas, in threes or not
        cut = draw(st.integers(1, min(3, len(digits) - 1)))
        digits = digits[:cut] + "," + digits[cut:]
    elif twist == 2:  # a digit from another script
        at = draw(st.integers(0, len(digits)))
        digits = digits[:at] + draw(st.sampled_from(UNICODE_DIGITS)) + digits[at:]
    prefix = draw(st.sampled_from(["", "", "$", "\u20ac", "~"]))
    return prefix + draw(SIGN) + digits + draw(FRACTION) + draw(EXPONENT)


PROSE = st.sampled_from(["", "", "The answer is ", "about ", "Value: ", "**", "n = ", "(", "roughly "])
AFTER = st.sampled_from(["", "", ".", "!", " apples", "**", ")", "\n", " or so", "%"])
NUMBER_COMPLETIONS = st.one_of(
    st.tuples(PROSE, number_text(), AFTER).map("".join),
    st.lists(number_text(), min_size=2, max_size=3).map(", ".join),
    st.lists(number_text(), min_size=1, max_size=3).map(lambda ns: "[" + ", ".join(ns) + "]"),
)


def _completion(fmt: PromptFormat, text: str, as_json_number: bool) -> str:
    """The completion text for a format: a JSON answer for JSONFormat (the text written raw as a JSON
    number, or as a string), the text itself for the others."""
    if fmt.name != "json":
        return text
    return '{"value": ' + text + "}" if as_json_number else json.dumps({"value": text}, ensure_ascii=False)


# -- the oracle --------------------------------------------------------------------------------------------

_GROUPED = re.compile(r"[-+\u2212]?(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_PLAIN = re.compile(r"[-+\u2212]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _decimals_in(text: str) -> list[Decimal]:
    """Every number the text writes: with commas read as grouping ("1,234") and as separators ("[0,100]")."""
    found = []
    for pattern in (_GROUPED, _PLAIN):
        for m in pattern.finditer(text):
            token = m.group().replace(",", "").replace("\u2212", "-").rstrip(".")
            try:
                found.append(Decimal(token))
            except InvalidOperation:
                pass
    return found


def _number_stated(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return Decimal(value) in _decimals_in(text)
    if isinstance(value, float):
        # the nearest float to a written number, and never a non-zero number read as 0.0
        return math.isfinite(value) and any(float(d) == value and (value != 0 or d == 0) for d in _decimals_in(text))
    return False


def _check_numbers(kind: str, fmt: PromptFormat, text: str) -> None:
    try:
        value = fmt.parse(SIGNATURES[kind], text)["value"]
    except lmbridge.ParseError:
        return
    leaves = value if isinstance(value, list) else [value]
    for leaf in leaves:
        if leaf is None and kind == "optional-int":
            continue
        assert _number_stated(leaf, text), f"{kind}: read {leaf!r}, which {text[:160]!r} does not state"
        wanted = float if "float" in kind else int
        assert type(leaf) is wanted, f"{kind}: read a {type(leaf).__name__}"


@pytest.mark.parametrize("kind", list(NUMERIC))
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@PROPERTY
@given(text=NUMBER_COMPLETIONS, as_json_number=st.booleans())
def test_numbers_in_every_notation_are_read_exactly_or_refused(kind: str, fmt: PromptFormat, text: str,
                                                               as_json_number: bool) -> None:
    _check_numbers(kind, fmt, _completion(fmt, text, as_json_number))


# -- labels glued to letters and digits --------------------------------------------------------------------

# Letters and digits, from several scripts. Not "_": like "*", it is Markdown emphasis ("_positive_"),
# which the reader strips around an answer.
GLUE_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\u00e9\u00df\u0663\u4e2d"
GLUE = st.text(st.sampled_from(GLUE_CHARACTERS), min_size=1, max_size=6)
CASE = st.sampled_from([str.lower, str.upper, str.title])


@st.composite
def glued_label(draw: st.DrawFn) -> tuple[str, str]:
    """A label with letters or digits glued before it, after it, or both: one word that is no label."""
    kind = draw(st.sampled_from(list(LABEL_TYPES)))
    options = [str(o) for o in LABEL_TYPES[kind].__args__]
    label = draw(CASE)(draw(st.sampled_from(options)))
    side = draw(st.sampled_from(["before", "after", "both"]))
    before = draw(GLUE) if side != "after" else ""
    after = draw(GLUE) if side != "before" else ""
    return kind, before + label + after


def _whole_word(label: str, text: str) -> bool:
    """The label in the text with no letter or digit (of any script) touching it."""
    flags = re.I if len(label) > 1 else 0
    return bool(re.search(rf"(?<![^\W_]){re.escape(label)}(?![^\W_])", text, flags))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@PROPERTY
@given(glued=glued_label(), before=st.sampled_from(["", "Answer: ", '"', "**", "The label is "]),
       after=st.sampled_from(["", ".", '"', "**", "\n", "!"]))
def test_a_label_glued_to_letters_or_digits_is_never_read(fmt: PromptFormat, glued: tuple[str, str],
                                                          before: str, after: str) -> None:
    kind, word = glued
    text = before + word + after
    options = [str(o).lower() for o in LABEL_TYPES[kind].__args__]
    completion = json.dumps({"value": text}) if fmt.name == "json" else text
    try:
        value = fmt.parse(SIGNATURES[kind], completion)["value"]
    except lmbridge.ParseError:
        return
    # Read only when some option stands in the text as a whole word (the glued word itself may be
    # an option, or a prose word such as "The" may stand apart from the glued one).
    assert _whole_word(str(value), text), f"{kind}: read {value!r} from the glued word {word!r}"
    assert word.lower() in options or any(_whole_word(o, before + after) for o in options), (kind, word, value)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@PROPERTY
@given(label=st.sampled_from(LABELS), case=CASE,
       wrap=st.sampled_from([("", ""), ('"', '"'), ("**", "**"), ("(", ")"), ("", "."), ("'", "',"), ("", "!"),
                             ("Sentiment: ", ""), ("", "\nbecause the review says so")]))
def test_a_label_standing_as_a_whole_word_is_read(fmt: PromptFormat, label: str, case: Any,
                                                  wrap: tuple[str, str]) -> None:
    text = wrap[0] + case(label) + wrap[1]
    completion = json.dumps({"value": text}) if fmt.name == "json" else text
    assert fmt.parse(SIGNATURES["literal-str"], completion)["value"] == label


def test_the_oracle_can_fail() -> None:
    # Each of these is a value the reader returned before issue 24.
    assert not _number_stated(-71941798218761664, "-7.194179821876166e+16")
    assert not _number_stated(3, "3.0000000000000001")
    assert not _number_stated(math.inf, "1e400")
    assert not _number_stated(0.0, "1e-400")
    assert _number_stated(-71941798218761660, "-7.194179821876166e+16") and _number_stated(0.1, "0.1")
    assert not _whole_word("positive", "positively") and not _whole_word("neutral", "neutralnone")
