"""RAG quality on SQuAD: does compiling a RAG program raise its answers' EM / F1 on the embedded models?

    .venv/bin/python benchmarks/rag_quality.py [--models smollm2,gemma3] [--train 20] [--val 20] [--test 100]
        [--optimizers free,uncompiled,labeled,bootstrap,mipro,ceiling] [--retriever bm25|llamaindex] [--seed 0]

Data (../shared/datasets/squad): the corpus is every SQuAD v1.1 dev paragraph (2,067); train and
validation rows come from train.jsonl (a seeded shuffle: the first ``--train`` rows, then ``--val``),
the test rows are the first ``--test`` of a seeded shuffle of dev.jsonl. Choices (the compile's, the
ceiling's prompt) are made on train and validation rows only; the test rows only judge.

Rows, per model (``local/smollm2``: chat format; ``local/gemma3``, a base model: ``TextFormat``):
- ``free``: the RAG program as examples/rag_squad.py wrote it before extractive fields (BM25, k=3, a
  Predict whose answer is free text);
- ``uncompiled``: ``lmbridge.RAG(retriever, k=3)``: the same, with the answer extractive (a span of
  the passages, constrained at decode time);
- ``labeled``: ``LabeledFewShot(k=3)``: three train rows as demos, each with its gold paragraph and
  the first gold answer;
- ``bootstrap``: ``BootstrapFewShot`` (traces kept at token F1 >= 0.8, which weighs precision: a long
  answer holding the gold words scores low);
- ``mipro``: ``MIPROv2`` (3 candidates, 5 trials; labelled and bootstrapped demos, instructions, and the
  retrieval settings: k in 1, 3, 5, searched jointly and scored end to end);
- ``recipe``: the extractive recipe MIPROv2 scores before its search, set by hand: k=1, the proposer's
  instruction about the span's length, ``LabeledFewShot(k=3)``;
- ``ceiling``: the hand-written prompt (below), no lmbridge code;
- ``saved=<file>``: a program compiled and saved (``--save``) by an earlier run, loaded into this
  run's RAG (for example, compiled on BM25Retriever, scored through LlamaIndex's BM25Retriever).
The recommended optimizer is ``RECOMMENDED``. EM and F1 are SQuAD's (normalised, best over the gold
answers); a failed question scores 0 and is counted. LM calls and wall time are the compile's.

The ceiling is what a person writes by hand for the same model, retriever and rows: bm25s over the
same corpus (stop words removed, as ``BM25Retriever``), a raw completion prompt with three
"Passage / Question / Answer" demos (train rows with short answers and their gold paragraphs) and
the retrieved passages, greedy decoding that stops at the end of the line. k (1 or 3) and whether
an instruction line leads are chosen on the validation rows. Only llama-cpp-python and bm25s.

Printed and saved to benchmarks/results/rag_quality.txt (rows as JSON lines after the table).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import lmbridge  # noqa: E402
from examples.data import load_jsonl  # noqa: E402

RECOMMENDED = "mipro"
"""The optimizer docs/retrieval-rag.md recommends for RAG on the embedded models (measured here)."""
OPTIMIZERS = ["free", "uncompiled", "labeled", "bootstrap", "mipro", "recipe", "ceiling"]
RECIPE_INSTRUCTION = ("Answer with the shortest phrase copied from the context: a name, number, date or a few words, "
                      "never a sentence.")


def splits(seed: int, train: int, val: int, test: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    rows, dev = load_jsonl("squad", "train"), load_jsonl("squad", "dev")
    rng.shuffle(rows)
    rng.shuffle(dev)
    return {"train": rows[:train], "val": rows[train:train + val], "test": dev[:test]}


def examples(rows: list[dict[str, Any]]) -> list[lmbridge.Example]:
    """Questions with every gold answer; ``context`` (the gold paragraph) is there for labelled demos."""
    return [lmbridge.Example(question=r["question"], answer=r["answers"][0], answers=r["answers"],
                             context=[r["context"]]).with_inputs("question") for r in rows]


def retriever(kind: str) -> Any:
    corpus = load_jsonl("squad", "corpus")
    if kind == "bm25":
        return lmbridge.BM25Retriever([r["text"] for r in corpus], [{"id": r["id"]} for r in corpus])
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    from lmbridge.adapters.llamaindex import from_llamaindex_retriever

    nodes = [TextNode(text=r["text"], id_=r["id"]) for r in corpus]
    return from_llamaindex_retriever(BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=5))


class FreeAnswer(lmbridge.Signature):
    """Answer the question with a short phrase copied from the context."""

    context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField(desc="a few words")


def student(kind: str, found: Any, fmt: lmbridge.PromptFormat | None) -> lmbridge.RAG:
    if kind == "free":
        return lmbridge.RAG(found, FreeAnswer, k=3, format=fmt)
    return lmbridge.RAG(found, k=3, format=fmt, search={"k": [1, 3, 5]})


def compiled(name: str, program: lmbridge.RAG, train: list[lmbridge.Example],
             val: list[lmbridge.Example]) -> lmbridge.Module:
    f1 = lmbridge.metrics.f1("answer")
    if name in ("free", "uncompiled"):
        return program
    if name.startswith("saved="):  # a program compiled by an earlier run, on this run's retriever
        return program.load(name.partition("=")[2])
    if name == "labeled":
        return lmbridge.LabeledFewShot(k=3, display_progress=False).compile(program, trainset=train)
    if name == "recipe":  # MIPROv2's seeded extractive recipe, set by hand: no search, no selection
        program.apply_settings({"k": 1})
        program.answer.instructions = RECIPE_INSTRUCTION
        return lmbridge.LabeledFewShot(k=3, display_progress=False).compile(program, trainset=train)
    if name == "bootstrap":
        return lmbridge.BootstrapFewShot(metric=f1, metric_threshold=0.8, max_bootstrapped_demos=3,
                                         max_labeled_demos=0, num_threads=1).compile(program, trainset=train)
    opt = lmbridge.MIPROv2(f1, auto=None, num_candidates=3, max_bootstrapped_demos=2, max_labeled_demos=3,
                           num_threads=1, formats=[], display_progress=False)
    return opt.compile(program, trainset=train, valset=val, num_trials=5, minibatch_size=10)


def scores(program: lmbridge.Module, rows: list[lmbridge.Example]) -> dict[str, Any]:
    em, f1 = lmbridge.metrics.exact_match("answer"), lmbridge.metrics.f1("answer")
    result = lmbridge.Evaluate(devset=rows, metric=f1, num_threads=1, display_progress=False)(program)
    ems = [em(r.example, r.prediction) if r.prediction is not None else 0.0 for r in result.results]
    words = [len(str(r.prediction.answer).split()) for r in result.results if r.prediction is not None]
    return {"em": round(100.0 * sum(ems) / len(ems), 1), "f1": round(result.score, 1), "failed": result.errors,
            "test_calls": result.usage.calls, "answer_words": round(sum(words) / max(1, len(words)), 1)}


def run_lmbridge(name: str, model: str, data: dict[str, Any], found: Any, save: str | None) -> dict[str, Any]:
    fmt = lmbridge.TextFormat() if model == "gemma3" else None
    train, val, test = (examples(data[s]) for s in ("train", "val", "test"))
    lm = lmbridge.LM(f"local/{model}", cache=False, max_tokens=64)
    with lmbridge.context(lm=lm):
        start = time.perf_counter()
        program = compiled(name, student(name, found, fmt), train, val)
        seconds = time.perf_counter() - start
        if save:
            Path(save).mkdir(parents=True, exist_ok=True)
            program.save(Path(save) / f"{model}-{name.replace('/', '_').replace('=', '_')}.json")
        report = program.report or {}
        row = {"model": model, "row": name, **scores(program, test),
               "compile_calls": report.get("lm_calls", 0), "compile_seconds": round(seconds, 1),
               "settings": program.settings() if isinstance(program, lmbridge.RAG) else None,
               "demos": len(program.answer.demos) if isinstance(program, lmbridge.RAG) else None,
               "kept": (report.get("selection") or {}).get("kept")}
    return row


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    data = splits(args.seed, args.train, args.val, args.test)
    found = retriever(args.retriever)
    out = []
    for model in args.models.split(","):
        for name in args.optimizers.split(","):
            if name == "ceiling":
                from rag_ceiling import ceiling

                row = {"model": model, "row": "ceiling", **ceiling(model, data, args.seed)}
            else:
                row = run_lmbridge(name, model, data, found, args.save)
            row["recommended"] = name == RECOMMENDED
            out.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"RAG over SQuAD: retriever {args.retriever}, seed {args.seed}, train {args.train}, val {args.val}, "
             f"test {args.test} (dev)", f"command: {' '.join(sys.argv)}", "",
             f"{'model':<8} {'row':<11} {'EM':>5} {'F1':>5} {'failed':>6} {'words':>5} {'calls':>6} {'seconds':>7}"
             "  settings / chosen"]
    for r in rows:
        chosen = r.get("settings") or r.get("chosen") or ""
        mark = " (recommended)" if r.get("recommended") else ""
        lines.append(f"{r['model']:<8} {r['row']:<11} {r['em']:>5.1f} {r['f1']:>5.1f} {r['failed']:>6} "
                     f"{r['answer_words']:>5.1f} {r.get('compile_calls', 0):>6} {r.get('compile_seconds', 0):>7.0f}"
                     f"  {json.dumps(chosen)}{mark}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--retriever", choices=["bm25", "llamaindex"], default="bm25")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--val", type=int, default=20)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "rag_quality.txt"))
    parser.add_argument("--save", help="a folder to save each program scored in (JSON state)")
    args = parser.parse_args()
    rows = run(args)
    text = table(rows, args) + "\n\n" + "\n".join(json.dumps(r) for r in rows) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
