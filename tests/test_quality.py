"""Compile quality, unit level: constrained decoding requests, TextFormat, label scoring and
calibration, selection that keeps the student unless a candidate wins beyond noise, stratified
sampling, macro-F1. The real-model side is in test_real_quality.py."""

from __future__ import annotations

import itertools
import random
import warnings
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.formats._base import format_from_state
from lmbridge.formats._constrain import (
    Constraint,
    chat_grammar,
    constrained_params,
    constraint_fallbacks,
    outputs_schema,
)
from lmbridge.lm import OptionScores
from lmbridge.optimizers._support.selection import decide, paired_bootstrap, stratified_sample
from lmbridge.testing import ScriptedLM
from lmbridge.types import Message, Usage


class Sentiment(lmbridge.Signature):
    """Classify the sentiment."""

    text: str = lmbridge.InputField()
    label: Literal["negative", "positive"] = lmbridge.OutputField()


class Graded(lmbridge.Signature):
    """Grade it."""

    text: str = lmbridge.InputField()
    reason: str = lmbridge.OutputField()
    ok: bool = lmbridge.OutputField()
    score: int = lmbridge.OutputField()


class GrammarLM(ScriptedLM):
    """A scripted LM that honours constraints the way the embedded model is asked to: a grammar."""

    def constraint_params(self, constraint: Constraint) -> dict[str, Any]:
        return {"grammar": constraint.gbnf} if constraint.gbnf else {}


class ScoringLM(ScriptedLM):
    """A scripted LM with log-probabilities: ``scorer(messages, options)`` gives them. Each one has its
    own model name: priors are memoised per model and prompt in the process."""

    made = itertools.count()

    def __init__(self, scorer: Any, answer: Any = ()) -> None:
        super().__init__(answer, model=f"scoring-{next(self.made)}")
        self.scorer = scorer
        self.scored: list[list[Message]] = []

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        self.scored.append(messages)
        return OptionScores(tuple(self.scorer(messages, options)), Usage(calls=1))

    def supports_logprobs(self) -> bool:
        return True


# -- constrained decoding -------------------------------------------------------------------------
def test_chat_grammar_puts_options_yes_no_and_numbers_after_the_labels() -> None:
    assert chat_grammar(Sentiment) == 'root ::= " "? ("negative" | "positive")\n'
    grammar = chat_grammar(Graded)
    assert '"\\nOk: " ("yes" | "no")' in grammar
    assert '"\\nScore: " ("-"? [0-9] [0-9]*)' in grammar
    assert grammar.startswith('root ::= " "? [^\\n]+')


def test_outputs_schema_requires_every_output_field() -> None:
    schema = outputs_schema(Graded)
    assert schema["required"] == ["reason", "ok", "score"] and schema["additionalProperties"] is False
    assert schema["properties"]["ok"]["type"] == "boolean"


def test_constrained_is_the_default_and_the_grammar_reaches_the_lm_but_not_the_reask() -> None:
    lm = GrammarLM(["I cannot tell", "positive"])
    pred = lmbridge.Predict(Sentiment, lm=lm)(text="great")
    assert pred.label == "positive"
    assert lm.requests[0]["grammar"] == chat_grammar(Sentiment)
    assert "grammar" not in lm.requests[1]  # the re-ask answers one field: no whole-answer grammar
    lm = GrammarLM(["positive"])
    lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(constrained=False))(text="great")
    assert "grammar" not in lm.requests[0]


def test_an_api_model_without_structured_output_falls_back_and_is_counted() -> None:
    before = constraint_fallbacks().get("no structured output for this model", 0)
    schema = outputs_schema(Sentiment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert constrained_params("some/model", False, Constraint(schema=schema), lambda: False) == {}
    assert constraint_fallbacks()["no structured output for this model"] == before + 1
    sent = constrained_params("openai/gpt-4o-mini", False, Constraint(schema=schema), lambda: True)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert constrained_params("m", False, Constraint(gbnf="root ::= \"a\""), lambda: True) == {}


def test_format_choices_round_trip_and_defaults_keep_the_old_state() -> None:
    assert lmbridge.ChatFormat().to_state() == {"name": "chat", "demos": "turns", "instructions": "user"}
    prior = {"probabilities": {"negative": 0.25, "positive": 0.75}, "inputs": 32, "prompt": "0123456789abcdef"}
    for fmt in (lmbridge.ChatFormat(constrained=False, scoring="calibrated"), lmbridge.JSONFormat(scoring="labels"),
                lmbridge.TextFormat(), lmbridge.TextFormat(instructions=False, scoring="calibrated"),
                lmbridge.ChatFormat(scoring="calibrated", prior=prior),
                lmbridge.TextFormat(scoring="calibrated").with_prior(prior)):
        assert format_from_state(fmt.to_state()) == fmt
    with pytest.raises(ValueError, match="scoring"):
        lmbridge.ChatFormat(scoring="vote")  # type: ignore[arg-type]


def test_text_format_writes_plain_blocks_for_the_completion_endpoint() -> None:
    demos = [lmbridge.Example(text="a delight", label="positive"), lmbridge.Example(text="dull", label="negative")]
    lm = GrammarLM(["negative"])
    program = lmbridge.Predict(Sentiment, lm=lm, demos=demos, format=lmbridge.TextFormat())
    assert program(text="boring").label == "negative"
    [message] = lm.calls[0]
    assert message["content"] == ("Classify the sentiment.\n\nText: a delight\nLabel: positive\n\n"
                                  "Text: dull\nLabel: negative\n\nText: boring\nLabel:")
    assert lm.requests[0]["endpoint"] == "completion" and "\n\n" in lm.requests[0]["stop"]


# -- label scoring ----------------------------------------------------------------------------------
def test_label_scoring_picks_the_most_probable_option_with_probabilities_summing_to_one() -> None:
    lm = ScoringLM(lambda m, options: [-2.0, -0.5])
    fmt = lmbridge.ChatFormat(scoring="labels")
    pred = lmbridge.Predict(Sentiment, lm=lm, format=fmt)(text="fine")
    assert pred.label == "positive" and pred.usage.calls == 1 and lm.calls == []
    scores = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": "fine"})
    assert scores is not None and abs(sum(scores.probabilities) - 1.0) < 1e-9
    assert scores.options == ("negative", "positive") and scores.choice == "positive"


def test_calibration_divides_out_the_content_free_prior() -> None:
    def scorer(messages: list[Message], options: list[str]) -> list[float]:
        content = messages[-1]["content"]
        if "N/A" in content or "[MASK]" in content or content.endswith("Text: \nLabel:"):
            return [-3.0, -0.05]  # the model says "positive" to anything
        return [-1.2, -0.4]  # slightly positive for this input: less than its bias
    lm = ScoringLM(scorer)
    plain = lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="labels"))(text="meh")
    calibrated = lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="calibrated"))
    assert plain.label == "positive" and calibrated(text="meh").label == "negative"
    probes = len(lm.scored)
    calibrated(text="so so")  # the prior is estimated once per prompt
    assert len(lm.scored) == probes + 1


# -- calibration from real inputs -------------------------------------------------------------------
REVIEWS = {"a triumph": [-1.6, -0.22], "dull and long": [-0.6, -0.8], "fine": [-1.0, -0.45],
           "a mess": [-0.5, -0.95], "lovely": [-2.0, -0.14], "tedious": [-0.55, -0.85]}
"""A model that leans positive on real reviews (mean P(positive) 0.59) but negative on content-free
inputs (0.09): the content-free prior points the wrong way, as on the embedded models."""


def _biased(messages: list[Message], options: list[str]) -> list[float]:
    text = messages[-1]["content"].split("Text: ")[-1].split("\n")[0]
    return REVIEWS.get(text, [-0.1, -2.4])  # "N/A", "", "[MASK]": strongly negative


def _mean_positive(rows: list[str]) -> float:
    from lmbridge.programs._labels import normalise

    return sum(normalise(REVIEWS[r])[1] for r in rows) / len(rows)


def test_divide_prior_is_bayes_rule_against_the_prior() -> None:
    from lmbridge.programs._labels import divide_prior

    assert divide_prior([0.8, 0.2], [0.8, 0.2]) == pytest.approx([0.5, 0.5])
    assert divide_prior([0.6, 0.4], [0.5, 0.5]) == pytest.approx([0.6, 0.4])
    p, q = [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]
    expected = [a / b for a, b in zip(p, q)]
    assert divide_prior(p, q) == pytest.approx([e / sum(expected) for e in expected])


def test_calibrate_stores_the_mean_over_real_inputs_and_inference_costs_no_extra_call() -> None:
    lm = ScoringLM(_biased)
    fmt = lmbridge.ChatFormat(scoring="calibrated")
    program = lmbridge.Predict(Sentiment, lm=lm, format=fmt)
    assert program(text="dull and long").label == "positive"  # the content-free prior makes it worse
    rows = [lmbridge.Example(text=t, label="negative").with_inputs("text") for t in REVIEWS]  # labels unused
    calibrated = lmbridge.calibrate(program, rows)
    assert program.format is fmt and fmt.prior is None  # a new program; the student is untouched
    prior = calibrated.format.prior  # type: ignore[union-attr]
    assert prior is not None and prior.inputs == len(REVIEWS)
    assert prior.probabilities["positive"] == pytest.approx(_mean_positive(list(REVIEWS)))
    before = len(lm.scored)
    answers = {t: calibrated(text=t).label for t in ("a triumph", "dull and long", "a mess", "lovely")}
    assert len(lm.scored) == before + 4  # one scoring call per answer, the prior is stored
    assert answers == {"a triumph": "positive", "dull and long": "negative", "a mess": "negative",
                       "lovely": "positive"}
    scores = lmbridge.score_labels(lm, calibrated.format, Sentiment, [], {"text": "fine"})  # type: ignore[arg-type]
    assert scores is not None and scores.prior_source == "stored" and scores.prior == (
        prior.probabilities["negative"], prior.probabilities["positive"])


def test_calibrate_draws_at_most_size_inputs_with_its_seed() -> None:
    program = lmbridge.Predict(Sentiment, lm=ScoringLM(_biased), format=lmbridge.ChatFormat(scoring="calibrated"))
    rows = [{"text": t} for t in REVIEWS]
    prior = lmbridge.calibrate(program, rows, size=3, seed=1).format.prior  # type: ignore[union-attr]
    assert prior is not None and prior.inputs == 3
    means = [_mean_positive(list(c)) for c in itertools.combinations(REVIEWS, 3)]
    assert any(prior.probabilities["positive"] == pytest.approx(m) for m in means)
    assert lmbridge.calibrate(program, rows, size=3, seed=1).format.prior == prior  # type: ignore[union-attr]


def test_calibrate_says_what_it_cannot_do() -> None:
    lm = ScoringLM(_biased)
    with pytest.raises(ValueError, match="no predictor to calibrate"):
        lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="labels")),
                           [{"text": "fine"}])
    with pytest.raises(ValueError, match=r"reads \['text'\], which no input row holds"):
        lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="calibrated")),
                           [{"review": "fine"}])
    with pytest.raises(ValueError, match="at least one input"):
        lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm), [])
    with pytest.raises(ValueError, match="'text' is a set, which cannot be written"):
        lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="calibrated")),
                           [{"text": {1, 2}}])
    with pytest.raises(ValueError, match="scoring='calibrated'"):
        lmbridge.ChatFormat(scoring="labels").with_prior(
            {"probabilities": {"negative": 0.5, "positive": 0.5}, "inputs": 2, "prompt": "ab"})


def test_a_stored_prior_round_trips_through_save_and_load_exactly(tmp_path: Any) -> None:
    import json

    lm = ScoringLM(_biased)
    demos = [lmbridge.Example(text="lovely", label="positive"), lmbridge.Example(text="a mess", label="negative")]
    for fmt in (lmbridge.ChatFormat(scoring="calibrated"), lmbridge.TextFormat(scoring="calibrated"),
                lmbridge.JSONFormat(demos="inline", scoring="calibrated")):
        program = lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm, demos=demos, format=fmt),
                                     [{"text": t} for t in REVIEWS])
        saved = program.format
        assert saved is not None and saved.prior is not None
        assert format_from_state(json.loads(json.dumps(saved.to_state()))) == saved
        program.save(tmp_path / "p.json")
        state = json.loads((tmp_path / "p.json").read_text())["predictors"]["self"]["format"]["prior"]
        assert state == {"probabilities": dict(saved.prior.probabilities), "inputs": 6, "prompt": saved.prior.prompt}
        assert all(type(v) is float for v in state["probabilities"].values())
        loaded = lmbridge.Predict(Sentiment, lm=lm)
        loaded.load(tmp_path / "p.json")
        assert loaded.format == saved and loaded.format.prior == saved.prior  # type: ignore[union-attr]
        before = len(lm.scored)
        scores = lmbridge.score_labels(lm, loaded.format, Sentiment, loaded.demos,  # type: ignore[arg-type]
                                       {"text": "fine"})
        assert scores is not None and scores.prior_source == "stored" and len(lm.scored) == before + 1


def test_a_broken_prior_in_a_file_is_a_state_error(tmp_path: Any) -> None:
    import json

    program = lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=ScoringLM(_biased),
                                                  format=lmbridge.ChatFormat(scoring="calibrated")),
                                 [{"text": t} for t in REVIEWS])
    program.save(tmp_path / "p.json")
    good = json.loads((tmp_path / "p.json").read_text())
    for bad, words in (({"negative": 0.2, "positive": 0.3}, "sum to 1"), ({"negative": "x", "positive": 1.0}, "number"),
                       ({"positive": 1.0}, "at least two"), ([0.5, 0.5], "at least two")):
        state = json.loads(json.dumps(good))
        state["predictors"]["self"]["format"]["prior"]["probabilities"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(state))
        target = lmbridge.Predict(Sentiment)
        with pytest.raises(lmbridge.StateError, match=words):
            target.load(tmp_path / "bad.json")
        assert target.format is None  # nothing applied


def test_a_stored_prior_for_another_prompt_is_not_applied() -> None:
    lm = ScoringLM(_biased)
    program = lmbridge.calibrate(lmbridge.Predict(Sentiment, lm=lm, format=lmbridge.ChatFormat(scoring="calibrated")),
                                 [{"text": t} for t in REVIEWS])
    program.demos = [lmbridge.Example(text="lovely", label="positive")]  # the prompt changed after calibrating
    with pytest.warns(RuntimeWarning, match="estimated for another prompt"):
        scores = lmbridge.score_labels(lm, program.format, Sentiment, program.demos,  # type: ignore[arg-type]
                                       {"text": "fine"})
    assert scores is not None and scores.prior_source == "content-free"
    other = lmbridge.calibrate(program, [{"text": t} for t in REVIEWS])  # estimated again: applied
    scores = lmbridge.score_labels(lm, other.format, Sentiment, other.demos, {"text": "fine"})  # type: ignore[arg-type]
    assert scores is not None and scores.prior_source == "stored"


def test_an_optimizer_estimates_the_prior_from_the_trainset_inputs_and_saves_it() -> None:
    lm = ScoringLM(_biased)
    train = [lmbridge.Example(text=t, label="positive").with_inputs("text") for t in REVIEWS]
    student = lmbridge.Predict(Sentiment, lm=lm)
    program = lmbridge.LabeledFewShot(k=0, format=lmbridge.ChatFormat(scoring="calibrated"),
                                      display_progress=False).compile(student, trainset=train)
    prior = program.predictors()[0].format.prior  # type: ignore[union-attr]
    assert prior is not None and prior.inputs == len(REVIEWS)
    assert prior.probabilities["positive"] == pytest.approx(_mean_positive(list(REVIEWS)))
    assert program.report is not None and program.report["calibration"]["self"]["inputs"] == len(REVIEWS)
    assert student.format is None
    assert program(text="dull and long").label == "negative"
    untouched = lmbridge.LabeledFewShot(k=0, format=lmbridge.ChatFormat(scoring="labels"),
                                        display_progress=False).compile(student, trainset=train)
    assert "calibration" not in (untouched.report or {}) and untouched.predictors()[0].format.prior is None  # type: ignore[union-attr]


def test_mipro_calibrates_its_candidates_on_the_trainset_inputs() -> None:
    pytest.importorskip("optuna")
    truth = {"a triumph": "positive", "dull and long": "negative", "fine": "positive", "a mess": "negative",
             "lovely": "positive", "tedious": "negative"}

    def answer(messages: list[Message]) -> Any:
        first = str(messages[0]["content"])
        if "Look at these examples" in first:
            return {"summary": "Movie reviews."}
        if "Write a better instruction" in first:
            return {"instruction": "Classify the sentiment."}
        return "positive"  # generated answers: always positive
    # leaning positive (+0.5 on its log-probability) on real reviews too, so that the uncalibrated twin
    # of the calibrated form answers "positive" to all and calibration wins beyond noise (the tie rule)
    lm = ScoringLM(lambda m, o: [_biased(m, o)[0], _biased(m, o)[1] + 0.5], answer)
    rows = [lmbridge.Example(text=t, label=label).with_inputs("text") for t, label in truth.items()]
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), auto=None, num_candidates=2,
                           max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1, display_progress=False,
                           formats=[lmbridge.ChatFormat(scoring="calibrated")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = opt.compile(lmbridge.Predict(Sentiment, lm=lm), trainset=rows, valset=rows, num_trials=3)
    # with the content-free prior the calibrated form answers "positive" to all, like the student
    assert program.report is not None and program.report["selection"]["kept"] == "winner"
    fmt = program.predictors()[0].format
    assert fmt is not None and fmt.prior is not None and fmt.prior.inputs == len(rows)
    assert program.report["calibration"]["self"]["inputs"] == len(rows)
    assert [program(text=t).label for t in truth] == list(truth.values())


def test_within_calibrating_a_calibrated_format_takes_its_prior_from_the_inputs() -> None:
    from lmbridge.programs._labels import calibrating

    lm = ScoringLM(_biased)
    fmt = lmbridge.ChatFormat(scoring="calibrated")
    with calibrating([{"text": t} for t in REVIEWS]):
        scores = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": "dull and long"})
    assert scores is not None and scores.prior_source == "inputs" and scores.choice == "negative"
    assert scores.prior[1] == pytest.approx(_mean_positive(list(REVIEWS)))
    outside = lmbridge.score_labels(lm, fmt, Sentiment, [], {"text": "dull and long"})
    assert outside is not None and outside.prior_source == "content-free" and outside.choice == "positive"


def test_label_scoring_without_logprobs_is_a_clear_error() -> None:
    program = lmbridge.Predict(Sentiment, lm=ScriptedLM(["positive"]), format=lmbridge.ChatFormat(scoring="labels"))
    with pytest.raises(lmbridge.LogprobsUnavailableError, match="log-probabilities"):
        program(text="x")


def test_label_scoring_leaves_other_outputs_to_generation() -> None:
    lm = ScoringLM(lambda m, o: [0.0] * len(o))
    lm._script = ["because\nOk: yes\nScore: 3"]
    pred = lmbridge.Predict(Graded, lm=lm, format=lmbridge.ChatFormat(scoring="labels"))(text="x")
    assert pred.ok is True and pred.score == 3 and lm.scored == []


# -- selection ----------------------------------------------------------------------------------------
def test_paired_bootstrap_tells_noise_from_a_gain() -> None:
    base = [1.0, 0.0] * 15
    noisy = [0.0, 1.0] * 15  # same mean, every row changed
    assert decide(base, noisy).kept == "student"
    better = [1.0] * 30
    decision = decide(base, better)
    assert decision.kept == "winner" and decision.interval[0] > 0 and decision.difference == 50.0
    diff, low, high = paired_bootstrap([0.0] * 10, [0.0] * 9 + [1.0])
    assert diff == 10.0 and low <= 0 <= high


def _rows(n: int) -> list[lmbridge.Example]:
    rng = random.Random(1)
    return [lmbridge.Example(text=f"review {i}", label=rng.choice(["negative", "positive"])).with_inputs("text")
            for i in range(n)]


def test_an_optimizer_returns_a_strong_student_unchanged() -> None:
    rows = _rows(40)
    gold = {r.text: r.label for r in rows}

    def answer(messages: list[Message]) -> str:
        text = messages[-1]["content"].split("Text: ")[-1].split("\n")[0]
        return gold[text] if len(messages) == 1 else "negative"  # demos make this model worse
    lm = ScriptedLM(answer)
    metric = lmbridge.metrics.exact_match("label")
    student = lmbridge.Predict(Sentiment, lm=lm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = lmbridge.LabeledFewShot(k=4, metric=metric, display_progress=False).compile(
            student, trainset=rows[:10], valset=rows[10:])
    assert program.predictors()[0].demos == []
    selection = program.report["selection"]
    assert selection["kept"] == "student" and selection["baseline"] == 100.0 and selection["winner"] < 100.0


def test_a_clear_gain_is_kept_and_reported_with_its_interval() -> None:
    rows = _rows(40)
    gold = {r.text: r.label for r in rows}

    def answer(messages: list[Message]) -> str:
        text = messages[-1]["content"].split("Text: ")[-1].split("\n")[0]
        return gold[text] if len(messages) > 1 else "negative"  # demos help
    program = lmbridge.LabeledFewShot(k=4, metric=lmbridge.metrics.exact_match("label"), display_progress=False,
                                    balanced=True, format=lmbridge.ChatFormat(demos="turns")).compile(
        lmbridge.Predict(Sentiment, lm=ScriptedLM(answer)), trainset=rows[:10], valset=rows[10:])
    selection = program.report["selection"]
    assert selection["kept"] == "winner" and selection["interval"][0] > 0 and selection["rows"] == 30
    labels = [d["label"] for d in program.predictors()[0].demos]
    assert sorted(labels) == ["negative", "negative", "positive", "positive"]


def test_a_small_valset_is_warned_about_with_numbers() -> None:
    rows = _rows(16)
    with pytest.warns(RuntimeWarning, match=r"the valset has 6 rows: one row is 16.7 points"):
        lmbridge.LabeledFewShot(k=2, metric=lmbridge.metrics.exact_match("label"), display_progress=False).compile(
            lmbridge.Predict(Sentiment, lm=ScriptedLM(lambda m: "positive")), trainset=rows[:10], valset=rows[10:])


def test_stratified_and_balanced_samples() -> None:
    rows = [lmbridge.Example(text=str(i), label="a" if i < 80 else "b") for i in range(100)]
    picked = stratified_sample(rows, "label", 10, random.Random(0))
    assert sorted(r.label for r in picked) == ["a"] * 8 + ["b"] * 2
    picked = stratified_sample(rows, "label", 10, random.Random(0), balanced=True)
    assert sorted(r.label for r in picked) == ["a"] * 5 + ["b"] * 5
    few = stratified_sample(rows[75:85], "label", 10, random.Random(0), balanced=True)
    assert len(few) == 10


def test_macro_f1_counts_every_class_equally() -> None:
    golds = ["a"] * 8 + ["b"] * 2
    assert lmbridge.metrics.macro_f1(golds, ["a"] * 10) == pytest.approx((2 * 8 / (16 + 2) + 0) / 2)
    assert lmbridge.metrics.macro_f1(golds, golds) == 1.0
    assert lmbridge.metrics.macro_f1(["a", "b"], [None, "b"]) == pytest.approx(0.5)  # a: missed; b: right
    with pytest.raises(ValueError, match="2 gold labels but 1"):
        lmbridge.metrics.macro_f1(["a", "b"], ["a"])


def test_auto_optimizer_says_what_it_chose_from_data_size_and_speed() -> None:
    from lmbridge.optimizers import BootstrapFewShot, LabeledFewShot, MIPROv2, auto_optimizer

    metric = lmbridge.metrics.exact_match("label")
    student = lmbridge.Predict(Sentiment)
    opt, why = auto_optimizer(metric, student, trainset=_rows(5), valset=_rows(10))
    assert isinstance(opt, LabeledFewShot) and opt.balanced and "5 training rows" in why
    opt, why = auto_optimizer(metric, student, trainset=_rows(40), valset=_rows(30), seconds_per_call=0.1)
    assert isinstance(opt, MIPROv2) and "fits" in why
    opt, why = auto_optimizer(metric, student, trainset=_rows(40), valset=_rows(30), seconds_per_call=5.0)
    assert isinstance(opt, BootstrapFewShot) and "MIPROv2's" in why
    opt, why = auto_optimizer(metric, student, trainset=_rows(40), valset=_rows(30), seconds_per_call=60.0)
    assert isinstance(opt, LabeledFewShot) and "exceeds" in why
