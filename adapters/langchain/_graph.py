"""LangGraph graphs in ``from_chain``: the prompts inside a compiled graph's nodes, and a copy of the
graph with other prompts.

A compiled graph (``CompiledStateGraph``, any ``Pregel``) keeps each node's Runnable as
``PregelNode.bound``. ``rewrite_graph`` walks those Runnables with the chain walk (so a node that is
``prompt | model | parser``, a branch or another graph is read like any chain) and names each prompt
by its node (``rewrite.step0``; ``research.answer.step0`` for the node ``answer`` of the subgraph
``research``). When a node's Runnable changes, the graph comes back as a copy (``Pregel.copy``) whose
changed nodes are copies (``PregelNode.copy``) and whose builder holds the same Runnables; the user's
graph, its nodes and its builder are never mutated. Nodes that are plain functions are leaves: a prompt
built or called inside one is reached only through ``learnable`` (``_learnable``).

langgraph is imported only when a node to walk comes from it.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

Walk = Callable[[Any, str], Any]
START = "__start__"


def is_graph(node: Any) -> bool:
    """Whether ``node`` is a LangGraph ``Pregel`` (a compiled graph); never imports langgraph."""
    if not type(node).__module__.startswith("langgraph."):
        return False
    main = sys.modules.get("langgraph.pregel.main")
    return main is not None and isinstance(node, main.Pregel)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def rewrite_graph(graph: Any, walk: Walk, path: str) -> Any:
    """``graph`` with each node's Runnable replaced by ``walk(runnable, where)``: the graph itself when
    nothing changed, else a copy holding copies of the changed nodes."""
    changed: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        if name == START:
            continue
        bound = walk(node.bound, _join(path, name))
        if bound is not node.bound:
            changed[name] = bound
    if not changed:
        return graph
    nodes = {name: node.copy({"bound": changed[name], "subgraphs": None}) if name in changed else node
             for name, node in graph.nodes.items()}
    update: dict[str, Any] = {"nodes": nodes}
    builder: Any = getattr(graph, "builder", None)
    specs = getattr(builder, "nodes", None)
    if isinstance(specs, dict):  # the builder (drawn by get_graph) holds the same Runnables as the nodes
        new_builder = copy.copy(builder)
        new_builder.nodes = {name: _with_runnable(spec, changed[name]) if name in changed else spec
                             for name, spec in specs.items()}
        update["builder"] = new_builder
    return graph.copy(update)


def _with_runnable(spec: Any, runnable: Any) -> Any:
    """A builder's node spec (a dataclass) with another Runnable."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.replace(spec, runnable=runnable)
    return spec


def without_checkpointer(chain: Any) -> Any:
    """A graph to evaluate: ``chain`` without its checkpointer, so that each call is a run of its own (no
    ``thread_id`` needed, no state carried from one example to the next, nothing written to the user's
    checkpointer); anything else as is."""
    if is_graph(chain) and chain.checkpointer not in (None, False):
        return chain.copy({"checkpointer": None})
    return chain


__all__ = ["is_graph", "rewrite_graph", "without_checkpointer"]
