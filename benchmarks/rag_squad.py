"""RAG over SQuAD with the embedded model: retrieval recall@k and answer EM / F1.

    .venv/bin/python benchmarks/rag_squad.py                  # recall on all 300 dev questions, answers on 20
    .venv/bin/python benchmarks/rag_squad.py --n 5            # a quicker look

Retrieval is ``lmbridge.BM25Retriever`` (the bm25s library) over the 2,067 SQuAD dev paragraphs in
../shared/datasets/squad/corpus.jsonl. Recall@k counts a question as found when the paragraph its
answer comes from is among the k passages retrieved; it needs no model and uses every dev question.

Answers come from ``lmbridge.LM("local/smollm2")`` (SmolLM2-135M-Instruct, in-process, greedy
decoding, cache off) on the first ``n`` dev questions, through two programs that share the
retriever (k passages): ``RAG`` from examples/rag_squad.py (ChainOfThought over the passages), the
same program with a plain Predict in place of the ChainOfThought, and that Predict with 3
demonstrations (as LabeledFewShot would set them) from the train split: short-answer questions
shown with their gold paragraph; and the Predict program compiled by ``BootstrapFewShot`` (token F1
>= 0.5 accepts a trace) on ``--train`` other dev questions, taken from the end of the dev list so
they never overlap the scored ones (the corpus holds only dev paragraphs). EM and F1 are SQuAD's
(after normalisation, best over all gold answers); a question whose answer did not parse scores 0.
Results are printed and saved to benchmarks/results/rag_squad.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import lmbridge  # noqa: E402 - after the path set-up above, so that the checkout is imported
from examples.data import load_jsonl  # noqa: E402
from examples.rag_squad import RAG, AnswerFromContext, load_corpus, load_questions  # noqa: E402


def train_demos(n: int) -> list[lmbridge.Example]:
    """The first n train questions with a short answer (at most 4 words) and a short paragraph."""
    rows = [r for r in load_jsonl("squad", "train") if len(r["answers"][0].split()) <= 4 and len(r["context"]) <= 700]
    return [lmbridge.Example(context=[r["context"]], question=r["question"], answer=r["answers"][0]) for r in rows[:n]]


def recall_at(retriever: lmbridge.BM25Retriever, questions: list[lmbridge.Example], ks: list[int]) -> dict[int, float]:
    top = max(ks)
    hits = {k: 0 for k in ks}
    for q in questions:
        ids = [p.metadata["id"] for p in retriever(q.question, top)]
        for k in ks:
            hits[k] += q.context_id in ids[:k]
    return {k: 100.0 * hits[k] / len(questions) for k in ks}


def answer_scores(program: lmbridge.Module, questions: list[lmbridge.Example]) -> dict[str, float]:
    em, f1 = lmbridge.metrics.exact_match("answer"), lmbridge.metrics.f1("answer")
    start = time.perf_counter()
    result = lmbridge.Evaluate(devset=questions, metric=f1, num_threads=1, display_progress=False)(program)
    elapsed = time.perf_counter() - start
    ems = [em(r.example, r.prediction) if r.prediction is not None else 0.0 for r in result.results]
    return {"em": 100.0 * sum(ems) / len(ems), "f1": result.score, "failed": float(result.errors),
            "calls": float(result.usage.calls), "seconds": elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="dev questions to answer with the model")
    parser.add_argument("--k", type=int, default=3, help="passages given to the model")
    parser.add_argument("--train", type=int, default=24, help="dev questions (from the end) BootstrapFewShot may use")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--out", default=str(HERE / "results" / "rag_squad.txt"))
    args = parser.parse_args(argv)

    retriever = load_corpus()
    everything = load_questions("dev")
    lines = [f"# benchmarks/rag_squad.py --n {args.n} --k {args.k} --train {args.train} --model {args.model}", ""]
    recall = recall_at(retriever, everything, [1, 3, 5, 10])
    lines.append(f"BM25 recall over {len(everything)} dev questions: "
                 + ", ".join(f"recall@{k} = {v:.1f}%" for k, v in recall.items()))
    print(lines[-1], flush=True)

    lm = lmbridge.LM(args.model, cache=False)
    questions = everything[:args.n]
    cot = RAG(retriever, k=args.k)
    plain = RAG(retriever, k=args.k)
    plain.generate = lmbridge.Predict(AnswerFromContext)  # same prompt, no reasoning field
    shown = RAG(retriever, k=args.k)
    shown.generate = lmbridge.Predict(AnswerFromContext, demos=train_demos(3))
    lines += ["", f"answers on the first {len(questions)} dev questions, k={args.k} passages:",
              f"{'program':<28} {'EM':>6} {'F1':>6} {'failed':>7} {'calls':>6} {'seconds':>8}"]
    print("\n".join(lines[-2:]), flush=True)
    trainset = everything[len(everything) - args.train:]
    if set(map(id, trainset)) & set(map(id, questions)):
        parser.error("--n plus --train is more than the dev questions: the scored and training questions overlap")
    with lmbridge.context(lm=lm):
        optimizer = lmbridge.BootstrapFewShot(metric=lmbridge.metrics.f1("answer"), metric_threshold=0.5,
                                            max_bootstrapped_demos=3, max_labeled_demos=0, num_threads=1)
        compiled = optimizer.compile(plain, trainset=trainset)
        report = compiled.report or {}
        demos = len(compiled.generate.demos)  # type: ignore[attr-defined]
        print(f"BootstrapFewShot: {demos} demos from {len(trainset)} questions, {report.get('lm_calls')} LM calls, "
              f"{report.get('wall_time', 0):.0f} s", flush=True)
        for name, program in (("RAG (ChainOfThought)", cot), ("RAG (Predict)", plain),
                              ("RAG (Predict, 3 demos)", shown),
                              (f"RAG (Predict, bootstrap {demos})", compiled)):
            s = answer_scores(program, questions)
            lines.append(f"{name:<28} {s['em']:>6.1f} {s['f1']:>6.1f} {int(s['failed']):>7} {int(s['calls']):>6} "
                         f"{s['seconds']:>8.0f}")
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
