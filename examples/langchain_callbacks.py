"""A LangChain callback handler printing the run tree of an lmbridge program run as a Runnable.

The handler is an ordinary LangChain tracer (``BaseTracer``), given in ``config={"callbacks": [...]}``
as for any chain; LangSmith's tracer receives the same tree. The program is a small RAG module over
the SQuAD paragraphs: a retrieval (a retriever run), then a ChainOfThought (a predictor run holding a
chat-model run with its messages and token usage).

Runs offline on the embedded model (SmolLM2-135M through llama.cpp):

    python examples/langchain_callbacks.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run

import lmbridge
from examples.data import load_jsonl
from lmbridge.adapters.langchain import to_runnable


class TreePrinter(BaseTracer):
    """Prints each finished run tree: kind, name, and the token usage of chat-model runs."""

    def __init__(self) -> None:
        super().__init__(_schema_format="original+chat")
        self.lines: list[str] = []

    def _persist_run(self, run: Run) -> None:
        self._print(run, 0)
        print("\n".join(self.lines))

    def _print(self, run: Run, depth: int) -> None:
        detail = ""
        if run.run_type == "chat_model" and run.outputs:
            usage = run.outputs["generations"][0][0]["message"]["kwargs"].get("usage_metadata") or {}
            detail = f"  ({usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens)"
        if run.run_type == "retriever" and run.outputs:
            detail = f"  ({len(run.outputs['documents'])} documents)"
        self.lines.append(f"{'  ' * depth}{run.run_type}: {run.name}{detail}")
        for child in sorted(run.child_runs, key=lambda r: r.dotted_order or ""):
            self._print(child, depth + 1)


class RAG(lmbridge.Module):
    """Retrieve two SQuAD paragraphs, then answer with a ChainOfThought."""

    def __init__(self) -> None:
        rows = load_jsonl("squad", "corpus")
        self.retrieve = lmbridge.Retrieve(lmbridge.BM25Retriever([r["text"] for r in rows]), k=2)
        self.answer = lmbridge.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        return self.answer(context=self.retrieve(question).passages, question=question)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    args = parser.parse_args(argv)

    printer = TreePrinter()
    question = load_jsonl("squad", "dev")[0]["question"]
    with lmbridge.context(lm=lmbridge.LM(args.model, max_tokens=48)):
        out: Any = to_runnable(RAG()).invoke(question, {"callbacks": [printer], "run_name": "squad-rag",
                                                        "tags": ["example"]})
    print(f"Q: {question}\nA: {out['answer']}")
    return printer.lines


if __name__ == "__main__":
    main()
