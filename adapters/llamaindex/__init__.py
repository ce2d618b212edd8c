"""LlamaIndex integration, both ways. Every public name lives in a module of its own concept and is
re-exported here:

* retrievers in: ``from_llamaindex_retriever(retriever, k)``,
  with ``k`` setting the retriever's top-k per call, postprocessors, filters and ``QueryBundle``s;
* programs out: ``to_query_engine(program)``,
  ``to_llamaindex_tool(program)``;
* LLMs in: ``LlamaIndexLM(llm)``, with tool calls, error mapping
  and retries;
* LLMs out: ``BridgeLLM(lm=...)``, any bridge LM (the embedded models included) as a LlamaIndex
  ``LLM`` for query engines, with streaming, async and LlamaIndex's callback and instrumentation events;
* tools in: ``from_llamaindex_tool(tool)``;
* prompts both ways: ``from_llamaindex_prompt(template)``,
  ``to_llamaindex_prompt(predictor)``;
* data and metrics: ``from_llamaindex_dataset(dataset)``,
  ``evaluator_metric(evaluator)``;
* nodes: ``to_passage``, ``to_node``;
* embeddings: ``to_llamaindex_embedding(embedder)``;
* query engines compiled in place: ``from_query_engine(obj)``, ``compile_query_engine(...)``;
* tracing: ``LlamaIndexInstrumentation``, a ``lmbridge.Callback``
  that shows program runs as LlamaIndex instrumentation spans.

llama-index-core is imported when one of these is used, never by ``import lmbridge.adapters.llamaindex``.
"""

from __future__ import annotations

from lmbridge.adapters._lazy import lazy_getattr
from lmbridge.adapters.llamaindex._data import evaluator_metric, from_llamaindex_dataset
from lmbridge.adapters.llamaindex._embeddings import to_llamaindex_embedding
from lmbridge.adapters.llamaindex._lm import LlamaIndexLM
from lmbridge.adapters.llamaindex._nodes import require_llamaindex, to_node, to_passage
from lmbridge.adapters.llamaindex._programs import to_llamaindex_tool, to_query_engine
from lmbridge.adapters.llamaindex._prompts import from_llamaindex_prompt, to_llamaindex_prompt
from lmbridge.adapters.llamaindex._retrievers import (
    AsyncLlamaIndexRetriever,
    LlamaIndexRetriever,
    from_llamaindex_retriever,
)
from lmbridge.adapters.llamaindex._tools import from_llamaindex_tool
from lmbridge.adapters.llamaindex._tracing import LlamaIndexInstrumentation

# Names whose modules import llama-index-core at import time: imported on first access (PEP 562), so
# that ``import lmbridge.adapters.llamaindex`` never imports llama-index-core.
_LAZY = {
    "BridgeLLM": "lmbridge.adapters.llamaindex._llm",
    "QueryEngineProgram": "lmbridge.adapters.llamaindex._engine",
    "compile_query_engine": "lmbridge.adapters.llamaindex._engine",
    "from_query_engine": "lmbridge.adapters.llamaindex._engine",
}


__getattr__ = lazy_getattr("lmbridge.adapters.llamaindex", _LAZY, require_llamaindex)


__all__ = [
    "AsyncLlamaIndexRetriever",
    "BridgeLLM",
    "LlamaIndexInstrumentation",
    "LlamaIndexLM",
    "LlamaIndexRetriever",
    "QueryEngineProgram",
    "compile_query_engine",
    "evaluator_metric",
    "from_llamaindex_dataset",
    "from_llamaindex_prompt",
    "from_llamaindex_retriever",
    "from_llamaindex_tool",
    "from_query_engine",
    "to_llamaindex_embedding",
    "to_llamaindex_prompt",
    "to_llamaindex_tool",
    "to_node",
    "to_passage",
    "to_query_engine",
]
