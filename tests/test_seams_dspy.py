"""What a DSPy user porting code reaches for: ``dspy.evaluate``'s names in ``lmbridge.evaluate``,
``Evaluate(display_table=...)``, the LM-judged ``SemanticF1`` (scripted, and on the embedded model),
and a DSPy-saved program file, converted or refused with a pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

# DSPy's dspy.evaluate, as a DSPy user writes it
from lmbridge.evaluate import Evaluate, SemanticF1, answer_exact_match, answer_passage_match  # isort: skip


def _rows() -> list[lmbridge.Example]:
    return [lmbridge.Example(question=f"Who won game {i}?", answer="Denver Broncos").with_inputs("question")
            for i in range(3)]


def test_display_table_prints_the_first_rows(capsys: pytest.CaptureFixture[str]) -> None:
    # answers keyed by the question: Evaluate runs rows on threads, so a script read in order would race
    lm = ScriptedLM(lambda messages: "Answer: Carolina Panthers" if "game 1?" in messages[-1]["content"]
                    else "Answer: Denver Broncos")
    qa = lmbridge.Predict("question -> answer", lm=lm)
    result = Evaluate(devset=_rows(), metric=answer_exact_match, display_table=2, display_progress=False)(qa)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["question", "gold", "answer", "predicted", "answer", "score"]
    assert "Carolina Panthers" in out[3] and out[3].rstrip().endswith("0")
    assert out[-1] == "... 1 more rows"
    assert round(result.score, 1) == 66.7


def test_answer_passage_match_looks_for_the_answer_in_the_passages() -> None:
    example = lmbridge.Example(question="q", answer="Denver Broncos")
    found = lmbridge.Prediction(context=["The Denver Broncos defeated the Panthers.", "Other text."])
    assert answer_passage_match(example, found) == 1.0
    assert answer_passage_match(example, lmbridge.Prediction(context=["The Broncos of Denver won."])) == 0.0


def _judge(recall: str, precision: str) -> ScriptedLM:
    return ScriptedLM([f"Reasoning: compared the ideas.\nRecall: {recall}\nPrecision: {precision}"])


def test_semantic_f1_is_the_f1_of_the_judged_recall_and_precision() -> None:
    example = lmbridge.Example(question="Who won Super Bowl 50?", response="The Denver Broncos, 24-10.")
    pred = lmbridge.Prediction(response="Denver won.")
    judge = _judge("0.5", "1.0")
    assert SemanticF1(lm=judge)(example, pred) == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert SemanticF1(lm=_judge("0.5", "1.0"), threshold=0.7)(example, pred, trace=[]) is False
    assert "Ground Truth: The Denver Broncos, 24-10." in judge.calls[0][-1]["content"]


def test_a_judge_out_of_range_is_a_counted_failure_not_a_score() -> None:
    rows = [lmbridge.Example(question="q", response="r").with_inputs("question")]
    program = lmbridge.Predict("question -> response", lm=ScriptedLM(["Response: r"]))
    metric = SemanticF1(lm=ScriptedLM(["Reasoning: x\nRecall: 7\nPrecision: 0.5"] * 2))
    result = Evaluate(devset=rows, metric=metric, display_progress=False)(program)
    assert result.errors == 1 and "judge's recall" in str(result.results[0].error)


@pytest.mark.real_model
def test_semantic_f1_runs_on_the_embedded_model() -> None:
    judge = lmbridge.LM("local/smollm2", max_tokens=120)
    example = lmbridge.Example(question="Which team won Super Bowl 50?",
                               response="The Denver Broncos won Super Bowl 50.")
    score = SemanticF1(lm=judge, decompositional=False)(example, lmbridge.Prediction(
        response="The Denver Broncos won Super Bowl 50."))
    assert 0.0 <= score <= 1.0  # a 135M judge is not a good judge; what must hold is a read, bounded score
    assert judge.inspect_history(1)


# -- DSPy's saved state ----------------------------------------------------------------------------------

class RAG(lmbridge.Module):
    def __init__(self) -> None:
        self.respond = lmbridge.ChainOfThought("context: list[str], question -> response")
        self.rewrite = lmbridge.Predict("question -> query")

    def forward(self, question: str) -> lmbridge.Prediction:
        return self.respond(context=[], question=self.rewrite(question=question).query)


DSPY_FILE = {  # the shape DSPy's program.save("rag.json") writes
    "respond.predict": {
        "traces": [], "train": [],
        "demos": [{"augmented": True, "context": ["Paris is in France."], "question": "Where is Paris?",
                   "reasoning": "The context says so.", "response": "France"}],
        "signature": {"instructions": "Answer from the context, in a few words.",
                      "fields": [{"prefix": "Context:", "description": "${context}"}]},
        "lm": None,
    },
    "rewrite": {"traces": [], "train": [], "demos": [],
                "signature": {"instructions": "Rewrite the question as a search query.", "fields": []}, "lm": None},
    "metadata": {"dependency_versions": {"python": "3.11", "dspy": "2.6.27", "cloudpickle": "3.1"}},
}


def test_a_dspy_file_is_converted_into_a_new_program(tmp_path: Path) -> None:
    from lmbridge.dspy_state import from_dspy_state

    path = tmp_path / "rag.json"
    path.write_text(json.dumps(DSPY_FILE))
    original = RAG()
    ported = from_dspy_state(original, path)
    assert ported.respond.predict.signature.instructions == "Answer from the context, in a few words."
    assert ported.respond.predict.demos[0].to_dict() == {
        "context": ["Paris is in France."], "question": "Where is Paris?", "reasoning": "The context says so.",
        "response": "France"}
    assert ported.rewrite.signature.instructions == "Rewrite the question as a search query."
    assert original.respond.predict.demos == []  # the user's program is not changed
    ported.save(tmp_path / "lmbridge.json")
    RAG().load(tmp_path / "lmbridge.json")


def test_loading_a_dspy_file_points_to_the_converter(tmp_path: Path) -> None:
    path = tmp_path / "rag.json"
    path.write_text(json.dumps(DSPY_FILE))
    with pytest.raises(lmbridge.StateError, match=r"saved by DSPy.*from_dspy_state"):
        RAG().load(path)


def test_a_dspy_file_for_another_program_is_refused_by_name() -> None:
    from lmbridge.dspy_state import from_dspy_state

    other: dict[str, Any] = {"generate_answer": DSPY_FILE["rewrite"], "metadata": DSPY_FILE["metadata"]}
    with pytest.raises(lmbridge.StateError, match=r"lacks predictors \['respond.predict', 'rewrite'\]"):
        from_dspy_state(RAG(), other)
