"""Compile quality, unit level: constrained decoding requests, TextFormat, label scoring and
calibration, selection that keeps the student unless a candidate wins beyond noise, stratified
sampling, macro-F1. The real-model side is in test_real_quality.py."""

from __future__ import annotations

import random
import warnings
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.constrain import Constraint, chat_grammar, constrained_params, constraint_fallbacks, outputs_schema
from lmbridge.formats import format_from_state
from lmbridge.lm import OptionScores
from lmbridge.optimizers.selection import decide, paired_bootstrap, stratified_sample
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
    """A scripted LM with log-probabilities: ``scorer(messages, options)`` gives them."""

    def __init__(self, scorer: Any) -> None:
        super().__init__([])
        self.scorer = scorer
        self.scored: list[list[Message]] = []

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        self.scored.append(messages)
        return OptionScores(tuple(self.scorer(messages, options)), Usage(calls=1))


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
    for fmt in (lmbridge.ChatFormat(constrained=False, scoring="calibrated"), lmbridge.JSONFormat(scoring="labels"),
                lmbridge.TextFormat(), lmbridge.TextFormat(instructions=False, scoring="calibrated")):
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
