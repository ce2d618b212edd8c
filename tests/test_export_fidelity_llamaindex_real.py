"""On the embedded model and 20 SST-2 dev rows: a compiled predictor exported as a LlamaIndex prompt scores
what the program scored, run through LlamaIndex on ``BridgeLLM`` over the same LM both ways, by
``llm.predict`` and inside a stock ``RetrieverQueryEngine``, or the export raises the documented
ConfigurationError naming what the template cannot carry.

The engine classifies its query: the review is the query (``query_str``, as a response synthesizer passes
it), and a retriever hands it back as the one node, since a synthesizer answers only over nodes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

pytest.importorskip("llama_index.core")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import SST2_INSTRUCTIONS, compiled_sst2, export_formats, find_shared_datasets, read_or_none
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from examples.data import load_classification
from lmbridge.adapters.llamaindex import BridgeLLM, to_llamaindex_prompt

pytestmark = pytest.mark.real_model

SIG = lmbridge.make_signature("query_str -> label: Literal['negative', 'positive']",
                              SST2_INSTRUCTIONS).with_updated_field("query_str", prefix="Review")
REFUSED = {"chat": "decoding constraint", "json": "decoding constraint", "json-unconstrained": "JSON mode",
           "text": "raw prompt", "text-unconstrained": "raw prompt", "labels": "scoring='labels'",
           "calibrated": "scoring='calibrated'"}
"""What the template cannot carry on the embedded model, as the refusal names it."""


@pytest.fixture(autouse=True)
def _datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    find_shared_datasets(monkeypatch)


class QueryAsNode(BaseRetriever):
    """Retrieves the query itself, as the one node the engine's synthesizer answers over."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=query_bundle.query_str), score=1.0)]


def review(row: Any) -> lmbridge.Example:
    return lmbridge.Example(query_str=row.text, label=row.label).with_inputs("query_str")


@pytest.mark.parametrize("name", list(export_formats()))
def test_exported_prompt_scores_what_the_program_scored_by_predict_and_in_a_query_engine(name: str) -> None:
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=False)
    predictor = compiled_sst2(export_formats()[name], lm, signature=SIG, rows=review)
    try:
        template = to_llamaindex_prompt(predictor)
    except lmbridge.ConfigurationError as error:
        assert name in REFUSED and REFUSED[name] in str(error), str(error)
        return
    assert name not in REFUSED
    parser, llm = template.output_parser, BridgeLLM(lm=lm)
    assert parser is not None
    engine = RetrieverQueryEngine.from_args(QueryAsNode(), llm=llm, text_qa_template=template)
    rows = load_classification("sst2", "dev", 20)
    ours = [read_or_none(lambda text=r.text: predictor(query_str=text).label) for r in rows]
    routes = {
        "llm.predict": [read_or_none(lambda text=r.text: parser.parse(llm.predict(template, query_str=text))["label"])
                        for r in rows],
        "query engine": [read_or_none(lambda text=r.text: parser.parse(str(engine.query(text)))["label"])
                         for r in rows],
    }
    program_accuracy = sum(o == r.label for o, r in zip(ours, rows))
    for route, theirs in routes.items():
        export_accuracy = sum(t == r.label for t, r in zip(theirs, rows))
        print(f"{name}: program {program_accuracy}/20, LlamaIndex {route} {export_accuracy}/20")
        assert export_accuracy == program_accuracy, (route, ours, theirs)
        assert theirs == ours, route  # the same label on every row, not only the same count
