"""A LangChain RAG chain with a compiled lmbridge program as its answering step, scored before and after.

    retriever | to_runnable(program) | StrOutputParser()

1. A LangChain retriever (``BaseRetriever``) over the SQuAD dev paragraphs, BM25-ranked, returns
   ``Document``s with their article title; the runnable turns them into passages.
2. The program answers from the passages. ``LabeledFewShot`` compiles it with SQuAD training rows
   (their gold paragraph as the context; the shortest ones, to keep prompts small) as demos.
3. The same chain, with the uncompiled and then the compiled program, answers held-out dev
   questions; the answer F1 of each is printed.

Runs offline on the embedded model (SmolLM2-135M through llama.cpp):

    python examples/langchain_rag.py [--test 6] [--demos 2] [--k 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough

import lmbridge
from examples.data import load_jsonl
from lmbridge.adapters.langchain import to_runnable


class SquadRetriever(BaseRetriever):
    """BM25 over the SQuAD dev paragraphs, as a LangChain retriever."""

    index: Any
    k: int = 2

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(p.text, metadata={"title": p.metadata["title"]}) for p in self.index(query, self.k)]


class AnswerFromContext(lmbridge.Signature):
    """Answer the question with a short phrase copied from the context."""

    context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField(desc="a few words")


def retriever(k: int) -> SquadRetriever:
    rows = load_jsonl("squad", "corpus")
    index = lmbridge.BM25Retriever([r["text"] for r in rows], [{"title": r["title"]} for r in rows])
    return SquadRetriever(index=index, k=k)


def chain_for(program: lmbridge.Module, docs: SquadRetriever) -> Runnable[Any, Any]:
    return {"context": docs, "question": RunnablePassthrough()} | to_runnable(program) | StrOutputParser()


def score(chain: Runnable[Any, Any], rows: list[dict[str, Any]]) -> float:
    # An answer cut off at max_tokens (TruncatedError) or unreadable (ParseError) scores 0: never read.
    answers = chain.batch([r["question"] for r in rows], config={"max_concurrency": 1}, return_exceptions=True)
    for a in answers:
        if isinstance(a, Exception) and not isinstance(a, (lmbridge.ParseError, lmbridge.TruncatedError)):
            raise a
    f1 = lmbridge.metrics.token_f1
    return 100.0 * sum(max(f1(a, g) for g in r["answers"]) for a, r in zip(answers, rows)
                       if isinstance(a, str)) / len(rows)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--test", type=int, default=6, help="dev questions to score")
    parser.add_argument("--demos", type=int, default=2)
    parser.add_argument("--k", type=int, default=2, help="passages per question")
    args = parser.parse_args(argv)

    docs = retriever(args.k)
    short = sorted(load_jsonl("squad", "train")[:300], key=lambda r: len(r["context"]))[:20]  # short demos
    trainset = [lmbridge.Example(context=[r["context"]], question=r["question"], answer=r["answers"][0])
                .with_inputs("context", "question") for r in short]
    program = lmbridge.Predict(AnswerFromContext)
    compiled = lmbridge.LabeledFewShot(k=args.demos, display_progress=False).compile(program, trainset=trainset)
    test = load_jsonl("squad", "dev")[-args.test:]
    with lmbridge.context(lm=lmbridge.LM(args.model, max_tokens=16)):
        before = score(chain_for(program, docs), test)
        after = score(chain_for(compiled, docs), test)
    print(f"answer F1 on {len(test)} SQuAD dev questions: {before:.1f} before, {after:.1f} after "
          f"compiling with {args.demos} demos")
    return before, after


if __name__ == "__main__":
    main()
