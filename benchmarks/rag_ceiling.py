"""The hand-written RAG ceiling: the prompt a person writes for a small model, with no framework.

    .venv/bin/python benchmarks/rag_ceiling.py [--model smollm2] [--train 20] [--val 20] [--test 100]

bm25s over every SQuAD dev paragraph (English stop words removed, as ``lmbridge.BM25Retriever``), a
raw completion prompt in llama-cpp-python (``Llama.create_completion``, greedy, stopping at the end
of the line) with three "Passage / Question / Answer" demos (train rows with answers of at most four
words and their gold paragraphs), then the retrieved passages and the question. Chosen on the
validation rows: k (1 or 3 passages) and whether an instruction line leads the prompt. lmbridge is
not imported; the splits and the SQuAD EM / F1 are written out here as ``benchmarks/rag_quality.py``
defines them, so the rows sit side by side (``rag_quality.py --optimizers ceiling`` calls ``ceiling``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ceiling import find_model  # noqa: E402 - the GGUF files the embedded models are

DATASETS = Path(os.environ.get("LMBRIDGE_DATASETS", HERE.parent.parent / "shared" / "datasets")) / "squad"
INSTRUCTION = "Answer each question with a short phrase copied from the passage."


def read(split: str) -> list[dict[str, Any]]:
    with (DATASETS / f"{split}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def normalise(text: str) -> list[str]:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def em_f1(answer: str, golds: list[str]) -> tuple[float, float]:
    best_em, best_f1 = 0.0, 0.0
    for gold in golds:
        a, g = normalise(answer), normalise(gold)
        best_em = max(best_em, float(a == g))
        common = sum((Counter(a) & Counter(g)).values())
        if common:
            p, r = common / len(a), common / len(g)
            best_f1 = max(best_f1, 2 * p * r / (p + r))
    return best_em, best_f1


class Search:
    """bm25s over the corpus."""

    def __init__(self) -> None:
        import bm25s

        self.bm25s = bm25s
        self.texts = [r["text"] for r in read("corpus")]
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(self.texts, stopwords="en", show_progress=False), show_progress=False)

    def __call__(self, query: str, k: int) -> list[str]:
        ids, _ = self.index.retrieve(self.bm25s.tokenize([query], stopwords="en", show_progress=False), k=k,
                                     show_progress=False)
        return [self.texts[int(i)] for i in ids[0]]


def prompt(demos: list[dict[str, Any]], passages: list[str], question: str, head: bool) -> str:
    blocks = [INSTRUCTION] if head else []
    blocks += [f"Passage: {d['context']}\nQuestion: {d['question']}\nAnswer: {d['answers'][0]}" for d in demos]
    shown = "\n".join(f"Passage: {p}" for p in passages)
    return "\n\n".join([*blocks, f"{shown}\nQuestion: {question}\nAnswer:"])


def score(llm: Any, search: Search, demos: list[dict[str, Any]], rows: list[dict[str, Any]], k: int,
          head: bool) -> dict[str, float]:
    ems, f1s, words = [], [], []
    for r in rows:
        done = llm.create_completion(prompt=prompt(demos, search(r["question"], k), r["question"], head),
                                     max_tokens=24, temperature=0.0, stop=["\n"])
        answer = done["choices"][0]["text"].strip()
        em, f1 = em_f1(answer, r["answers"])
        ems.append(em)
        f1s.append(f1)
        words.append(len(answer.split()))
    n = max(1, len(rows))
    return {"em": round(100 * sum(ems) / n, 1), "f1": round(100 * sum(f1s) / n, 1),
            "answer_words": round(sum(words) / n, 1)}


def ceiling(model: str, data: dict[str, list[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """Choose k and the instruction on ``data["val"]``, then score ``data["test"]`` once."""
    from llama_cpp import Llama

    threads = int(os.environ.get("LMBRIDGE_LOCAL_THREADS", "0")) or os.cpu_count() or 2
    llm = Llama(model_path=str(find_model(model)), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                verbose=False, seed=0)
    short = [r for r in data["train"] if len(r["answers"][0].split()) <= 4 and len(r["context"]) <= 900]
    demos = random.Random(seed).sample(short, min(3, len(short)))
    search = Search()
    start = time.perf_counter()
    tried = []
    for k in (1, 3):
        for head in (False, True):
            tried.append({"k": k, "instruction": head, **score(llm, search, demos, data["val"], k, head)})
    best = max(tried, key=lambda t: (t["f1"], -t["k"]))
    result = score(llm, search, demos, data["test"], best["k"], best["instruction"])
    return {**result, "failed": 0, "chosen": {"k": best["k"], "instruction": best["instruction"]},
            "val_f1": best["f1"], "tried": tried, "compile_calls": len(tried) * len(data["val"]),
            "compile_seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--val", type=int, default=20)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows, dev = read("train"), read("dev")
    rng.shuffle(rows)
    rng.shuffle(dev)
    data = {"train": rows[:args.train], "val": rows[args.train:args.train + args.val], "test": dev[:args.test]}
    print(json.dumps(ceiling(args.model, data, args.seed)))


if __name__ == "__main__":
    main()
