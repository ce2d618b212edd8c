"""MIPROv2's final choice is re-scored on the train and valset rows (issue 26): a candidate that wins
the valset by luck is not kept, demo rows never score their own candidate, and the extra calls are
in the estimate and the budget."""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM
from lmbridge.types import Message


class Kind(lmbridge.Signature):
    """Classify what kind of answer the question asks for."""

    text: str = lmbridge.InputField()
    label: Literal["number", "person"] = lmbridge.OutputField()


def _question(i: int, tag: str) -> str:
    return f"How many moons has planet {tag}{i}?" if i % 2 else f"Who wrote book {tag}{i}?"


def _kind(text: str) -> str:
    return "number" if text.startswith("How many") else "person"


def _rows(n: int, tag: str) -> list[lmbridge.Example]:
    return [lmbridge.Example(text=_question(i, tag), label=_kind(_question(i, tag))).with_inputs("text")
            for i in range(n)]


QUESTION = re.compile(r"(?:How many moons has planet|Who wrote book) \w+\?")


def _lucky_on_the_valset(messages: list[Message]) -> Any:
    """The proposed instruction is right on the valset's questions only (tagged "v") and wrong on all
    others; demos in the prompt make the model right on nine rows in ten anywhere (wrong on numbers
    ending in 0); with neither it always answers "number" (right on half)."""
    first = str(messages[0]["content"])
    if "Look at these examples" in first:
        return {"summary": "Trivia questions."}
    if "Write a better instruction" in first:
        return {"instruction": "Lucky: say the kind."}
    prompt = "\n".join(str(m["content"]) for m in messages)
    text = QUESTION.findall(str(messages[-1]["content"]))[-1]
    right, wrong = _kind(text), "person" if _kind(text) == "number" else "number"
    if "Lucky" in prompt:
        return {"label": right if " v" in text else wrong}
    if len(QUESTION.findall(prompt)) > 1:
        return {"label": wrong if text.endswith("0?") else right}
    return {"label": "number"}


def _optimizer(rescore_top: int) -> lmbridge.MIPROv2:
    return lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), auto=None, num_candidates=2,
                            max_bootstrapped_demos=0, max_labeled_demos=4, num_threads=1, display_progress=False,
                            formats=[], proposal_templates=False, search_labels=False, rescore_top=rescore_top)


def _compile(rescore_top: int) -> lmbridge.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _optimizer(rescore_top).compile(lmbridge.Predict(Kind, lm=ScriptedLM(_lucky_on_the_valset)),
                                               trainset=_rows(40, "t"), valset=_rows(20, "v"), num_trials=8)


def test_a_candidate_that_wins_the_valset_by_luck_is_not_kept() -> None:
    pytest.importorskip("optuna")
    program = _compile(rescore_top=3)
    report = program.report
    assert report is not None
    table = report["rescored"]["candidates"]
    lucky = [e for e in table if e["config"]["self.instruction"].startswith("Lucky")]
    assert lucky and max(e["valset_score"] for e in lucky) == 100.0  # it did win the valset
    kept = [e for e in table if e["kept"]]
    assert len(kept) == 1 and not kept[0]["config"]["self.instruction"].startswith("Lucky")
    assert kept[0]["rows"] == 60 - 4 and report["rescored"]["trainset_rows"] == 40  # never on its own demos
    assert len(program.predictors()[0].demos) == 4
    test = lmbridge.Evaluate(devset=_rows(20, "x"), metric=lmbridge.metrics.exact_match("label"),
                             display_progress=False)(program)
    assert test.score >= 85.0
    # without the re-scoring, the valset's lucky winner is what the search returns
    plain = _compile(rescore_top=0)
    assert plain.predictors()[0].signature.instructions.startswith("Lucky")
    assert "rescored" not in (plain.report or {})


def test_the_rescoring_is_in_the_estimate_and_the_compile_stays_within_it() -> None:
    pytest.importorskip("optuna")
    student = lmbridge.Predict(Kind, lm=ScriptedLM(_lucky_on_the_valset))
    estimate = _optimizer(3).estimate(student, trainset=_rows(40, "t"), valset=_rows(20, "v"), num_trials=8)
    assert estimate.breakdown["rescore"] == (3 + 2 + 1) * 40  # the best 3, the seeded recipes, the student
    program = _compile(rescore_top=3)
    assert program.report is not None and program.report["lm_calls"] <= estimate.lm_calls
    with pytest.raises(ValueError, match="rescore_top"):
        lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), rescore_top=-1)


def test_a_row_shown_as_a_demo_never_scores_its_own_candidate() -> None:
    from lmbridge.optimizers._support.rescore import shown_as_demo
    from lmbridge.optimizers._support.state import PredictorState

    rows = _rows(6, "t")
    sig = lmbridge.Predict(Kind).signature
    state = {"self": PredictorState(sig, (rows[0], rows[3]))}
    assert [shown_as_demo(r, state) for r in rows] == [True, False, False, True, False, False]
    # a RAG answer's demo carries a context the row lacks: the question alone identifies the row
    rag = lmbridge.Predict("context, text -> label").signature
    demo = lmbridge.Example(context="passage", text=rows[1].text, label="number")
    assert shown_as_demo(rows[1], {"answer": PredictorState(rag, (demo,))})
    assert not shown_as_demo(rows[2], {"answer": PredictorState(rag, (demo,))})


def test_a_budget_spent_during_the_rescoring_keeps_the_search_winner_and_says_so() -> None:
    pytest.importorskip("optuna")
    whole = _compile(rescore_top=3)
    assert whole.report is not None
    opt = _optimizer(3)
    opt.max_lm_calls = whole.report["lm_calls"] - 30  # runs out among the finalists' trainset rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(lmbridge.Predict(Kind, lm=ScriptedLM(_lucky_on_the_valset)),
                              trainset=_rows(40, "t"), valset=_rows(20, "v"), num_trials=8)
    report = program.report
    assert report is not None and report["lm_calls"] == opt.max_lm_calls
    assert report["stopped_early"] == f"max_lm_calls={opt.max_lm_calls} reached"
    assert "stopped before the re-scoring finished" in report["rescored"]["reason"]
