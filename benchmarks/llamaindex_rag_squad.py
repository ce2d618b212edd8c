"""LlamaIndex retrievers on SQuAD through the adapter: recall@k of a VectorStoreIndex (all-MiniLM-L6-v2,
offline), LlamaIndex's BM25Retriever and their reciprocal-rank fusion, on every dev question over the
whole corpus; then, optionally, exact match and F1 of the fused RAG program before and after
BootstrapFewShot on the embedded model.

    python benchmarks/llamaindex_rag_squad.py                 # recall only (no LM), 300 questions
    python benchmarks/llamaindex_rag_squad.py --n 20 --train 24 --k 3   # plus answers (slow on CPU)

Recall@k counts a question as found when the paragraph its answer comes from is among the k passages
the adapter returns; ``k`` sets each retriever's top-k per call. Results go to
benchmarks/results/llamaindex_rag_squad.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import lmbridge  # noqa: E402
from examples.data import load_jsonl  # noqa: E402
from examples.llamaindex_rag_squad import RAG, build_retrievers, recall_at, scores  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=0,
                        help="paragraphs besides the dev questions' own (0: the whole corpus)")
    parser.add_argument("--n", type=int, default=0, help="dev questions answered by the model (0: none)")
    parser.add_argument("--train", type=int, default=24, help="dev questions (from the end) for BootstrapFewShot")
    parser.add_argument("--k", type=int, default=3, help="passages given to the model")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--out", default=str(HERE / "results" / "llamaindex_rag_squad.txt"))
    args = parser.parse_args(argv)

    dev, corpus = load_jsonl("squad", "dev"), load_jsonl("squad", "corpus")
    if args.corpus:
        gold = {q["context_id"] for q in dev}
        corpus = [r for r in corpus if r["id"] in gold] + [r for r in corpus if r["id"] not in gold][:args.corpus]
    start = time.perf_counter()
    retrievers = build_retrievers(corpus, top_k=2)
    lines = [f"# benchmarks/llamaindex_rag_squad.py --corpus {args.corpus} --n {args.n} --train {args.train} "
             f"--k {args.k} --model {args.model}", "",
             f"indexes built over {len(corpus)} paragraphs in {time.perf_counter() - start:.0f} s", "",
             f"recall over {len(dev)} dev questions (through from_llamaindex_retriever):",
             f"{'retriever':<18} {'R@1':>6} {'R@3':>6} {'R@5':>6} {'R@10':>6}"]
    print("\n".join(lines), flush=True)
    for name, retriever in retrievers.items():
        by_k = recall_at(retriever, dev, [1, 3, 5, 10])
        lines.append(f"{name:<18} " + " ".join(f"{by_k[k]:>6.1f}" for k in (1, 3, 5, 10)))
        print(lines[-1], flush=True)
    if args.n:
        def example(q: dict[str, object]) -> lmbridge.Example:
            answers = q["answers"]
            assert isinstance(answers, list)
            return lmbridge.Example(question=q["question"], answer=answers[0], answers=answers).with_inputs("question")

        scored = [example(q) for q in dev[:args.n]]
        trainset = [example(q) for q in dev[len(dev) - args.train:]]
        from lmbridge.adapters.llamaindex import from_llamaindex_retriever

        program = RAG(from_llamaindex_retriever(retrievers["fusion (RRF)"]), k=args.k)
        with lmbridge.context(lm=lmbridge.LM(args.model, cache=False, max_tokens=24)):
            before = scores(program, scored)
            compiled = lmbridge.BootstrapFewShot(metric=lmbridge.metrics.f1("answer"), metric_threshold=0.5,
                                               max_bootstrapped_demos=3, max_labeled_demos=0,
                                               num_threads=1).compile(program, trainset=trainset)
            after = scores(compiled, scored)
        lines += ["", f"fused RAG (Predict, k={args.k}) on the first {args.n} dev questions:",
                  f"before compile: EM {before['em']:.1f}  F1 {before['f1']:.1f}  failed {int(before['failed'])}",
                  f"after  compile: EM {after['em']:.1f}  F1 {after['f1']:.1f}  failed {int(after['failed'])}  "
                  f"({len(compiled.predictors()[0].demos)} demos)"]
        print("\n".join(lines[-3:]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
