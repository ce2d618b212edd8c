"""Compile the query engine you already have: a LlamaIndex ``RetrieverQueryEngine`` over SQuAD with its
default prompts, compiled in place by ``compile_query_engine``.

The engine is LlamaIndex's own: BM25 over the SQuAD paragraphs, the default response synthesizer and
its default text QA and refine prompts. Its LLM is the embedded model behind a minimal LlamaIndex
``CustomLLM`` defined here (lmbridge's LlamaIndex LLM wrapper is being built separately). The script
prints EM and F1 on the dev questions before and after, and what the compile learned. The compiled
engine is a copy of the same class that answers through ``query()``.

    python examples/compile_query_engine_squad.py [--train 9] [--n 8] [--corpus 200]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever

import lmbridge
from examples.data import em_f1, load_jsonl, squad_arguments, squad_examples
from lmbridge.adapters.llamaindex import compile_query_engine, from_query_engine


class EmbeddedLLM(CustomLLM):
    """A LlamaIndex completion LLM answering through an lmbridge LM (the embedded model here)."""

    lm: Any

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=str(self.lm.model), context_window=2048, num_output=24)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        completion = self.lm.complete([{"role": "user", "content": prompt}], {})
        return CompletionResponse(text=completion.text.strip())

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        yield self.complete(prompt)


def as_prediction(response: Any) -> lmbridge.Prediction:
    return lmbridge.Prediction(answer=str(response).strip().split("\n")[0])


def f1(example: lmbridge.Example, response: Any, trace: Any = None) -> float:
    """SQuAD token F1 of the engine's own Response against the gold answers."""
    return lmbridge.metrics.f1("answer")(example, as_prediction(response))


def scores(engine: Any, examples: list[lmbridge.Example]) -> tuple[float, float]:
    return em_f1(examples, [as_prediction(engine.query(e.query)) for e in examples])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = squad_arguments(__doc__.splitlines()[0], argv)

    dev, train = load_jsonl("squad", "dev")[:args.n], load_jsonl("squad", "train")[:args.train]
    gold = {q["context_id"] for q in dev + train}
    corpus = load_jsonl("squad", "corpus")
    rows = [r for r in corpus if r["id"] in gold] + [r for r in corpus if r["id"] not in gold][:args.corpus]
    rows += [{"id": q["context_id"], "text": q["context"], "title": q["title"]} for q in train
             if q["context_id"] not in {r["id"] for r in rows}]
    nodes = [TextNode(text=r["text"], id_=r["id"]) for r in rows]
    llm = EmbeddedLLM(lm=lmbridge.LM(args.model, max_tokens=24, temperature=0.0))
    engine = RetrieverQueryEngine.from_args(BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1), llm=llm)
    scored, trainset = squad_examples(dev, "query"), squad_examples(train, "query")
    before = scores(engine, scored)
    start = time.perf_counter()
    compiled = compile_query_engine(engine, trainset=trainset, metric=f1)
    elapsed = time.perf_counter() - start
    after = scores(compiled, scored)
    old, new = engine.get_prompts(), compiled.get_prompts()
    changed = [k for k in old if old[k].get_template() != new[k].get_template()]
    print(f"prompts: {[n for n, _ in from_query_engine(engine).named_predictors()]}")
    print(f"changed by the compile: {changed or 'none (the originals were kept: no gain beyond noise)'}")
    print(f"before compile: EM {before[0]:.1f}  F1 {before[1]:.1f}  ({len(scored)} SQuAD dev questions)")
    print(f"after  compile: EM {after[0]:.1f}  F1 {after[1]:.1f}  (compile {elapsed:.1f}s; {type(compiled).__name__})")
    return {"before": before, "after": after, "engine": compiled, "elapsed": elapsed, "changed": changed}


if __name__ == "__main__":
    main()
