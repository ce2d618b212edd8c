"""Property tests of the things a user defines (issue 9): adversarial signature strings raise nothing but
SignatureError, and adversarial tool definitions nothing but ToolError. What is accepted works: a
signature made can be prompted for in both formats, and a tool built can describe and validate.
"""

from __future__ import annotations

import datetime
import inspect
import keyword
import os
from collections.abc import Callable
from typing import Any, Literal, Optional

import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmbridge
from lmbridge.signatures._signature import make_signature
from lmbridge.signatures._spec import check_type

EXAMPLES = os.environ.get("LMBRIDGE_PROPERTY_EXAMPLES") or os.environ.get("LMBRIDGE_FUZZ_EXAMPLES") or "60"
FUZZ = settings(max_examples=int(EXAMPLES), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# -- signatures ------------------------------------------------------------------------------------

NAMES = st.one_of(
    st.sampled_from(["question", "answer", "context", "instructions", "input_fields", "output_fields", "_x",
                     "class", "\u017f", "\u0130d", "1st", "a b", "", "x" * 300, "fields", "spec"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
)
TYPE_NAMES = ["str", "int", "float", "bool", "list", "dict", "tuple", "List", "Dict", "Tuple", "Any", "Optional",
              "Union", "Literal", "None", "set", "object", "eval", "__import__"]


def _type_text(draw: Callable[..., Any], depth: int = 0) -> str:
    choice = draw(st.integers(0, 7 if depth < 4 else 1))
    if choice <= 1:
        return str(draw(st.sampled_from(TYPE_NAMES)))
    if choice == 2:
        args: list[str] = draw(st.lists(st.one_of(st.sampled_from(["'a'", "1", "True", "1.5", "None", "b''", "x"]),
                                       st.text(max_size=3).map(repr)), max_size=4))
        return "Literal[" + ", ".join(args) + "]"
    if choice == 3:
        return " | ".join(_type_text(draw, depth + 1) for _ in range(draw(st.integers(1, 4))))
    if choice == 4:
        opened, closed = int(draw(st.integers(1, 40))), int(draw(st.integers(0, 40)))
        return "list[" * opened + "int" + "]" * closed
    if choice == 5:
        return str(draw(st.text(max_size=12)))
    outer = draw(st.sampled_from(["list", "dict", "tuple", "Optional", "Union", "Dict", "set", "Any", "str"]))
    inner = ", ".join(_type_text(draw, depth + 1) for _ in range(draw(st.integers(0, 3))))
    return str(outer) + "[" + inner + "]"


@st.composite
def specs(draw: Callable[..., Any]) -> str:
    def side() -> str:
        fields = []
        for _ in range(draw(st.integers(0, 3))):
            name = draw(NAMES)
            fields.append(f"{name}: {_type_text(draw)}" if draw(st.booleans()) else name)
        return str(draw(st.sampled_from([", ", ",", " , ", ",,"]))).join(fields)

    arrow = draw(st.sampled_from(["->", "->", "->", "", "->->", "=>"]))
    return f"{side()} {arrow} {side()}"


GOOD_TYPES = st.recursive(
    st.sampled_from(["str", "int", "float", "bool", "Any", "Literal['a', 'b']", "Literal[1, 2]"]),
    lambda inner: st.one_of(inner.map(lambda t: f"list[{t}]"), inner.map(lambda t: f"Optional[{t}]"),
                            inner.map(lambda t: f"dict[str, {t}]"), st.tuples(inner, inner).map(" | ".join)),
    max_leaves=6)


@st.composite
def good_specs(draw: Callable[..., Any]) -> str:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=2, max_size=5,
                          unique=True))
    cut = draw(st.integers(1, len(names) - 1))
    fields = [f"{n}: {draw(GOOD_TYPES)}" if draw(st.booleans()) else n for n in names]
    return f"{', '.join(fields[:cut])} -> {', '.join(fields[cut:])}"


@FUZZ
@given(spec=st.one_of(good_specs(), specs(), st.text(max_size=60)))
def test_adversarial_signature_strings_raise_only_signature_error(spec: str) -> None:
    try:
        sig = make_signature(spec)
    except lmbridge.SignatureError:
        return
    for name, field in sig.fields().items():
        check_type(field.annotation, name)  # what is accepted is a type lmbridge handles
    inputs = {n: "x" for n in sig.input_fields}
    for fmt in (lmbridge.ChatFormat(), lmbridge.JSONFormat()):
        assert fmt.format(sig, [], inputs)[-1]["role"] == "user"
    try:
        again = make_signature(sig.spec())
    except lmbridge.SignatureError:
        return  # a few types have no string form (tuple[int, ...]); saying so is the contract
    assert list(again.fields()) == list(sig.fields())


@FUZZ
@given(width=st.integers(1, 1500), names=st.lists(st.sampled_from(["int", "str", "float", "bool", "None"]),
                                                  min_size=1, max_size=5))
def test_wide_unions_are_read_without_recursion(width: int, names: list[str]) -> None:
    spec = "q -> a: " + " | ".join(names[i % len(names)] for i in range(width))
    try:
        make_signature(spec)
    except lmbridge.SignatureError:
        pass


# -- tools -----------------------------------------------------------------------------------------

class Point(pydantic.BaseModel):
    x: int


class Opaque:
    pass


ANNOTATIONS = [int, str, float, bool, Any, list[int], dict[str, Any], Optional[float], Literal["a", "b"],  # noqa: UP045
               Point, datetime.date, set[int], bytes, Opaque, Callable[[int], int], "int", "Undefined",
               "list[Undefined]", "Point", "Opaque", None, inspect.Parameter.empty]
TOOL_NAMES = st.one_of(st.none(), st.sampled_from(["ok", "<lambda>", "my tool!", "", "x" * 65, "a-b_c9", "naïve"]),
                       st.text(max_size=10))
ARG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                           max_size=2))


def _function(params: list[tuple[str, Any, bool]]) -> Callable[..., Any]:
    def tool(**kwargs: Any) -> Any:
        return kwargs

    parameters = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY,
                                    default=inspect.Parameter.empty if required else None, annotation=a)
                  for n, a, required in params]
    tool.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    tool.__annotations__ = {n: a for n, a, _ in params if a is not inspect.Parameter.empty}
    return tool


@FUZZ
# A Python keyword ("or", "if") cannot name a parameter: inspect.Parameter itself refuses it.
@given(params=st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
                                     lambda n: not keyword.iskeyword(n)),
                                 st.sampled_from(ANNOTATIONS), st.booleans()),
                       max_size=4, unique_by=lambda p: p[0]),
       name=TOOL_NAMES, args=st.one_of(ARG_VALUES, st.dictionaries(st.text(max_size=6), ARG_VALUES, max_size=4)))
def test_adversarial_tool_definitions_raise_only_tool_error(params: list[tuple[str, Any, bool]], name: str | None,
                                                            args: Any) -> None:
    try:
        tool = lmbridge.Tool(_function(params), name=name)
    except lmbridge.ToolError:
        return
    assert tool.json_schema()["type"] == "object"
    assert tool.name in tool.describe() and tool.to_function_spec()["function"]["name"] == tool.name
    try:
        values = tool.validate(args)
    except lmbridge.ToolError:
        return
    for pname, annotation, _ in params:
        if annotation is int and values.get(pname) is not None:
            assert isinstance(values[pname], int), "an int argument never receives anything else"
