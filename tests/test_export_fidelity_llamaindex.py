"""A predictor exported as a LlamaIndex prompt sends, through ``BridgeLLM``, the request the program
makes; what a template cannot carry is refused at export time, naming it and what to choose instead."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from lmbridge.adapters.llamaindex import BridgeLLM, to_llamaindex_prompt

SIG = lmbridge.make_signature("text -> label: Literal['negative', 'positive']", "Classify the review.")
DEMOS = [{"text": "fine", "label": "positive"}, {"text": "dull", "label": "negative"}]


class GrammarLM(ScriptedLM):
    """A ScriptedLM that, as the embedded model does, takes a grammar and a JSON mode."""

    def constraint_params(self, constraint: Any) -> dict[str, Any]:
        return {"grammar": constraint.gbnf or "root ::= object"}

    def supports_json_mode(self) -> bool:
        return True


def predictor(fmt: lmbridge.PromptFormat, **lm_params: Any) -> lmbridge.Predict:
    return lmbridge.Predict(SIG, format=fmt, demos=DEMOS, **lm_params)


def test_text_format_is_refused_naming_the_raw_endpoint_and_what_to_choose() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=r"text format.*raw prompt.*stop sequences.*ChatFormat"):
        to_llamaindex_prompt(predictor(lmbridge.TextFormat(constrained=False)))


@pytest.mark.parametrize("scoring", ["labels", "calibrated"])
def test_label_scoring_is_refused_naming_it_and_what_to_choose(scoring: Any) -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=rf"scoring='{scoring}'.*scoring='generate'.*to_query_engine"):
        to_llamaindex_prompt(predictor(lmbridge.ChatFormat(scoring=scoring)))


def test_a_decoding_constraint_on_the_configured_lm_is_refused() -> None:
    constrained = predictor(lmbridge.ChatFormat())
    with lmbridge.context(lm=GrammarLM(["positive"])), \
            pytest.raises(lmbridge.ConfigurationError, match=r"on scripted.*decoding constraint.*constrained=False"):
        to_llamaindex_prompt(constrained)


def test_json_mode_is_refused_and_a_json_constraint_named_first() -> None:
    lm = GrammarLM(["{}"])
    plain, constrained = predictor(lmbridge.JSONFormat(constrained=False)), predictor(lmbridge.JSONFormat())
    plain.lm = constrained.lm = lm
    with pytest.raises(lmbridge.ConfigurationError, match=r"JSON mode.*json_object.*ChatFormat"):
        to_llamaindex_prompt(plain)
    with pytest.raises(lmbridge.ConfigurationError, match=r"decoding constraint"):
        to_llamaindex_prompt(constrained)


def test_the_predictors_own_request_parameters_are_refused() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=r"\['temperature'\].*BridgeLLM\(lm=LM"):
        to_llamaindex_prompt(predictor(lmbridge.ChatFormat(constrained=False), temperature=0.7))


def test_an_unconstrained_chat_predictor_sends_the_programs_request_through_bridge_llm() -> None:
    ours, theirs = GrammarLM(["Label: negative"]), GrammarLM(["Label: negative"])
    program = predictor(lmbridge.ChatFormat(instructions="system", constrained=False))
    program.lm = ours
    template = to_llamaindex_prompt(program)
    assert program(text="a slog").label == "negative"
    reply = BridgeLLM(lm=theirs).predict(template, text="a slog")
    assert template.output_parser is not None
    assert template.output_parser.parse(reply) == {"label": "negative"}
    assert theirs.calls == ours.calls
    assert theirs.requests == ours.requests == [{}]


@pytest.mark.parametrize("fmt", [lmbridge.ChatFormat(constrained=False),
                                 lmbridge.ChatFormat(demos="inline", instructions="system", constrained=False)],
                         ids=["turns", "inline-system"])
def test_in_a_stock_query_engine_the_exported_prompt_sends_the_programs_messages(fmt: Any) -> None:
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    class QueryAsNode(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=TextNode(text=query_bundle.query_str), score=1.0)]

    sig = lmbridge.make_signature("query_str -> label: Literal['negative', 'positive']", "Classify the {x} review.")
    program = lmbridge.Predict(sig, format=fmt, demos=[{"query_str": "fine {y}", "label": "positive"}],
                               lm=ScriptedLM(lambda m: "positive"))
    template = to_llamaindex_prompt(program)
    engine_lm = ScriptedLM(lambda m: "positive")
    engine = RetrieverQueryEngine.from_args(QueryAsNode(), llm=BridgeLLM(lm=engine_lm), text_qa_template=template)
    review = "  a {warm} film\nwith two lines  "
    answer = template.output_parser.parse(str(engine.query(review)))  # type: ignore[union-attr]
    assert answer == {"label": program(query_str=review).label}
    assert engine_lm.calls == program.lm.calls  # type: ignore[union-attr]
