"""Shared toy tasks for the optimizer tests, and tests of the compile machinery (budget, runner,
state) that every optimizer relies on. Other test_optimizers_* files import the helpers."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

import lmbridge
from lmbridge.evaluate import read_score, run_many
from lmbridge.lm._cache import Cache
from lmbridge.optimizers._support.budget import Budget, BudgetExhausted
from lmbridge.optimizers._support.state import build, snapshot
from lmbridge.testing import ScriptedLM

SIG = "text -> label: Literal['negative', 'positive']"
metric = lmbridge.metrics.exact_match("label")


def sentiment_rows(n: int, offset: int = 0) -> list[lmbridge.Example]:
    words = ["good", "bad", "great", "awful"]
    rows = []
    for i in range(offset, offset + n):
        word = words[i % 4]
        label = "positive" if word in ("good", "great") else "negative"
        rows.append(lmbridge.Example(text=f"a {word} film number {i}", label=label).with_inputs("text"))
    return rows


def truth(text: str) -> str:
    return "positive" if ("good" in text or "great" in text) else "negative"


def last_text(messages: list[Any]) -> str:
    return str(messages[-1]["content"]).rsplit("Text:", 1)[-1].split("\n")[0]


class CountingModel:
    """A scripted model that is right only when the prompt carries demos; counts its calls."""

    def __init__(self, *, needs_demos: bool = True) -> None:
        self.needs_demos = needs_demos
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, messages: list[Any]) -> Any:
        with self._lock:
            self.calls += 1
        has_demos = len(messages) > 1 or "Label: " in str(messages[0]["content"])
        if self.needs_demos and not has_demos:
            return {"label": "positive"}
        return {"label": truth(last_text(messages))}


def program_state(program: lmbridge.Module) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(name, p.instructions, [d.to_dict() for d in p.demos]) for name, p in program.named_predictors()]


# -- budget ------------------------------------------------------------------------------------------

def test_metered_lm_refuses_the_call_past_the_cap_and_gives_back_cache_hits() -> None:
    model = CountingModel(needs_demos=False)
    inner = ScriptedLM(model, cache=Cache(disk=False))
    budget = Budget(max_lm_calls=2)
    lm = budget.wrap(inner)
    predict = lmbridge.Predict(SIG, lm=lm)
    predict(text="a good one")
    predict(text="a good one")  # a cache hit costs nothing
    predict(text="a bad one")
    assert budget.calls == 2
    with pytest.raises(BudgetExhausted, match="max_lm_calls=2"):
        predict(text="another good one")
    assert model.calls == 2
    assert budget.exhausted is not None


def test_budget_exhausted_is_not_swallowed_by_except_exception() -> None:
    assert not issubclass(BudgetExhausted, Exception)


# -- the runner --------------------------------------------------------------------------------------

def test_read_score_accepts_numbers_bools_and_feedback_results() -> None:
    assert read_score(True) == (1.0, None)
    assert read_score(0.25) == (0.25, None)
    assert read_score({"score": 1, "feedback": "ok"}) == (1.0, "ok")
    with pytest.raises(TypeError, match="must return a finite number"):
        read_score("yes")
    with pytest.raises(TypeError):
        read_score(float("nan"))


def test_run_many_keeps_input_order_on_threads_and_names_trace_steps() -> None:
    lm = ScriptedLM(CountingModel(needs_demos=False))
    program = lmbridge.Predict(SIG, lm=lm)
    rows = sentiment_rows(8)
    outcomes = run_many(program, rows, metric, threads=4, traced=True)
    assert [o.example for o in outcomes] == rows
    assert all(o.score == 1.0 for o in outcomes)
    assert outcomes[0].steps[0][0] == "self"
    assert outcomes[0].steps[0][1] == {"text": rows[0].text}


def test_fatal_errors_stop_the_run_instead_of_scoring_zero() -> None:
    program = lmbridge.Predict(SIG)  # no LM configured anywhere
    with pytest.raises(lmbridge.ConfigurationError):
        run_many(program, sentiment_rows(2), metric)


# -- state -------------------------------------------------------------------------------------------

def test_build_copies_the_student_and_never_touches_it() -> None:
    student = lmbridge.Predict(SIG)
    state = snapshot(student)
    demo = sentiment_rows(1)[0]
    state["self"] = state["self"].with_demos([demo]).with_instructions("Be careful.")
    program = build(student, state)
    assert program is not student
    assert student.demos == [] and student.instructions != "Be careful."
    assert program.instructions == "Be careful." and program.demos == [demo]
    assert copy.deepcopy(program).demos == [demo]


class PricedLM(ScriptedLM):
    """A scripted LM whose every answer costs ``price`` dollars (None: no price known)."""

    def __init__(self, responses: Any, price: float | None) -> None:
        super().__init__(responses)
        self.price = price

    def send(self, *args: Any, **kwargs: Any) -> Any:
        raw = super().send(*args, **kwargs)
        raw.cost = self.price
        return raw


def test_max_cost_stops_the_compile_when_the_spend_reaches_it() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=PricedLM(model, price=0.01))
    compiled = lmbridge.BootstrapFewShot(metric=metric, max_bootstrapped_demos=8, max_cost=0.03,
                                       num_threads=1).compile(student, trainset=sentiment_rows(8))
    assert model.calls == 3
    assert compiled.report is not None and "max_cost" in compiled.report["stopped_early"]
    assert compiled.report["cost"] == pytest.approx(0.03)


def test_max_cost_with_an_unpriced_model_stops_instead_of_spending_blind() -> None:
    model = CountingModel(needs_demos=False)
    student = lmbridge.Predict(SIG, lm=PricedLM(model, price=None))
    compiled = lmbridge.BootstrapFewShot(metric=metric, max_cost=1.0, num_threads=1).compile(
        student, trainset=sentiment_rows(4))
    assert model.calls == 1
    assert compiled.report is not None and "reports no price" in compiled.report["stopped_early"]


def test_instruction_templates_name_the_label_set_in_the_signatures_own_words() -> None:
    from lmbridge.optimizers._support.proposer import signature_templates

    sig = lmbridge.make_signature(SIG, "Classify the sentiment of the movie review.")
    first = signature_templates(sig)[0]
    assert first == "Classify the sentiment of the movie review as negative or positive."
    # An instruction that already names every option is not repeated with them appended.
    named = lmbridge.make_signature(SIG, "Label the review negative or positive.")
    assert not any(t.startswith("Label the review negative or positive as") for t in signature_templates(named))
