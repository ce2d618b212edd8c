"""Predict inputs that cannot be written into a prompt: an InputError naming the field (issue 9)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM


@pytest.mark.parametrize("value", [{"a", "b"}, b"bytes", bytearray(b"x"), [object()], {"k": {1, 2}}],
                         ids=["set", "bytes", "bytearray", "object-in-list", "set-in-dict"])
def test_an_input_with_no_text_form_is_an_input_error_naming_the_field(value: Any) -> None:
    lm = ScriptedLM([{"answer": "x"}])
    predict = lmbridge.Predict("context, question -> answer", lm=lm)
    with pytest.raises(lmbridge.InputError, match="'context'"):  # was a TypeError naming no field
        predict(context=value, question="q")
    with pytest.raises(lmbridge.InputError, match="'context'"):
        predict.messages(context=value, question="q")
    assert lm.calls == [], "nothing is sent when an input cannot be written"


def test_dates_and_times_are_written_as_iso_8601() -> None:
    lm = ScriptedLM([{"answer": "a Wednesday"}])
    predict = lmbridge.Predict("when -> answer", lm=lm)
    assert predict(when=datetime.datetime(2024, 5, 1, 9, 30)).answer == "a Wednesday"
    assert "When: 2024-05-01T09:30:00" in lm.calls[0][-1]["content"]
    assert "When: 2024-05-01\n" in predict.messages(when=datetime.date(2024, 5, 1))[-1]["content"]
