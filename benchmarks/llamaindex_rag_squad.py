"""LlamaIndex retrievers on SQuAD through the adapter: recall@k of a VectorStoreIndex (all-MiniLM-L6-v2,
offline), LlamaIndex's BM25Retriever and their reciprocal-rank fusion, on every dev question over the
whole corpus; then, optionally, exact match and F1 of the fused RAG program before and after
BootstrapFewShot on the embedded model.

    python benchmarks/llamaindex_rag_squad.py                      # recall only (no LM), 300 questions
    python benchmarks/llamaindex_rag_squad.py --recall 0 --n 20    # answers only (slow on CPU)
    python benchmarks/llamaindex_rag_squad.py --recall 0 --n 20 --validate   # same, on held-out train rows

Recall@k counts a question as found when the paragraph its answer comes from is among the k passages
the adapter returns; ``k`` sets each retriever's top-k per call (a fusion retriever's own retrievers
are raised to it too). The compile's trainset is the first ``--train`` rows of the SQuAD train split
(disjoint from dev). ``--validate`` scores the ``--n`` train rows that follow the trainset instead of
dev questions: settings (model, k, threshold, tokens) are chosen there, never on dev. Results go to
benchmarks/results/llamaindex_rag_squad.txt (``--out`` for another file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import lmbridge  # noqa: E402
from examples.data import load_jsonl  # noqa: E402
from examples.llamaindex_rag_squad import RAG, build_retrievers, recall_at, scores  # noqa: E402


def example(q: dict[str, Any]) -> lmbridge.Example:
    return lmbridge.Example(question=q["question"], answer=q["answers"][0], answers=q["answers"]).with_inputs(
        "question")


def answers(args: argparse.Namespace, retriever: Any) -> list[str]:
    """EM and F1 of the fused RAG program on the scored rows, before and after BootstrapFewShot."""
    from lmbridge.adapters.llamaindex import from_llamaindex_retriever

    train = load_jsonl("squad", "train")
    trainset = [example(q) for q in train[:args.train]]
    if args.validate:
        rows, where = train[args.train:args.train + args.n], f"train rows {args.train}-{args.train + args.n - 1}"
    else:
        rows, where = load_jsonl("squad", "dev")[:args.n], f"the first {args.n} dev questions"
    scored = [example(q) for q in rows]
    assert not {e.question for e in scored} & {e.question for e in trainset}
    program = RAG(from_llamaindex_retriever(retriever), k=args.k)
    lm = lmbridge.LM(args.model, cache=False, max_tokens=args.max_tokens)
    with lmbridge.context(lm=lm):
        start = time.perf_counter()
        before = scores(program, scored)
        mid = time.perf_counter()
        compiled = lmbridge.BootstrapFewShot(
            metric=lmbridge.metrics.f1("answer"), metric_threshold=args.threshold,
            max_bootstrapped_demos=args.demos, max_labeled_demos=0, num_threads=1,
            display_progress=False).compile(program, trainset=trainset)
        compiled_at = time.perf_counter()
        after = scores(compiled, scored)
        end = time.perf_counter()
    demos = compiled.predictors()[0].demos
    return [f"fused RAG (Predict, k={args.k}, {args.model}, max_tokens {args.max_tokens}) on {where}; "
            f"BootstrapFewShot on train rows 0-{args.train - 1}, F1 threshold {args.threshold}:",
            f"before compile: EM {before['em']:5.1f}  F1 {before['f1']:5.1f}  failed {int(before['failed'])}  "
            f"({mid - start:.0f} s)",
            f"after  compile: EM {after['em']:5.1f}  F1 {after['f1']:5.1f}  failed {int(after['failed'])}  "
            f"({end - compiled_at:.0f} s; {len(demos)} demos kept, compile {compiled_at - mid:.0f} s)",
            *(f"  demo: {d['question']!r} -> {d['answer']!r}" for d in demos)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=0,
                        help="paragraphs besides the questions' own (0: the whole corpus)")
    parser.add_argument("--recall", type=int, default=300, help="dev questions for recall@k (0: none)")
    parser.add_argument("--n", type=int, default=0, help="questions answered by the model (0: none)")
    parser.add_argument("--train", type=int, default=24, help="train-split rows for BootstrapFewShot")
    parser.add_argument("--validate", action="store_true",
                        help="score the n train rows after the trainset, not dev (to choose settings)")
    parser.add_argument("--k", type=int, default=3, help="passages given to the model")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--threshold", type=float, default=0.5, help="F1 a bootstrapped trace must reach")
    parser.add_argument("--demos", type=int, default=3, help="bootstrapped demos kept at most")
    parser.add_argument("--out", default=str(HERE / "results" / "llamaindex_rag_squad.txt"))
    args = parser.parse_args(argv)

    dev, train, corpus = load_jsonl("squad", "dev"), load_jsonl("squad", "train"), load_jsonl("squad", "corpus")
    if args.corpus:
        gold = {q["context_id"] for q in dev + train}
        corpus = [r for r in corpus if r["id"] in gold] + [r for r in corpus if r["id"] not in gold][:args.corpus]
    command = " ".join(["benchmarks/llamaindex_rag_squad.py", *sys.argv[1:]] if argv is None else argv)
    lines = [f"# {command}", f"# {time.strftime('%Y-%m-%d', time.gmtime())}, "
             f"LMBRIDGE_LOCAL_THREADS={os.environ.get('LMBRIDGE_LOCAL_THREADS', '')}", ""]
    start = time.perf_counter()
    retrievers = build_retrievers(corpus, top_k=2)
    lines += [f"indexes built over {len(corpus)} paragraphs in {time.perf_counter() - start:.0f} s", ""]
    print("\n".join(lines), flush=True)
    if args.recall:
        questions = dev[:args.recall]
        lines += [f"recall over {len(questions)} dev questions (through from_llamaindex_retriever):",
                  f"{'retriever':<18} {'R@1':>6} {'R@3':>6} {'R@5':>6} {'R@10':>6} {'s':>6}"]
        print("\n".join(lines[-2:]), flush=True)
        for name, retriever in retrievers.items():
            start = time.perf_counter()
            by_k = recall_at(retriever, questions, [1, 3, 5, 10])
            lines.append(f"{name:<18} " + " ".join(f"{by_k[k]:>6.1f}" for k in (1, 3, 5, 10))
                         + f" {time.perf_counter() - start:>6.0f}")
            print(lines[-1], flush=True)
    if args.n:
        scored = answers(args, retrievers["fusion (RRF)"])
        lines += ["", *scored]
        print("\n".join(scored), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
