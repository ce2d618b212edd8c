"""LlamaIndex retrievers inside a compiled lmbridge RAG program, served back as a LlamaIndex query engine.

The SQuAD dev paragraphs (../shared/datasets/squad) go into a LlamaIndex ``VectorStoreIndex``
embedded offline by all-MiniLM-L6-v2 (``lmbridge.SentenceTransformerEmbedder`` wrapped as a LlamaIndex
embedding) and into LlamaIndex's ``BM25Retriever``; a ``QueryFusionRetriever`` fuses the two by
reciprocal rank. That retriever feeds a bridge RAG program, which ``BootstrapFewShot`` compiles on
the embedded model; the compiled program is then served as a LlamaIndex query engine. Printed:
recall@k of each retriever, and exact match and F1 before and after the compile.

    python examples/llamaindex_rag_squad.py [--corpus 300] [--recall 50] [--n 4] [--train 4] [--k 1]

The corpus is the paragraphs of the questions used plus the first ``--corpus`` others (0: all 2,067).
Training questions come from the SQuAD train split, which is disjoint from the dev questions scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.data import load_jsonl
from lmbridge.adapters.llamaindex import from_llamaindex_retriever, to_llamaindex_embedding, to_query_engine


class AnswerFromContext(lmbridge.Signature):
    """Answer the question with a short phrase copied from the context."""

    context: list[str] = lmbridge.InputField(desc="passages that may hold the answer")
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField(desc="a few words")


class RAG(lmbridge.Module):
    """Retrieve k passages with a LlamaIndex retriever, then answer from them."""

    def __init__(self, retriever: Any, k: int = 1) -> None:
        self.retrieve = lmbridge.Retrieve(retriever, k=k)
        self.generate = lmbridge.Predict(AnswerFromContext)

    def forward(self, question: str) -> lmbridge.Prediction:  # type: ignore[override]
        return self.generate(context=self.retrieve(question).passages, question=question)


def build_retrievers(rows: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """The vector, BM25 and fused LlamaIndex retrievers over ``rows`` (SQuAD paragraphs)."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = [TextNode(text=r["text"], id_=r["id"], metadata={"title": r["title"]}) for r in rows]
    embed = to_llamaindex_embedding(lmbridge.SentenceTransformerEmbedder())
    vector = VectorStoreIndex(nodes, embed_model=embed).as_retriever(similarity_top_k=top_k)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k)
    # num_queries=1: no query rewriting, so the LLM the fusion retriever insists on is never called
    fused = QueryFusionRetriever([vector, bm25], similarity_top_k=top_k, num_queries=1, mode="reciprocal_rerank",
                                 use_async=False, llm=MockLLM())
    return {"vector (MiniLM)": vector, "BM25": bm25, "fusion (RRF)": fused}


def recall_at(retriever: Any, questions: list[dict[str, Any]], ks: list[int]) -> dict[int, float]:
    """Percent of questions whose gold paragraph is among the k passages retrieved, through the adapter."""
    adapted = from_llamaindex_retriever(retriever)
    hits = dict.fromkeys(ks, 0)
    for q in questions:
        ids = [p.metadata["node_id"] for p in adapted(q["question"], max(ks))]
        for k in ks:
            hits[k] += q["context_id"] in ids[:k]
    return {k: 100.0 * hits[k] / len(questions) for k in ks}


def scores(program: lmbridge.Module, examples: list[lmbridge.Example]) -> dict[str, float]:
    em, f1 = lmbridge.metrics.exact_match("answer"), lmbridge.metrics.f1("answer")
    result = lmbridge.Evaluate(devset=examples, metric=f1, num_threads=1, display_progress=False)(program)
    ems = [em(r.example, r.prediction) if r.prediction is not None else 0.0 for r in result.results]
    return {"em": 100.0 * sum(ems) / len(ems), "f1": result.score, "failed": float(result.errors)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--corpus", type=int, default=300, help="other paragraphs in the corpus (0: all)")
    parser.add_argument("--recall", type=int, default=50, help="dev questions for recall@k")
    parser.add_argument("--n", type=int, default=4, help="dev questions answered before and after the compile")
    parser.add_argument("--train", type=int, default=4, help="train-split questions for BootstrapFewShot")
    parser.add_argument("--k", type=int, default=1, help="passages given to the model")
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args(argv)

    dev, train = load_jsonl("squad", "dev"), load_jsonl("squad", "train")[:args.train]
    used = dev[:max(args.recall, args.n)] + train
    corpus = load_jsonl("squad", "corpus")
    gold = {q["context_id"] for q in used}
    rows = [r for r in corpus if r["id"] in gold]
    rows += [r for r in corpus if r["id"] not in gold][:args.corpus or None]
    retrievers = build_retrievers(rows, top_k=2)
    print(f"corpus: {len(rows)} SQuAD paragraphs")

    recall = {name: recall_at(r, dev[:args.recall], [1, 3, 5]) for name, r in retrievers.items()}
    for name, by_k in recall.items():
        print(f"{name:<16} " + "  ".join(f"R@{k}={v:5.1f}" for k, v in by_k.items())
              + f"  ({args.recall} dev questions)")

    def example(q: dict[str, Any]) -> lmbridge.Example:
        return lmbridge.Example(question=q["question"], answer=q["answers"][0], answers=q["answers"]).with_inputs(
            "question")

    scored, trainset = [example(q) for q in dev[:args.n]], [example(q) for q in train]
    lm = lmbridge.LM(args.model, max_tokens=args.max_tokens)
    program = RAG(from_llamaindex_retriever(retrievers["fusion (RRF)"]), k=args.k)
    with lmbridge.context(lm=lm):
        before = scores(program, scored)
        optimizer = lmbridge.BootstrapFewShot(metric=lmbridge.metrics.f1("answer"), metric_threshold=0.5,
                                            max_bootstrapped_demos=2, max_labeled_demos=0, num_threads=1)
        compiled = optimizer.compile(program, trainset=trainset)
        after = scores(compiled, scored)
        engine = to_query_engine(compiled)
        response = engine.query(scored[0].question)
    demos = len(compiled.predictors()[0].demos)
    print(f"before compile: EM {before['em']:.1f}  F1 {before['f1']:.1f}  ({int(before['failed'])} failed)")
    print(f"after  compile: EM {after['em']:.1f}  F1 {after['f1']:.1f}  ({int(after['failed'])} failed, "
          f"{demos} demos)")
    print(f"query engine: {scored[0].question!r} -> {response.response!r}, sources "
          f"{[n.node.node_id for n in response.source_nodes]}")
    return {"corpus": len(rows), "recall": recall, "before": before, "after": after, "demos": demos,
            "response": response}


if __name__ == "__main__":
    main()
