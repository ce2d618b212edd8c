"""LangChain integration, both ways. This module is the public surface; each concept lives in a
private module of its own in this package, imported when first used.

Programs out:

* ``to_runnable(program)``: a bridge program as a LangChain ``Runnable`` (typed schemas, streaming,
  callbacks, ``|`` on both sides, ``configurable_fields``, ``as_tool``).
* ``to_langchain_tool(program)``: a program as a LangChain ``BaseTool`` for agents.
* ``to_langchain_prompt(predictor)`` / ``to_langchain_chain(predictor, chat_model)``: a compiled
  predictor as a ``ChatPromptTemplate`` that renders exactly the messages lmbridge sends, and as a
  plain ``prompt | model | parser`` chain.
* Callbacks: a program run as a Runnable reports its run tree to LangChain handlers (LangSmith),
  through ``LangChainCallback``.

Chains compiled in place:

* ``from_chain(chain)``: the user's chain as a program whose predictors are its prompt templates;
  ``ChainProgram.to_chain()`` hands back the chain with the compiled prompts; ``compile_chain(...)``
  does both around an optimizer (see ``docs/compile-chain.md``). A LangGraph compiled graph works the
  same (its nodes' prompts, subgraphs included); ``learnable(prompt, name=...)`` opts in a prompt used
  inside a function node.

Things in:

* ``from_langchain_tool(tool)``: a LangChain tool as a ``lmbridge.Tool`` (``lmbridge.ReAct`` also takes
  LangChain tools directly).
* ``from_langchain_retriever(retriever)``: a LangChain ``BaseRetriever`` as a bridge retriever, with ``k``
  and search kwargs, sync and async (``lmbridge.Retrieve`` also takes LangChain retrievers directly).
* ``from_prompt_template(template)``: a hand-written prompt migrated to a signature.
* ``LangChainLM(model)``: a LangChain chat model (or text model) as a bridge LM.
* ``BridgeChatModel(lm=...)``: the other way round, a bridge LM as a LangChain chat model.
* ``migrate_prompt(template)`` / ``print_migration(...)``: a prompt template migrated to a signature
  and its few-shot examples to demos, as values or as printed source.

langchain-core is imported when one of these is used, never by ``import lmbridge.adapters.langchain``;
when it is missing, the call raises ``lmbridge.MissingDependencyError`` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmbridge import Module, Signature
from lmbridge.adapters._lazy import lazy_getattr
from lmbridge.adapters.langchain._lm import LangChainLM
from lmbridge.adapters.langchain._migrate import from_prompt_template
from lmbridge.adapters.langchain._prompts import require_langchain
from lmbridge.adapters.langchain._tools import from_langchain_tool

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

    from lmbridge.adapters.langchain._schema import DocumentFormatter


def to_runnable(program: Module, *, input_key: str | None = None, output_key: str | None = None,
                name: str | None = None, signature: type[Signature] | None = None, include_usage: bool = False,
                document_text: DocumentFormatter | None = None) -> Runnable[Any, Any]:
    """The program as a LangChain ``Runnable``; see ``docs/langchain.md``."""
    require_langchain()
    from lmbridge.adapters.langchain._runnable import to_runnable as build

    return build(program, input_key=input_key, output_key=output_key, name=name, signature=signature,
                 include_usage=include_usage, document_text=document_text)


def to_langchain_tool(program: Module, *, name: str | None = None, description: str | None = None,
                      signature: type[Signature] | None = None, return_direct: bool = False) -> BaseTool:
    """The program as a LangChain ``BaseTool``; see ``docs/langchain.md``."""
    require_langchain()
    from lmbridge.adapters.langchain._export import to_langchain_tool as build

    return build(program, name=name, description=description, signature=signature, return_direct=return_direct)


def to_langchain_prompt(predictor: Module, *, written: bool = False) -> ChatPromptTemplate:
    """The predictor's prompt as an f-string ``ChatPromptTemplate``; ``written``: its variables take the
    values as lmbridge writes them (else a list, bool or enum input is refused); see ``docs/langchain.md``."""
    require_langchain()
    from lmbridge.adapters.langchain._export import to_langchain_prompt as build

    return build(predictor, written=written)


def to_langchain_chain(predictor: Module, model: BaseLanguageModel[Any], *, bare: bool = False) -> Runnable[Any, Any]:
    """``prompt | model | parser`` for the predictor, or a ConfigurationError naming what the export
    cannot carry; ``bare`` returns a one-output predictor's value itself; see ``docs/langchain.md``."""
    require_langchain()
    from lmbridge.adapters.langchain._export import to_langchain_chain as build

    return build(predictor, model, bare=bare)



# Names whose modules subclass LangChain classes at import time: imported on first access (PEP 562), so
# that ``import lmbridge.adapters.langchain`` never imports langchain-core.
_LAZY = {
    "BridgeChatModel": "lmbridge.adapters.langchain._chat",
    "ChainProgram": "lmbridge.adapters.langchain._chain",
    "compile_chain": "lmbridge.adapters.langchain._chain",
    "from_chain": "lmbridge.adapters.langchain._chain",
    "LangChainCallback": "lmbridge.adapters.langchain._trace",
    "LangChainRetriever": "lmbridge.adapters.langchain._retrievers",
    "LearnablePrompt": "lmbridge.adapters.langchain._learnable",
    "MigratedPrompt": "lmbridge.adapters.langchain._migrate",
    "from_langchain_retriever": "lmbridge.adapters.langchain._retrievers",
    "learnable": "lmbridge.adapters.langchain._learnable",
    "migrate_prompt": "lmbridge.adapters.langchain._migrate",
    "print_migration": "lmbridge.adapters.langchain._migrate",
}


__getattr__ = lazy_getattr("lmbridge.adapters.langchain", _LAZY, require_langchain)


__all__ = [
    "BridgeChatModel",
    "ChainProgram",
    "LangChainCallback",
    "LangChainLM",
    "LangChainRetriever",
    "LearnablePrompt",
    "MigratedPrompt",
    "compile_chain",
    "from_chain",
    "from_langchain_retriever",
    "from_langchain_tool",
    "from_prompt_template",
    "learnable",
    "migrate_prompt",
    "print_migration",
    "to_langchain_chain",
    "to_langchain_prompt",
    "to_langchain_tool",
    "to_runnable",
]
