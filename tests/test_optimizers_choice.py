"""How an optimizer chooses on small data (issue 26): a calibration prior that cannot degenerate,
the tie rule (within noise the cheaper, simpler candidate wins, and the report says what a point
cost), and field labels as part of MIPROv2's search, saved with the program."""

from __future__ import annotations

import itertools
import json
import warnings
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.lm._client import OptionScores
from lmbridge.programs._labels import MIN_SHARE, steady_prior
from lmbridge.testing import ScriptedLM
from lmbridge.types import Message, Usage


class Sentiment(lmbridge.Signature):
    """Classify the sentiment."""

    text: str = lmbridge.InputField()
    label: Literal["negative", "positive"] = lmbridge.OutputField()


class ScoringLM(ScriptedLM):
    """A scripted LM with log-probabilities from ``scorer(text, options)``; its own model name, since
    priors are memoised per model and prompt in the process."""

    made = itertools.count()

    def __init__(self, scorer: Any, answer: Any = ()) -> None:
        super().__init__(answer, model=f"choice-scoring-{next(self.made)}")
        self.scorer = scorer

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        text = str(messages[-1]["content"]).split("Text: ")[-1].split("\n")[0]
        return OptionScores(tuple(self.scorer(text, options)), Usage(calls=1))

    def supports_logprobs(self) -> bool:
        return True


# -- a prior that cannot degenerate ------------------------------------------------------------------
def test_a_degenerate_prior_is_lifted_to_the_floor_and_a_sound_one_is_left_alone() -> None:
    prior, notes = steady_prior([0.99999, 0.00001], distinct=40)
    assert min(prior) == pytest.approx(MIN_SHARE / 2) and sum(prior) == pytest.approx(1.0)
    assert prior[0] > prior[1] and notes and "degenerate" in notes[0]
    assert steady_prior([0.486, 0.514], distinct=40) == ([0.486, 0.514], [])


def test_a_prior_from_too_few_distinct_inputs_is_shrunk_towards_uniform() -> None:
    prior, notes = steady_prior([0.9, 0.1], distinct=1, min_inputs=5)
    assert prior == pytest.approx([0.58, 0.42]) and "1 distinct input" in notes[0]


# The model says "negative" with near certainty on every training review, whatever it says: a batch
# prior P(negative) = 0.99999. Dividing by it would make every answer "positive".
TRAIN = [f"review number {i}" for i in range(12)]


def _lopsided(text: str, options: list[str]) -> list[float]:
    if text.startswith("review number"):
        return [0.0, -11.5]  # P(negative) ~ 0.99999
    return [-0.05, -3.0] if "awful" in text else [-3.0, -0.05]


def test_a_compile_does_not_keep_a_degenerate_prior_and_its_report_says_so() -> None:
    lm = ScoringLM(_lopsided)
    train = [lmbridge.Example(text=t, label="negative").with_inputs("text") for t in TRAIN]
    optimizer = lmbridge.LabeledFewShot(k=0, format=lmbridge.ChatFormat(scoring="calibrated"), display_progress=False)
    program = optimizer.compile(lmbridge.Predict(Sentiment, lm=lm), trainset=train)
    prior = program.predictors()[0].format.prior  # type: ignore[union-attr]
    assert prior is not None and min(prior.probabilities.values()) >= MIN_SHARE / 2 - 1e-9
    assert program.report is not None
    assert "degenerate" in " ".join(program.report["calibration"]["self"]["smoothed"])
    # with the raw prior both answers were "positive"; the floor keeps a clear negative negative
    assert program(text="an awful film").label == "negative"
    assert program(text="a lovely film").label == "positive"


def test_a_compile_pool_of_one_repeated_input_is_not_trusted() -> None:
    lm = ScoringLM(lambda text, options: [-0.2, -1.7])  # P(negative) 0.82 on the one input
    train = [lmbridge.Example(text="same review", label="negative").with_inputs("text") for _ in range(10)]
    optimizer = lmbridge.LabeledFewShot(k=0, format=lmbridge.ChatFormat(scoring="calibrated"), display_progress=False)
    program = optimizer.compile(lmbridge.Predict(Sentiment, lm=lm), trainset=train)
    prior = program.predictors()[0].format.prior  # type: ignore[union-attr]
    assert prior is not None and prior.probabilities["negative"] < 0.7
    assert program.report is not None and "1 distinct input" in program.report["calibration"]["self"]["smoothed"][0]
    json.dumps(program.report)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stored prior belongs to this prompt: no fallback warning
        program(text="anything")


# -- the tie rule: within noise, the cheaper and simpler candidate wins ---------------------------------
TRUTH = {"a triumph": "positive", "dull and long": "negative", "fine": "positive", "a mess": "negative",
         "lovely": "positive", "tedious": "negative", "superb": "positive", "boring": "negative"}


def _plain(text: str, options: list[str]) -> list[float]:
    """Right without calibration on real reviews; on the content-free inputs it leans negative."""
    if text in TRUTH:
        return [-0.3, -1.4] if TRUTH[text] == "negative" else [-1.4, -0.3]
    return [-0.1, -2.4]


def _proposer_or_positive(messages: list[Message]) -> Any:
    first = str(messages[0]["content"])
    if "Look at these examples" in first:
        return {"summary": "Movie reviews."}
    if "Write a better instruction" in first:
        return {"instruction": "Classify the sentiment."}
    return "positive"  # generated answers: always positive, so the student scores half


def test_a_calibrated_winner_that_ties_with_its_uncalibrated_twin_gives_way_to_it() -> None:
    pytest.importorskip("optuna")
    lm = ScoringLM(_plain, _proposer_or_positive)
    rows = [lmbridge.Example(text=t, label=label).with_inputs("text") for t, label in TRUTH.items()]
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), auto=None, num_candidates=2,
                           max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1, display_progress=False,
                           formats=[lmbridge.ChatFormat(scoring="calibrated")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(lmbridge.Predict(Sentiment, lm=lm), trainset=rows, valset=rows, num_trials=3)
    fmt = program.predictors()[0].format
    assert fmt is not None and fmt.scoring == "labels" and fmt.prior is None  # no calibration to trust
    report = program.report
    assert report is not None and report["selection"]["kept"] == "winner"
    simpler = report["selection"]["simpler"]
    assert simpler["kept"] == "simpler" and simpler["winner_cost"]["calibrated"] == 1
    assert simpler["cost"] == {"demos": 0, "calibrated": 0} and "within noise" in simpler["reason"]
    assert "calibration" not in report
    assert [program(text=t).label for t in TRUTH] == list(TRUTH.values())
    # what a point of valset accuracy cost: the compile's LM calls over the points gained
    gained = report["selection"]["difference"]
    assert gained > 0 and report["lm_calls_per_point"] == pytest.approx(report["lm_calls"] / gained, abs=0.05)
    json.dumps(report)


def test_fewer_demos_win_a_tie_and_a_clear_lead_is_kept() -> None:
    from lmbridge.optimizers._support.selection import cost, simpler_than
    from lmbridge.optimizers._support.state import PredictorState

    sig = lmbridge.Predict(Sentiment).signature
    demo = lmbridge.Example(text="x", label="positive")
    few, many = PredictorState(sig, (demo,) * 2), PredictorState(sig, (demo,) * 8)
    calibrated = many.with_format(lmbridge.ChatFormat(scoring="calibrated"))
    assert cost({"p": calibrated}) == (8, 1)
    assert simpler_than({"p": few}, {"p": many}) and simpler_than({"p": many}, {"p": calibrated})
    assert not simpler_than({"p": many}, {"p": few}) and not simpler_than({"p": few}, {"p": few})
    assert not simpler_than({"p": few.with_format(lmbridge.ChatFormat(scoring="calibrated"))}, {"p": many})


# -- field labels in MIPROv2's search -------------------------------------------------------------------
class Kind(lmbridge.Signature):
    """Classify what kind of answer the question asks for."""

    text: str = lmbridge.InputField()
    label: Literal["number", "person"] = lmbridge.OutputField()


QUESTIONS = [f"How many moons has planet {i}?" for i in range(6)] + [f"Who wrote book {i}?" for i in range(6)]


def _kind(question: str) -> str:
    return "number" if question.startswith("How many") else "person"


def _reads_questions_only(messages: list[Message]) -> Any:
    """A model that answers right only when the prompt calls its input a question."""
    first = str(messages[0]["content"])
    if "Look at these examples" in first:
        return {"summary": "Trivia questions."}
    if "Write a better instruction" in first:
        return {"instruction": "Say what kind of answer the question asks for."}
    last = str(messages[-1]["content"])
    if "Question: " not in last:
        return {"label": "number"}
    return {"label": _kind(last.split("Question: ")[-1].split("\n")[0])}


def test_field_labels_are_proposed_from_the_task_and_the_data() -> None:
    from lmbridge.optimizers._support.search_space import field_labels
    from lmbridge.optimizers._support.state import PredictorState

    base = {"self": PredictorState(lmbridge.Predict(Kind).signature)}
    rows = [lmbridge.Example(text=q) for q in QUESTIONS]
    assert field_labels(base, rows) == [{}, {"text": "Question", "label": "Type"},
                                        {"text": "Question", "label": "Answer"}]
    review = {"self": PredictorState(lmbridge.Predict(Sentiment).signature.with_instructions(
        "Classify the sentiment of the movie review."))}
    assert field_labels(review, [lmbridge.Example(text="dull.")])[1] == {"text": "Review", "label": "Sentiment"}


def test_mipro_searches_field_labels_and_the_program_saves_and_loads_them(tmp_path: Any) -> None:
    pytest.importorskip("optuna")
    rows = [lmbridge.Example(text=q, label=_kind(q)).with_inputs("text") for q in QUESTIONS]
    student = lmbridge.Predict(Kind, lm=ScriptedLM(_reads_questions_only))
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), auto=None, num_candidates=2,
                           max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1, display_progress=False,
                           formats=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(student, trainset=rows, valset=rows, num_trials=6)
    fields = program.predictors()[0].signature.fields()
    assert fields["text"].label == "Question"
    assert student.signature.fields()["text"].prefix == ""  # the student keeps its own labels
    assert program.report is not None and program.report["best"]["self"]["labels"]["text"] == "Question"
    assert [program(text=q).label for q in QUESTIONS] == [_kind(q) for q in QUESTIONS]
    path = tmp_path / "kind.json"
    program.save(path)
    saved = json.loads(path.read_text())["predictors"]["self"]["fields"]["text"]
    assert saved["prefix"] == "Question"
    loaded = lmbridge.Predict(Kind, lm=ScriptedLM(_reads_questions_only))
    loaded.load(path)
    assert loaded.signature.fields()["text"].label == "Question"
    assert [loaded(text=q).label for q in QUESTIONS] == [_kind(q) for q in QUESTIONS]
    # a file written before labels were searched (no "prefix" key) still loads, with the labels as given
    state = json.loads(path.read_text())
    for entry in state["predictors"]["self"]["fields"].values():
        entry.pop("prefix")
    path.write_text(json.dumps(state))
    old = lmbridge.Predict(Kind, lm=ScriptedLM(_reads_questions_only))
    old.load(path)
    assert old.signature.fields()["text"].label == "Text"


# -- the simple recipes are seeded candidates the search must beat ---------------------------------------
def test_mipro_scores_the_balanced_recipe_first_so_a_short_search_cannot_miss_it() -> None:
    pytest.importorskip("optuna")
    from test_optimizers_mipro import NATO, covering_model, metric, six_class_rows

    sig = f"text -> label: Literal[{', '.join(repr(x) for x in NATO)}]"
    student = lmbridge.Predict(sig, lm=ScriptedLM(covering_model))  # right only when every class is shown
    opt = lmbridge.MIPROv2(metric, max_bootstrapped_demos=0, max_labeled_demos=4, num_threads=1, seed=1,
                           display_progress=False, formats=[], proposal_templates=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(student, trainset=six_class_rows(24), valset=six_class_rows(18, offset=24),
                              minibatch_size=6, num_trials=2)
    demos = program.predictors()[0].demos
    assert len(demos) == 12 and {d.label for d in demos} == set(NATO)
    assert lmbridge.Evaluate(devset=six_class_rows(12, offset=60), metric=metric, display_progress=False)(
        program).score == 100.0
