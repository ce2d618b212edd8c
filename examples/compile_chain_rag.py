"""A two-prompt LangChain RAG chain over SQuAD, compiled end to end in place.

The chain is plain LCEL: a first prompt rewrites the question as a search query, BM25 retrieves a
paragraph for it, and a second prompt answers from that paragraph. ``from_chain`` finds both
prompts; ``BootstrapFewShot`` runs the whole chain on training questions and keeps, for each prompt,
what it rendered and what the model replied in the runs the metric accepts; ``to_chain`` hands back
the chain with both prompts compiled. Printed: EM/F1 before and after, and each prompt's demos.

    python examples/compile_chain_rag.py [--train 9] [--n 8] [--corpus 200]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

import lmbridge
from examples.data import em_f1, load_jsonl, squad_arguments, squad_examples
from lmbridge.adapters.langchain import BridgeChatModel, from_chain

REWRITE = ChatPromptTemplate.from_messages([
    ("system", "Rewrite the question as a short search query."),
    ("human", "{question}"),
])
ANSWER = ChatPromptTemplate.from_messages([
    ("system", "Answer the question with a short phrase copied from the context."),
    ("human", "Context: {context}\n\nQuestion: {question}"),
])


def build_chain(model: Any, retriever: lmbridge.BM25Retriever) -> Runnable[Any, Any]:
    search = RunnableLambda(lambda query: "\n".join(p.text for p in retriever(query, 1)))
    rewrite = REWRITE | model | StrOutputParser() | search
    return RunnablePassthrough.assign(context=rewrite) | ANSWER | model | StrOutputParser()


def as_prediction(output: Any) -> lmbridge.Prediction:
    return lmbridge.Prediction(answer=str(output).strip())


def f1(example: lmbridge.Example, output: Any, trace: Any = None) -> float:
    """SQuAD token F1 of the chain's own output (a string) against the gold answers."""
    return lmbridge.metrics.f1("answer")(example, as_prediction(output))


def scores(chain: Any, examples: list[lmbridge.Example]) -> tuple[float, float]:
    return em_f1(examples, [as_prediction(chain.invoke({"question": e.question})) for e in examples])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = squad_arguments(__doc__.splitlines()[0], argv)

    dev, train = load_jsonl("squad", "dev")[:args.n], load_jsonl("squad", "train")[:args.train]
    corpus = [q["context"] for q in dev + train] + [r["text"] for r in load_jsonl("squad", "corpus")[:args.corpus]]
    model = BridgeChatModel(lm=lmbridge.LM(args.model, max_tokens=24, temperature=0.0))
    chain = build_chain(model, lmbridge.BM25Retriever(list(dict.fromkeys(corpus))))
    scored, trainset = squad_examples(dev), squad_examples(train)
    cut = len(trainset) * 2 // 3
    before = scores(chain, scored)
    start = time.perf_counter()
    program = from_chain(chain)
    optimizer = lmbridge.BootstrapFewShot(f1, metric_threshold=0.5, max_bootstrapped_demos=2, max_labeled_demos=0)
    compiled = optimizer.compile(program, trainset=trainset[:cut], valset=trainset[cut:])
    elapsed = time.perf_counter() - start
    after = scores(compiled.to_chain(), scored)  # type: ignore[attr-defined]
    demos = {name: len(p.demos) for name, p in compiled.named_predictors()}
    kept = (compiled.report or {}).get("selection", {})
    print(f"prompts: {list(demos)}")
    print(f"before compile: EM {before[0]:.1f}  F1 {before[1]:.1f}  ({len(scored)} SQuAD dev questions)")
    print(f"after  compile: EM {after[0]:.1f}  F1 {after[1]:.1f}  (compile {elapsed:.1f}s)")
    print(f"demos per prompt: {demos}; selection: {kept.get('kept', 'winner')} ({kept.get('reason', '')})")
    return {"before": before, "after": after, "demos": demos, "selection": kept}


if __name__ == "__main__":
    main()
