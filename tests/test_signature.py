"""Signatures: the class and string forms, the supported types, the errors, and the transforms."""

from __future__ import annotations

import enum
import typing
from typing import Literal, Optional

import pydantic
import pytest

import bridge
from bridge.signature import ensure_signature, make_signature


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


class QA(bridge.Signature):
    """Answer the question in a few words."""

    question: str = bridge.InputField(desc="a factual question")
    answer: str = bridge.OutputField(desc="a short phrase")


def test_class_form_reads_fields_descs_and_instructions() -> None:
    assert list(QA.input_fields) == ["question"]
    assert list(QA.output_fields) == ["answer"]
    assert QA.instructions == "Answer the question in a few words."
    assert QA.input_fields["question"].desc == "a factual question"
    assert QA.output_fields["answer"].label == "Answer"
    assert QA.output_fields["answer"].annotation is str
    assert QA.spec() == "question: str -> answer: str"


def test_class_form_without_docstring_gets_default_instructions() -> None:
    class Plain(bridge.Signature):
        text: str = bridge.InputField()
        summary: str = bridge.OutputField()

    assert "text" in Plain.instructions and "summary" in Plain.instructions


def test_signature_is_never_instantiated() -> None:
    with pytest.raises(TypeError):
        QA()


def test_class_form_supports_all_types() -> None:
    class Everything(bridge.Signature):
        text: str = bridge.InputField()
        count: int = bridge.OutputField()
        ratio: float = bridge.OutputField()
        ok: bool = bridge.OutputField()
        kind: Literal["a", "b"] = bridge.OutputField()
        color: Color = bridge.OutputField()
        tags: list[str] = bridge.OutputField()
        scores: dict[str, int] = bridge.OutputField()
        maybe: Optional[int] = bridge.OutputField()  # noqa: UP045 - the spelling users write
        person: Person = bridge.OutputField()

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
    with pytest.raises(bridge.SignatureError):
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
    with pytest.raises(bridge.SignatureError) as info:
        make_signature(spec)
    assert names in str(info.value)


def test_signature_error_is_a_value_error_and_bridge_error() -> None:
    with pytest.raises(ValueError):
        make_signature("nope")
    with pytest.raises(bridge.BridgeError):
        make_signature("nope")


def test_field_without_input_or_output_field_is_rejected() -> None:
    with pytest.raises(bridge.SignatureError, match="'context'"):
        class Bad(bridge.Signature):
            question: str = bridge.InputField()
            context: str = "default"
            answer: str = bridge.OutputField()


def test_field_without_default_is_rejected() -> None:
    with pytest.raises(bridge.SignatureError, match="'context'"):
        class Bad(bridge.Signature):
            question: str = bridge.InputField()
            context: str
            answer: str = bridge.OutputField()


def test_missing_annotation_is_rejected() -> None:
    with pytest.raises(bridge.SignatureError, match=r"'answer'.*annotation"):
        class Bad(bridge.Signature):
            question: str = bridge.InputField()
            answer = bridge.OutputField()


def test_unsupported_type_is_rejected_naming_the_field() -> None:
    with pytest.raises(bridge.SignatureError, match=r"Bad\.answer"):
        class Bad(bridge.Signature):
            question: str = bridge.InputField()
            answer: set[str] = bridge.OutputField()


def test_signature_without_outputs_is_rejected() -> None:
    with pytest.raises(bridge.SignatureError, match="no output"):
        class Bad(bridge.Signature):
            question: str = bridge.InputField()


def test_ensure_signature_rejects_non_signatures() -> None:
    with pytest.raises(bridge.SignatureError):
        ensure_signature(42)  # type: ignore[arg-type]
    with pytest.raises(bridge.SignatureError):
        ensure_signature(bridge.Signature)
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
    pre = QA.prepend("reasoning", bridge.OutputField(desc="think"), str)
    assert list(pre.output_fields) == ["reasoning", "answer"]
    post = QA.append("context", bridge.InputField(), list[str])
    assert list(post.input_fields) == ["question", "context"]
    assert post.input_fields["context"].annotation == list[str]
    assert list(QA.output_fields) == ["answer"]
    assert list(QA.input_fields) == ["question"]
    assert pre.instructions == QA.instructions


def test_prepend_rejects_duplicates_and_bad_fields() -> None:
    with pytest.raises(bridge.SignatureError, match="'answer'"):
        QA.prepend("answer", bridge.OutputField())
    with pytest.raises(bridge.SignatureError):
        QA.append("extra", "not a field")
    with pytest.raises(bridge.SignatureError):
        QA.append("extra", bridge.OutputField(), set[int])


def test_delete_returns_a_new_class() -> None:
    two = make_signature("question -> answer, note")
    one = two.delete("note")
    assert list(one.output_fields) == ["answer"]
    assert list(two.output_fields) == ["answer", "note"]
    with pytest.raises(bridge.SignatureError, match="'missing'"):
        two.delete("missing")
    with pytest.raises(bridge.SignatureError):
        make_signature("question -> answer").delete("answer")  # nothing left to produce


def test_with_updated_field_returns_a_new_class() -> None:
    new = QA.with_updated_field("answer", desc="one word", prefix="Reply")
    assert new.output_fields["answer"].desc == "one word"
    assert new.output_fields["answer"].label == "Reply"
    assert QA.output_fields["answer"].desc == "a short phrase"
    assert QA.output_fields["answer"].label == "Answer"


def test_subclass_inherits_and_extends_fields() -> None:
    class WithContext(QA):
        context: list[str] = bridge.InputField()

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
