"""json_text: the one finder of JSON in model text, shared by JSONFormat, typed values and ReAct.

Where a completion's JSON is taken from (the whole text, a fence, the first value in prose), which
of several wins (the first), and what is never read (an object mended or cut off, an object nested
inside a broken one)."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
from lmbridge.signatures._json_text import find_json, read_partial_object
from lmbridge.signatures._signature import make_signature
from lmbridge.signatures._values import coerce

OBJECT = '{"answer": 4, "why": "two and two"}'


@pytest.mark.parametrize(("text", "kind", "expected"), [
    (OBJECT, dict, {"answer": 4, "why": "two and two"}),
    ("  [1, 2]\n", list, [1, 2]),
    ('"just text"', None, "just text"),
    (" null ", None, None),
    ("-3", None, -3),
    (f"Sure!\n```json\n{OBJECT}\n```\nHope this helps.", dict, {"answer": 4, "why": "two and two"}),
    (f"```JSON\n{OBJECT}```", dict, {"answer": 4, "why": "two and two"}),
    ("Here:\n```\n[3, 4]\n```", list, [3, 4]),
    (f"The answer is {OBJECT}. Let me know!", dict, {"answer": 4, "why": "two and two"}),
    ("Options [a, b] were given; I pick {\"x\": 1}", dict, {"x": 1}),  # an object is looked for: [ is prose
    ("Options [a, b] were given; I pick {\"x\": 1}", None, {"x": 1}),  # [a, b] is no JSON: the { is next
    ('{"code": "```json\\n[1]\\n```"}', dict, {"code": "```json\n[1]\n```"}),  # a fence inside a value
    ('```json\n{"note": "```"}\n```', dict, {"note": "```"}),  # the fence regex stops early; prose finds it
], ids=["whole-object", "whole-list", "whole-string", "whole-null", "whole-number", "fenced-with-prose",
        "fence-upper-case", "bare-fence",
        "prose-around", "kind-object", "either-kind", "fence-in-a-string", "backticks-in-a-fenced-string"])
def test_the_json_a_completion_states_is_found(text: str, kind: Any, expected: Any) -> None:
    assert find_json(text, kind) == expected


def test_of_several_values_the_first_wins() -> None:
    # A model that runs on into another example: the first object is its answer.
    assert find_json('{"a": 1}\n{"a": 2}', dict) == {"a": 1}
    assert find_json('Answer: {"a": 1} and later {"a": 2}', dict) == {"a": 1}
    assert find_json('```json\n{"a": 1}\n```\n```json\n{"a": 2}\n```', dict) == {"a": 1}
    # A fence that holds no JSON is passed over for the next one.
    assert find_json('```json\n{"a": 1,,}\n```\n```json\n{"a": 2}\n```', dict) == {"a": 2}


def test_a_whole_text_of_another_kind_is_the_models_statement() -> None:
    """JSON of the wrong kind is returned, for the caller's type check to refuse, rather than a value
    of the right kind hunted for inside it (the list nested in an object is not the answer)."""
    assert find_json("[1, 2]", dict) == [1, 2]
    assert find_json('{"items": [1, 2]}', list) == {"items": [1, 2]}
    with pytest.raises(lmbridge.ParseError):
        coerce('{"items": [1, 2]}', list[int], "f")
    with pytest.raises(lmbridge.ParseError):
        lmbridge.JSONFormat().parse(make_signature("q -> items: list[int]"), "[1, 2]")


@pytest.mark.parametrize("text", [
    '{"answer": 4, "why": "two and',  # cut off by the token limit
    '{"answer": {"value": 4}, "why": "cut',  # cut off around a complete inner object
    '{"answer": 4,}',  # trailing comma
    "{'answer': 4}",  # Python's quotes
    '{"answer": NaN}', '{"answer": Infinity}', '{"answer": 1e400}',  # no finite number
    '{"answer": ' * 3000 + "1" + "}" * 3000,  # nested too deeply for Python
    "Note {this}. Then {\"answer\": 4}",  # the first { opens no JSON: the rest of the prose is not searched
    "no json at all",
], ids=["truncated", "truncated-around-inner", "trailing-comma", "single-quotes", "nan", "infinity",
        "overflow", "too-deep", "broken-first", "none"])
def test_nothing_is_mended_or_taken_from_inside_broken_json(text: str) -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        find_json(text, dict)
    with pytest.raises(lmbridge.ParseError):
        lmbridge.JSONFormat().parse(make_signature("q -> answer: int"), text)


@pytest.mark.parametrize("text", [
    OBJECT, f"```json\n{OBJECT}\n```", f"Sure: {OBJECT} {{\"answer\": 5}}", '[{"answer": 4}]',
    '{"answer": 4.0}', "Answer: 4", '{"answer": 4', "",
])
def test_json_format_and_typed_values_read_the_same_object(text: str) -> None:
    """One finder: JSONFormat's object and a dict field's value come from the same place, or both fail."""
    sig = make_signature("q -> answer: Any")
    try:
        from_format: Any = lmbridge.JSONFormat().parse(sig, text)["answer"]
    except lmbridge.ParseError:
        from_format = "refused"
    try:
        from_values: Any = coerce(text, dict[str, Any], "f")["answer"]
    except lmbridge.ParseError:
        from_values = "refused"
    except KeyError:
        from_values = "no key"
    assert from_format == from_values


def test_streaming_reads_the_unfinished_object_and_knows_when_it_is_closed() -> None:
    assert read_partial_object("Sure, here") == (None, False)
    assert read_partial_object('{"answer": "Par') == ({"answer": "Par"}, False)
    assert read_partial_object('```json\n{"answer": "Paris", "n": tr') == ({"answer": "Paris"}, False)
    assert read_partial_object('{"answer": "Paris", "n": 4}') == ({"answer": "Paris", "n": 4}, True)
    # closed, and the model ran on: the object is complete
    assert read_partial_object('{"answer": "Paris"} and more') == ({"answer": "Paris"}, True)
    assert read_partial_object('{"answer": NaN') == (None, False)
