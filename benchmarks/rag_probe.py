"""What moves RAG answer F1 on an embedded model: a quick probe on SQuAD train questions (no compile).

    LMBRIDGE_LOCAL_THREADS=1 .venv/bin/python benchmarks/rag_probe.py [--model local/smollm2] [--n 30]
        [--only "extractive k3,extractive+short+demos k1"]

Each variant is a hand-set RAG program (BM25 over every SQuAD dev paragraph) scored on the first
``--n`` questions of train.jsonl (never on dev): the answer free or extractive (``extract_from``),
an instruction about the answer's length or not, three labelled demos (train rows 150+ with answers
of at most four words, shown with their gold paragraph) or none, and k = 3 or 1 passages. It prints
EM, F1, failures, seconds per LM call and the mean answer length in words.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.data import load_jsonl

SHORT = ("Read the passages and answer the question with the exact words from the passages: a name, number, "
         "date or short phrase of 1 to 5 words. Do not write a sentence.")


def signature(extractive: bool, short: bool) -> type[lmbridge.Signature]:
    class Answer(lmbridge.Signature):
        """Answer the question with a short phrase copied from the context."""

        context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
        question: str = lmbridge.InputField()
        answer: str = lmbridge.OutputField(desc="a few words", extract_from="context" if extractive else None)

    return Answer.with_instructions(SHORT) if short else Answer


VARIANTS = {  # name: (extractive, short instruction, demos, k)
    "free k3": (False, False, False, 3), "free+short k3": (False, True, False, 3),
    "free+demos k3": (False, False, True, 3), "extractive k3": (True, False, False, 3),
    "extractive+short+demos k3": (True, True, True, 3), "extractive+short+demos k1": (True, True, True, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = parser.parse_args()
    fmt = lmbridge.TextFormat() if args.model == "local/gemma3" else None
    train = load_jsonl("squad", "train")
    demo_rows = [r for r in train[150:] if len(r["answers"][0].split()) <= 4 and len(r["context"]) <= 700][:3]
    demos = [lmbridge.Example(context=[r["context"]], question=r["question"], answer=r["answers"][0])
             for r in demo_rows]
    rows = [lmbridge.Example(question=r["question"], answer=r["answers"][0], answers=r["answers"]).with_inputs(
        "question") for r in train[:args.n]]
    corpus = load_jsonl("squad", "corpus")
    bm25 = lmbridge.BM25Retriever([r["text"] for r in corpus])
    em, f1 = lmbridge.metrics.exact_match("answer"), lmbridge.metrics.f1("answer")
    with lmbridge.context(lm=lmbridge.LM(args.model, cache=False, max_tokens=64)):
        for name, (extractive, short, shown, k) in VARIANTS.items():
            if args.only and name not in args.only.split(","):
                continue
            program = lmbridge.RAG(bm25, signature(extractive, short), k=k, format=fmt)
            program.answer.demos = list(demos) if shown else []
            start = time.perf_counter()
            result = lmbridge.Evaluate(devset=rows, metric=f1, num_threads=1, display_progress=False)(program)
            seconds = (time.perf_counter() - start) / max(1, result.usage.calls)
            ems = [em(r.example, r.prediction) if r.prediction is not None else 0.0 for r in result.results]
            words = [len(str(r.prediction.answer).split()) for r in result.results if r.prediction is not None]
            print(f"{args.model} {name:<27} EM {100 * sum(ems) / len(ems):5.1f} F1 {result.score:5.1f} "
                  f"failed {result.errors} s/call {seconds:.1f} words {sum(words) / max(1, len(words)):.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
