"""Property tests of parsing (issue 9): for every type the signature language allows, in both formats,
adversarial completions raise nothing but ParseError, and any value read is stated in the text.

"Stated" is checked by an oracle independent of the reader: a number read appears in the text as a
number token, an option read appears as written, a bool read appears as a yes/true (no/false) word,
a None read appears as a none word, and every leaf of a structured value appears likewise.
LMBRIDGE_PROPERTY_EXAMPLES (or the older LMBRIDGE_FUZZ_EXAMPLES) raises the example count for a deeper
hunt (``benchmarks/properties.py``); the default keeps the suite fast.
"""

from __future__ import annotations

import json
import math
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Optional

import pydantic
import pytest
from helpers import Mood
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.formats._base import PromptFormat
from lmbridge.signatures._signature import make_signature
from lmbridge.signatures._values import to_jsonable


class Inner(pydantic.BaseModel):
    x: int
    ok: bool


class Outer(pydantic.BaseModel):
    name: str
    inner: Inner
    scores: list[float]
    tag: Literal["alpha", "beta"]
    maybe: Optional[int] = None  # noqa: UP045


TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "literal-str": Literal["positive", "negative", "neutral"],
    "literal-letter": Literal["A", "B", "C", "D"],
    "literal-num": Literal[1, 2, 3],
    "enum": Mood,
    "list-int": list[int],
    "list-str": list[str],
    "dict": dict[str, int],
    "optional-int": Optional[int],  # noqa: UP045
    "model": Outer,
}
SIGNATURES = {k: make_signature("question -> value: T", custom_types={"T": t}) for k, t in TYPES.items()}
FORMATS: list[PromptFormat] = [lmbridge.ChatFormat(), lmbridge.JSONFormat()]
EXAMPLES = os.environ.get("LMBRIDGE_PROPERTY_EXAMPLES") or os.environ.get("LMBRIDGE_FUZZ_EXAMPLES") or "30"
FUZZ = settings(max_examples=int(EXAMPLES), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- the adversarial text ------------------------------------------------------------------------------

# No backslash, quote or control character: JSON then writes every string as it is, so that a value
# read from a JSON string also appears in the text verbatim (the oracle reads the raw text).
SAFE = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='\\"')
TRICKY = [
    "10", "2.5", "-2", "\u22125", "\u22122", "3,5", "1,234", "1,234.5", "12abc", "$12", "50%", ".5", "8.0",
    "1e3", "1e400", "-1e400", "nan", "NaN", "inf", "-Infinity", "\u0663", "\u00bd", "0x10", "1_000", "4/5",
    "2+2=4", "yes", "no", "Yes or no", "true", "false", "1", "0", "y", "n", "none", "null", "N/A", "nothing",
    "positive", "Negative", "neutral", "negativeattended", "positively", "unpositive", "non-negative",
    "A", "B", "a", "Both are wrong", "It is a tough one", "C.", "(D)", "happy", "SAD", "alpha", "beta",
    "Value:", "\nValue:", "VALUE :", "**Value:**", "## Value:", "\nQuestion:", "VALUE\u0130:", "Valu\u017f:",
    "\u017f", "\u0130", "```", "```json", "{", "}", "[", "]", ",", ":", '"', "[" * 3000, "{" * 3000,
    "\u00a0", "\u2028", "\x00", "\n", " ", "",
]
NUMBERS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**7, 10**7).map(lambda i: f"{i:,}"),
    st.floats(-1e6, 1e6).map(lambda f: f"{f:.2f}".replace(".", ",")),
)
PIECES = st.one_of(st.sampled_from(TRICKY), NUMBERS, st.text(SAFE, max_size=12))
SEPARATORS = st.sampled_from(["", " ", "\n", ", ", ". ", ": ", "**", "\n\n", " or "])
TEXT = st.lists(st.tuples(PIECES, SEPARATORS), max_size=8).map(lambda ps: "".join(p + s for p, s in ps))

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(SAFE, max_size=10), st.sampled_from(["positive", "A", "happy", "alpha", "beta", "1", "\u22125", "yes"]),
)
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(SAFE, max_size=6), inner, max_size=4), max_leaves=10)
OUTER_LIKE = st.fixed_dictionaries(
    {"name": LEAVES, "inner": st.fixed_dictionaries({"x": LEAVES, "ok": LEAVES}),
     "scores": st.lists(LEAVES, max_size=3), "tag": st.sampled_from(["alpha", "beta", "Alpha", "gamma", 1]),
     "maybe": LEAVES})
VALUES = st.one_of(JSON_VALUES, OUTER_LIKE, st.dictionaries(st.text(SAFE, max_size=4), LEAVES, max_size=3))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)  # NaN and Infinity are written as such: the reader refuses them


JSON_TEXT = st.one_of(
    VALUES.map(lambda v: _dumps({"value": v})),
    st.tuples(TEXT, VALUES, TEXT).map(lambda t: f"{t[0]}```json\n{_dumps({'value': t[1]})}\n```{t[2]}"),
    TEXT.map(lambda t: _dumps({"value": t})),
    TEXT,
)
CHAT_TEXT = st.one_of(TEXT, VALUES.map(_dumps), st.tuples(TEXT, TEXT).map(lambda t: f"{t[0]}\nValue: {t[1]}"))

# -- the oracle: is a value read stated in the text? ------------------------------------------------------

_NUMBER = re.compile(r"[-+\u2212]?(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_TRUE = re.compile(r"(?<![^\W_])(?:yes|true|correct|y|1)(?![^\W_])", re.I)
_FALSE = re.compile(r"(?<![^\W_])(?:no|false|incorrect|n|0)(?![^\W_])", re.I)


def _numbers_in(text: str) -> set[Decimal]:
    """Every number token of the text, as the exact decimal it writes."""
    found = set()
    for m in _NUMBER.finditer(text):
        token = m.group().replace(",", "").replace("\u2212", "-").rstrip(".")
        try:
            found.add(Decimal(token))
        except InvalidOperation:
            pass
    return found


def _number_stated(leaf: int | float, text: str) -> bool:
    """An int is stated when a token writes exactly it; a float when a token's nearest float is it."""
    if isinstance(leaf, float):
        return math.isfinite(leaf) and any(float(d) == leaf for d in _numbers_in(text))
    return Decimal(leaf) in _numbers_in(text)


OPTION_WORDS = {"positive", "negative", "neutral", "a", "b", "c", "d", "happy", "sad", "alpha", "beta"}


def _stated(value: Any, text: str) -> bool:
    leaf = to_jsonable(value)
    if isinstance(leaf, bool):
        return bool((_TRUE if leaf else _FALSE).search(text))
    if isinstance(leaf, (int, float)):
        return _number_stated(leaf, text)
    if isinstance(leaf, str):
        if len(leaf) > 2 and leaf.lower() not in OPTION_WORDS:  # free text: anywhere in the text
            return leaf.lower() in text.lower()
        # a label, as a whole word (issue 24: "positively" is not "positive")
        return bool(re.search(rf"(?<![^\W_]){re.escape(leaf)}(?![^\W_])", text, re.I))
    if leaf is None:  # a none word, or an empty JSON string (documented: empty is None)
        return any(w in text.lower() for w in ("none", "null", "n/a", "na", "nothing", '""'))
    if isinstance(leaf, list):
        return all(_stated(v, text) for v in leaf)
    if isinstance(leaf, dict):
        return all(str(k) in text and (v is None or _stated(v, text)) for k, v in leaf.items())
    return False


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _haystack(text: str) -> str:
    """The text, plus every JSON string in it decoded: a value written with escapes is still stated."""
    decoded = []
    for m in _JSON_STRING.finditer(text):
        try:
            found = json.loads(m.group())
        except ValueError:
            continue
        # a string of only whitespace is empty, as the documented rule reads it (empty is None)
        decoded.append('""' if isinstance(found, str) and found and not found.strip() else found)
    return "\n".join([text, *decoded])


def _check(fmt: PromptFormat, kind: str, text: str) -> None:
    sig = SIGNATURES[kind]
    try:
        values = fmt.parse(sig, text)
    except lmbridge.ParseError:
        return
    value = values["value"]
    assert _stated(value, _haystack(text)), f"{kind}: read {value!r}, which {text[:200]!r} does not state"
    assert isinstance(value, TYPES[kind]) if isinstance(TYPES[kind], type) else True


@pytest.mark.parametrize("kind", list(TYPES))
@FUZZ
@given(text=CHAT_TEXT)
def test_chat_format_reads_only_stated_values_and_raises_only_parse_error(kind: str, text: str) -> None:
    _check(lmbridge.ChatFormat(), kind, text)


@pytest.mark.parametrize("kind", list(TYPES))
@FUZZ
@given(text=JSON_TEXT)
def test_json_format_reads_only_stated_values_and_raises_only_parse_error(kind: str, text: str) -> None:
    _check(lmbridge.JSONFormat(), kind, text)


@pytest.mark.parametrize("kind", ["int", "float", "literal-num", "literal-letter", "bool"])
@FUZZ
@given(pieces=st.lists(st.sampled_from(TRICKY[:60]), min_size=1, max_size=3), sep=SEPARATORS)
def test_tricky_tokens_alone_or_together(kind: str, pieces: list[str], sep: str) -> None:
    text = sep.join(pieces)
    for fmt in FORMATS:
        _check(fmt, kind, text if fmt.name == "chat" else _dumps({"value": text}))


def test_the_oracle_catches_what_the_old_reader_got_wrong() -> None:
    # The oracle must be able to fail: each of these is a value the old reader returned.
    assert not _stated(1, "10")
    assert not _stated(2, "2.5")
    assert not _stated(5, "\u22125")
    assert not _stated(35.0, "3,5 or so") or _numbers_in("3,5") == {Decimal(35)}  # the oracle reads 3,5 as 35 too
    assert not _stated(-71941798218761664, "-7.194179821876166e+16")  # read through a float (issue 24)
    assert not _stated(3, "3.0000000000000001")
    assert not _stated("positive", "positively") and not _stated("neutral", "neutralnone")
    assert not _stated(math.nan, "nan")
    assert not _stated(True, "10")
    assert not _stated("B", "Both are wrong")
    assert _stated(-5, "\u22125") and _stated(1234, "1,234") and _stated(0.5, ".5") and _stated("B", "(B)")
