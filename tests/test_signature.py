"""Signatures: the class and string forms, the supported types, the errors, and the transforms."""

from __future__ import annotations

import enum
import typing
from typing import Literal, Optional

import pydantic
import pytest

import lmbridge
from lmbridge.signatures._signature import ensure_signature, make_signature


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(pydantic.BaseModel):
    city: str
    zip_code: str


class Person(pydantic.BaseModel):
    name: str
    age: int
    address: Address


class QA(lmbridge.Signature):
    """Answer the question in a few words."""

    question: str = lmbridge.InputField(desc="a factual question")
    answer: str = lmbridge.OutputField(desc="a short phrase")


def test_class_form_reads_fields_descs_and_instructions() -> None:
    assert list(QA.input_fields) == ["question"]
    assert list(QA.output_fields) == ["answer"]
    assert QA.instructions == "Answer the question in a few words."
    assert QA.input_fields["question"].desc == "a factual question"
    assert QA.output_fields["answer"].label == "Answer"
    assert QA.output_fields["answer"].annotation is str
    assert QA.spec() == "question: str -> answer: str"


def test_class_form_without_docstring_gets_default_instructions() -> None:
    class Plain(lmbridge.Signature):
        text: str = lmbridge.InputField()
        summary: str = lmbridge.OutputField()

    assert "text" in Plain.instructions and "summary" in Plain.instructions


def test_signature_is_never_instantiated() -> None:
    with pytest.raises(TypeError):
        QA()


def test_class_form_supports_all_types() -> None:
    class Everything(lmbridge.Signature):
        text: str = lmbridge.InputField()
        count: int = lmbridge.OutputField()
        ratio: float = lmbridge.OutputField()
        ok: bool = lmbridge.OutputField()
        kind: Literal["a", "b"] = lmbridge.OutputField()
        color: Color = lmbridge.OutputField()
        tags: list[str] = lmbridge.OutputField()
        scores: dict[str, int] = lmbridge.OutputField()
        maybe: Optional[int] = lmbridge.OutputField()  # noqa: UP045 - the spelling users write
        person: Person = lmbridge.OutputField()

    outs = Everything.output_fields
    assert outs["count"].annotation is int
    assert outs["ratio"].annotation is float
    assert outs["ok"].annotation is bool
    assert typing.get_args(outs["kind"].annotation) == ("a", "b")
    assert outs["color"].annotation is Color
    assert outs["tags"].annotation == list[str]
    assert outs["scores"].annotation == dict[str, int]
    assert outs["maybe"].annotation == Optional[int]  # noqa: UP045
    assert outs["person"].annotation is Person
    assert list(outs) == ["count", "ratio", "ok", "kind", "color", "tags", "scores", "maybe", "person"]


def test_string_form_with_types() -> None:
    sig = make_signature("context: list[str], question -> answer: int, confidence: float")
    assert list(sig.input_fields) == ["context", "question"]
    assert sig.input_fields["context"].annotation == list[str]
    assert sig.input_fields["question"].annotation is str
    assert sig.output_fields["answer"].annotation is int
    assert sig.output_fields["confidence"].annotation is float


@pytest.mark.parametrize(
    ("type_text", "expected"),
    [
        ("str", str),
        ("int", int),
        ("float", float),
        ("bool", bool),
        ("list[str]", list[str]),
        ("dict[str, int]", dict[str, int]),
        ("Optional[int]", Optional[int]),  # noqa: UP045
        ("int | None", Optional[int]),  # noqa: UP045
        ("Literal['pos', 'neg']", Literal["pos", "neg"]),
        ("list[Literal['x', 'y']]", list[Literal["x", "y"]]),
    ],
)
def test_string_form_types(type_text: str, expected: object) -> None:
    sig = make_signature(f"text -> out: {type_text}")
    assert sig.output_fields["out"].annotation == expected


def test_string_form_custom_types_for_enums_and_models() -> None:
    sig = make_signature("text -> color: Color, person: Person",
                         custom_types={"Color": Color, "Person": Person})
    assert sig.output_fields["color"].annotation is Color
    assert sig.output_fields["person"].annotation is Person


def test_string_form_never_evaluates_code() -> None:
    with pytest.raises(lmbridge.SignatureError):
        make_signature("text -> out: __import__('os').system('echo hacked')")


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("question answer", "->"),  # no arrow
        ("a -> b -> c", "->"),  # two arrows
        ("question ->", "no output"),  # no outputs
        ("a, , b -> c", "empty field"),  # stray comma
        ("a -> 1bad", "'1bad'"),  # bad identifier
        ("a, a -> b", "'a'"),  # declared twice
        ("a -> a", "'a'"),  # both input and output
        ("a -> b: Foo", "'Foo'"),  # unknown type
        ("a -> b: list[Unknown]", "'Unknown'"),  # unknown nested type
        ("a -> b: list[", "list["),  # unreadable type
        ("a -> b: Literal[str]", "Literal"),  # Literal of a type
        ("a -> _hidden", "'_hidden'"),  # private name
    ],
)
def test_malformed_strings_raise_signature_error_naming_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(lmbridge.SignatureError) as info:
        make_signature(spec)
    assert names in str(info.value)


def test_signature_error_is_a_value_error_and_bridge_error() -> None:
    with pytest.raises(ValueError):
        make_signature("nope")
    with pytest.raises(lmbridge.BridgeError):
        make_signature("nope")


def test_field_without_input_or_output_field_is_rejected() -> None:
    with pytest.raises(lmbridge.SignatureError, match="'context'"):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()
            context: str = "default"
            answer: str = lmbridge.OutputField()


def test_field_without_default_is_rejected() -> None:
    with pytest.raises(lmbridge.SignatureError, match="'context'"):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()
            context: str
            answer: str = lmbridge.OutputField()


def test_missing_annotation_is_rejected() -> None:
    with pytest.raises(lmbridge.SignatureError, match=r"'answer'.*annotation"):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()
            answer = lmbridge.OutputField()


def test_unsupported_type_is_rejected_naming_the_field() -> None:
    with pytest.raises(lmbridge.SignatureError, match=r"Bad\.answer"):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()
            answer: set[str] = lmbridge.OutputField()


def test_signature_without_outputs_is_rejected() -> None:
    with pytest.raises(lmbridge.SignatureError, match="no output"):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()


def test_ensure_signature_rejects_non_signatures() -> None:
    with pytest.raises(lmbridge.SignatureError):
        ensure_signature(42)  # type: ignore[arg-type]
    with pytest.raises(lmbridge.SignatureError):
        ensure_signature(lmbridge.Signature)
    assert ensure_signature(QA) is QA
    assert ensure_signature("a -> b").output_fields["b"].annotation is str


def test_with_instructions_returns_a_new_class() -> None:
    new = QA.with_instructions("Be terse.")
    assert new is not QA
    assert new.instructions == "Be terse."
    assert QA.instructions == "Answer the question in a few words."
    assert new.fields() == QA.fields()
    assert new.__name__ == "QA"


def test_prepend_and_append_return_new_classes() -> None:
    pre = QA.prepend("reasoning", lmbridge.OutputField(desc="think"), str)
    assert list(pre.output_fields) == ["reasoning", "answer"]
    post = QA.append("context", lmbridge.InputField(), list[str])
    assert list(post.input_fields) == ["question", "context"]
    assert post.input_fields["context"].annotation == list[str]
    assert list(QA.output_fields) == ["answer"]
    assert list(QA.input_fields) == ["question"]
    assert pre.instructions == QA.instructions


def test_prepend_rejects_duplicates_and_bad_fields() -> None:
    with pytest.raises(lmbridge.SignatureError, match="'answer'"):
        QA.prepend("answer", lmbridge.OutputField())
    with pytest.raises(lmbridge.SignatureError):
        QA.append("extra", "not a field")
    with pytest.raises(lmbridge.SignatureError):
        QA.append("extra", lmbridge.OutputField(), set[int])


def test_delete_returns_a_new_class() -> None:
    two = make_signature("question -> answer, note")
    one = two.delete("note")
    assert list(one.output_fields) == ["answer"]
    assert list(two.output_fields) == ["answer", "note"]
    with pytest.raises(lmbridge.SignatureError, match="'missing'"):
        two.delete("missing")
    with pytest.raises(lmbridge.SignatureError):
        make_signature("question -> answer").delete("answer")  # nothing left to produce


def test_with_updated_field_returns_a_new_class() -> None:
    new = QA.with_updated_field("answer", desc="one word", prefix="Reply")
    assert new.output_fields["answer"].desc == "one word"
    assert new.output_fields["answer"].label == "Reply"
    assert QA.output_fields["answer"].desc == "a short phrase"
    assert QA.output_fields["answer"].label == "Answer"


def test_subclass_inherits_and_extends_fields() -> None:
    class WithContext(QA):
        context: list[str] = lmbridge.InputField()

    assert list(WithContext.input_fields) == ["question", "context"]
    assert list(WithContext.output_fields) == ["answer"]
    assert list(QA.input_fields) == ["question"]


def test_labels_come_from_names() -> None:
    sig = make_signature("question_text -> final_answer")
    assert sig.input_fields["question_text"].label == "Question Text"
    assert sig.output_fields["final_answer"].label == "Final Answer"


def test_spec_round_trips_through_the_string_form() -> None:
    sig = make_signature("context: list[str], question -> answer: int, ok: bool")
    again = make_signature(sig.spec())
    assert again.fields() == sig.fields()


# -- issue 9: a bad type or name is a SignatureError when the signature is made -------------------------

@pytest.mark.parametrize(
    "type_text",
    ["Literal", "Optional", "Union", "dict[str]", "list[int, str]", "Dict[str]", "Optional[int, str]",
     "list[Optional]"],
)
def test_incomplete_types_in_the_string_form_are_refused_when_made(type_text: str) -> None:
    # These used to be accepted and fail only when the model was called.
    with pytest.raises(lmbridge.SignatureError):
        make_signature(f"question -> answer: {type_text}")


def test_incomplete_types_in_the_class_form_and_transforms_are_refused() -> None:
    with pytest.raises(lmbridge.SignatureError):
        class Bad(lmbridge.Signature):
            question: str = lmbridge.InputField()
            answer: dict[str] = lmbridge.OutputField()  # type: ignore[type-arg]
    qa = make_signature("question -> answer")
    with pytest.raises(lmbridge.SignatureError):
        qa.with_updated_field("answer", annotation=typing.Optional)
    with pytest.raises(lmbridge.SignatureError):
        qa.append("extra", lmbridge.OutputField(), typing.Union)


def test_a_union_of_a_thousand_types_does_not_recurse() -> None:
    spec = "question -> answer: " + " | ".join(["int", "str", "float", "bool"] * 250)
    sig = make_signature(spec)  # was a RecursionError
    assert set(typing.get_args(sig.output_fields["answer"].annotation)) == {int, str, float, bool}


@pytest.mark.parametrize("depth", [25, 1000])
def test_types_nested_too_deeply_are_refused(depth: int) -> None:
    with pytest.raises(lmbridge.SignatureError, match=r"nested|cannot read"):  # Python's parser stops at 200
        make_signature("question -> answer: " + "list[" * depth + "int" + "]" * depth)
    deep: typing.Any = int
    for _ in range(depth):
        deep = list[deep]
    with pytest.raises(lmbridge.SignatureError, match="nested"):
        make_signature("question -> answer").with_updated_field("answer", annotation=deep)


def test_a_nesting_of_ordinary_depth_is_fine() -> None:
    sig = make_signature("question -> answer: list[dict[str, list[Optional[int]]]]")
    assert sig.output_fields["answer"].annotation == list[dict[str, list[Optional[int]]]]  # noqa: UP045


@pytest.mark.parametrize("name", ["instructions", "input_fields", "output_fields"])
def test_a_field_named_like_the_signatures_own_data_is_refused(name: str) -> None:
    namespace: dict[str, typing.Any] = {"__annotations__": {"question": str, name: str, "answer": str},
                                        "question": lmbridge.InputField(), name: lmbridge.InputField(),
                                        "answer": lmbridge.OutputField()}
    with pytest.raises(lmbridge.SignatureError, match=name):
        type("Bad", (lmbridge.Signature,), namespace)  # was: the field silently dropped
    with pytest.raises(lmbridge.SignatureError, match=name):
        make_signature(f"question, {name} -> answer")


def test_instructions_annotated_as_a_class_attribute_is_not_a_field() -> None:
    class Fine(lmbridge.Signature):
        """Say hi."""

        instructions: typing.ClassVar[str]
        question: str = lmbridge.InputField()
        answer: str = lmbridge.OutputField()

    assert list(Fine.fields()) == ["question", "answer"]
    assert Fine.instructions == "Say hi."
