"""LlamaIndex data and evaluators in: LabelledRagDataset and QueryResponseDataset as Examples, and
CorrectnessEvaluator / FaithfulnessEvaluator as bridge metrics inside Evaluate."""

from __future__ import annotations

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("llama_index.core")

from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator, QueryResponseDataset
from llamaindex_fixtures import ScriptedChatLLM
from pydantic import BaseModel

try:
    from llama_index.core.llama_dataset import (  # type: ignore[import-not-found, unused-ignore]
        LabelledRagDataExample,
        LabelledRagDataset,
    )
except ImportError:  # llama-index-core 0.14 no longer ships it: the same shape, as 0.12 has it
    class LabelledRagDataExample(BaseModel):  # type: ignore[no-redef]
        query: str
        reference_answer: str
        reference_contexts: list[str] | None = None

    class LabelledRagDataset(BaseModel):  # type: ignore[no-redef]
        examples: list[LabelledRagDataExample]

from lmbridge.adapters.llamaindex import evaluator_metric, from_llamaindex_dataset


def rag_dataset() -> LabelledRagDataset:
    return LabelledRagDataset(examples=[
        LabelledRagDataExample(query="Which team won Super Bowl 50?", reference_answer="Denver Broncos",
                               reference_contexts=["The Denver Broncos defeated the Carolina Panthers 24-10."]),
        LabelledRagDataExample(query="Where was Super Bowl 50 played?", reference_answer="Levi's Stadium",
                               reference_contexts=["The game was played at Levi's Stadium in Santa Clara."]),
    ])


def test_a_labelled_rag_dataset_becomes_examples() -> None:
    examples = from_llamaindex_dataset(rag_dataset())
    assert [e.question for e in examples] == ["Which team won Super Bowl 50?", "Where was Super Bowl 50 played?"]
    assert examples[0].answer == "Denver Broncos"
    assert examples[1].contexts == ["The game was played at Levi's Stadium in Santa Clara."]
    assert examples[0].inputs().to_dict() == {"question": "Which team won Super Bowl 50?"}


def test_a_query_response_dataset_becomes_examples() -> None:
    dataset = QueryResponseDataset(queries={"a": "Who won?"}, responses={"a": "Denver Broncos"})
    [example] = from_llamaindex_dataset(dataset, question="q", answer="gold")
    assert (example.q, example.gold, example.input_keys) == ("Who won?", "Denver Broncos", ("q",))
    with pytest.raises(TypeError, match="LabelledRagDataset"):
        from_llamaindex_dataset([{"question": "q"}])


def test_correctness_evaluator_as_a_metric_in_evaluate() -> None:
    judge = ScriptedChatLLM(replies=["5.0\nMatches the reference.", "1.0\nWrong stadium."], seen=[])
    metric = evaluator_metric(CorrectnessEvaluator(llm=judge), use="score", scale=5.0)
    program = lmbridge.Predict("question -> answer", lm=ScriptedLM([{"answer": "Denver Broncos"},
                                                                  {"answer": "Wembley"}]))
    result = lmbridge.Evaluate(devset=from_llamaindex_dataset(rag_dataset()), metric=metric, num_threads=1,
                             display_progress=False)(program)
    assert [r.score for r in result.results] == [1.0, 0.2]
    assert "Denver Broncos" in (judge.seen[0][-1].content or "")  # the response reached the judge
    assert "Levi's Stadium" in (judge.seen[1][-1].content or "")  # and the reference answer


def test_faithfulness_evaluator_reads_the_contexts() -> None:
    judge = ScriptedChatLLM(replies=["YES"], seen=[])
    metric = evaluator_metric(FaithfulnessEvaluator(llm=judge), contexts="contexts")
    [example, _] = from_llamaindex_dataset(rag_dataset())
    assert metric(example, lmbridge.Prediction(answer="Denver Broncos")) == 1.0
    assert "defeated the Carolina Panthers" in str(judge.seen[0])


def test_an_evaluator_without_a_verdict_fails_loudly() -> None:
    judge = ScriptedChatLLM(replies=["I cannot say."] * 2, seen=[])
    metric = evaluator_metric(CorrectnessEvaluator(llm=judge))
    [example, _] = from_llamaindex_dataset(rag_dataset())
    with pytest.raises(ValueError, match="CorrectnessEvaluator"):
        metric(example, lmbridge.Prediction(answer="x"))
    with pytest.raises(TypeError, match="BaseEvaluator"):
        evaluator_metric(lambda *a: 1.0)


