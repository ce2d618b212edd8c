"""RAG on the embedded models, small: extractive answers stay inside the passages, the retrieval
settings are searched, saved and restored, and a compile makes answers shorter and closer to gold.

SQuAD train questions over a small BM25 corpus (their gold paragraphs and the next paragraphs of the
corpus), so each prompt is short. These check mechanisms, not scores: benchmarks/rag_quality.py
measures the scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import lmbridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.data import load_jsonl

pytestmark = pytest.mark.real_model
f1 = lmbridge.metrics.f1("answer")


def rows(start: int, n: int) -> list[dict[str, Any]]:
    """Train questions with short gold answers, in file order (a fixed handful)."""
    found = [r for r in load_jsonl("squad", "train") if len(r["answers"][0].split()) <= 3]
    return found[start:start + n]


def corpus(questions: list[dict[str, Any]], others: int = 20) -> lmbridge.BM25Retriever:
    gold = {r["context"] for r in questions}
    extra = [r["text"] for r in load_jsonl("squad", "corpus") if r["text"] not in gold][:others]
    return lmbridge.BM25Retriever([*sorted(gold), *extra])


def examples(questions: list[dict[str, Any]]) -> list[lmbridge.Example]:
    return [lmbridge.Example(question=r["question"], answer=r["answers"][0], answers=r["answers"],
                             context=[r["context"]]).with_inputs("question") for r in questions]


@pytest.mark.parametrize(("model", "fmt"), [("local/smollm2", None), ("local/gemma3", lmbridge.TextFormat())])
def test_extractive_answers_stay_inside_the_passages(model: str, fmt: lmbridge.PromptFormat | None) -> None:
    questions = rows(0, 3)
    rag = lmbridge.RAG(corpus(questions), k=1, format=fmt)
    with lmbridge.context(lm=lmbridge.LM(model, cache=False, max_tokens=48)):
        for q in questions:
            pred = rag(question=q["question"])
            assert pred.answer.strip(), "an empty answer"
            span = pred.answer.strip().removesuffix(".")  # the grammar lets an answer end with a stop
            assert any(span in p.text for p in pred.passages), (pred.answer, pred.passages)
            assert len(pred.answer.split()) <= 12


def test_retrieval_settings_are_searched_saved_and_restored(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    questions = rows(3, 5)
    found = corpus(questions)
    student = lmbridge.RAG(found, k=1, search={"k": [1, 2]})
    opt = lmbridge.MIPROv2(f1, auto=None, num_candidates=2, max_bootstrapped_demos=0, max_labeled_demos=0,
                           num_threads=1, formats=[], search_labels=False, display_progress=False)
    with lmbridge.context(lm=lmbridge.LM("local/smollm2", cache=False, max_tokens=48)):
        compiled = opt.compile(student, trainset=examples(questions[:2]), valset=examples(questions[2:]),
                               num_trials=3, minibatch=False)
    report = compiled.report or {}
    tried = {json.dumps(t.get("candidate", t)) for t in report["trials"]}
    assert any('"k": 2' in t for t in tried) and any('"k": 1' in t for t in tried), report["trials"]
    assert student.settings()["k"] == 1  # the student is left alone
    assert isinstance(compiled, lmbridge.RAG)
    compiled.save(tmp_path / "rag.json")
    assert json.loads((tmp_path / "rag.json").read_text())["rag"]["self"] == compiled.settings()
    restored = lmbridge.RAG(found, k=1, search={"k": [1, 2]}).load(tmp_path / "rag.json")
    assert restored.settings() == compiled.settings()


def test_a_compiled_program_answers_shorter_and_closer_to_gold() -> None:
    train, scored = rows(8, 6), rows(14, 5)
    found = corpus([*train, *scored])
    free = lmbridge.RAG(found, k=1, signature=_free_signature())
    gold = examples(scored)
    evaluate = lmbridge.Evaluate(devset=gold, metric=f1, num_threads=1, display_progress=False)
    with lmbridge.context(lm=lmbridge.LM("local/smollm2", cache=False, max_tokens=96)):
        compiled = lmbridge.LabeledFewShot(k=3, display_progress=False).compile(
            lmbridge.RAG(found, k=1), trainset=examples(train))
        before, after = evaluate(free), evaluate(compiled)

    def words(result: lmbridge.EvaluationResult) -> float:
        answers = [len(r.prediction.answer.split()) for r in result.results if r.prediction is not None]
        return sum(answers) / max(1, len(answers))

    shown = ([r.prediction and r.prediction.answer for r in before.results],
             [r.prediction and r.prediction.answer for r in after.results])
    assert after.errors == 0, shown
    assert words(after) < words(before), shown
    assert after.score > before.score, shown  # mean token F1 (a failed question scores 0)


def _free_signature() -> type[lmbridge.Signature]:
    """The answer step as a user writes it first: free text, no demos."""
    class FreeAnswer(lmbridge.Signature):
        """Answer the question with a short phrase copied from the context."""

        context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
        question: str = lmbridge.InputField()
        answer: str = lmbridge.OutputField(desc="a few words")

    return FreeAnswer
