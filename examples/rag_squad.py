"""Retrieval-augmented QA over the SQuAD paragraphs: BM25 retrieves, ChainOfThought answers.

The corpus is the 2,067 paragraphs of the SQuAD v1.1 dev articles (../shared/datasets/squad);
the questions are the held-out dev questions. Runs offline on the embedded model:

    python examples/rag_squad.py [--n 5] [--k 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.data import load_jsonl


def load_corpus() -> lmbridge.BM25Retriever:
    """A BM25 index over every SQuAD dev paragraph, with its id and article title as metadata."""
    rows = load_jsonl("squad", "corpus")
    return lmbridge.BM25Retriever([r["text"] for r in rows], [{"id": r["id"], "title": r["title"]} for r in rows])


def load_questions(split: str = "dev", n: int | None = None) -> list[lmbridge.Example]:
    """SQuAD questions with all gold answers and the id of the paragraph that holds them."""
    rows = load_jsonl("squad", split)[:n]
    return [lmbridge.Example(question=r["question"], answers=r["answers"],
                           context_id=r["context_id"]).with_inputs("question") for r in rows]


class AnswerFromContext(lmbridge.Signature):
    """Answer the question with a short phrase copied from the context."""

    context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField(desc="a few words")


class RAG(lmbridge.Module):
    """Retrieve k passages for the question, then answer from them."""

    def __init__(self, retriever: lmbridge.BM25Retriever, k: int = 3) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate = lmbridge.ChainOfThought(AnswerFromContext)

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        passages = self.retrieve(question)
        pred = self.generate(context=passages.passages, question=question)
        return pred.copy(context_ids=[p.metadata["id"] for p in passages.passage_objects])


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=5, help="dev questions to answer")
    parser.add_argument("--k", type=int, default=3, help="passages retrieved per question")
    args = parser.parse_args(argv)

    lmbridge.configure(lm=lmbridge.LM(args.model))
    program = RAG(load_corpus(), k=args.k)
    questions = load_questions("dev", args.n)
    result = lmbridge.Evaluate(devset=questions, metric=lmbridge.metrics.f1("answer"), num_threads=1,
                             display_progress=False)(program)
    for row in result.results:
        pred = row.prediction
        hit = pred is not None and row.example.context_id in pred.context_ids
        shown = "(failed: " + str(row.error) + ")" if pred is None else repr(pred.answer)
        print(f"Q: {row.example.question}\n   gold: {row.example.answers[0]!r}  predicted: {shown}  "
              f"F1={row.score:.2f}  gold paragraph retrieved: {hit}")
    print(f"answer F1 on {len(questions)} dev questions: {result.score:.1f} "
          f"({result.errors} failed, {result.usage.calls} LM calls)")
    return result.score


if __name__ == "__main__":
    main()
