"""Multi-hop retrieval over the SQuAD paragraphs: write a query, retrieve, repeat, then answer.

Each hop has its own query writer (a Predict), so an optimizer can tune every hop apart. The
passages found so far are shown to the next query writer, which can then ask for what is still
missing. Runs offline on the embedded model:

    python examples/multihop_squad.py [--n 5] [--hops 2] [--k 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.rag_squad import AnswerFromContext, load_corpus, load_questions


class GenerateQuery(lmbridge.Signature):
    """Write a short search query for the facts still needed to answer the question."""

    context: list[str] = lmbridge.InputField(desc="passages found so far")
    question: str = lmbridge.InputField()
    query: str = lmbridge.OutputField(desc="a few keywords")


class MultiHop(lmbridge.Module):
    def __init__(self, retriever: lmbridge.BM25Retriever, hops: int = 2, k: int = 2) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate_query = [lmbridge.Predict(GenerateQuery, max_tokens=32) for _ in range(hops)]
        self.generate_answer = lmbridge.ChainOfThought(AnswerFromContext)

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        context: list[str] = []
        queries: list[str] = []
        for write_query in self.generate_query:
            query = str(write_query(context=context, question=question).query).strip() or question
            queries.append(query)
            for text in self.retrieve(query).passages:
                if text not in context:
                    context.append(text)
        pred = self.generate_answer(context=context, question=question)
        return pred.copy(queries=queries, context=context)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=5, help="dev questions to answer")
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--k", type=int, default=2, help="passages retrieved per hop")
    args = parser.parse_args(argv)

    lmbridge.configure(lm=lmbridge.LM(args.model))
    program = MultiHop(load_corpus(), hops=args.hops, k=args.k)
    print("predictors:", [name for name, _ in program.named_predictors()])
    questions = load_questions("dev", args.n)
    result = lmbridge.Evaluate(devset=questions, metric=lmbridge.metrics.f1("answer"), num_threads=1,
                             display_progress=False)(program)
    for row in result.results:
        pred = row.prediction
        if pred is None:
            print(f"Q: {row.example.question}\n   failed: {row.error}")
            continue
        print(f"Q: {row.example.question}\n   queries: {pred.queries}\n   gold: {row.example.answers[0]!r}  "
              f"predicted: {pred.answer!r}  F1={row.score:.2f}")
    print(f"answer F1 on {len(questions)} dev questions: {result.score:.1f} "
          f"({result.errors} failed, {result.usage.calls} LM calls)")
    return result.score


if __name__ == "__main__":
    main()
