"""Finding the prompts inside a LangChain Runnable, rebuilding it with other prompts, and reading
what each prompt rendered and what the model replied to it from LangChain's callbacks.

``rewrite`` walks nested ``RunnableSequence``, ``RunnableParallel`` (and dict steps, which LCEL
turns into one), ``RunnableAssign``, ``RunnableBranch``, ``with_fallbacks`` and every binding
(``bind``, ``bind_tools``, ``with_config``, ``with_retry``, ``with_structured_output``'s parts).
Each prompt template is named by where it sits (``step0``, ``step0.question.step1``,
``branch0``, ``default``, ``fallback0``; ``prompt`` for a chain that is one prompt); a LangGraph
graph's nodes are walked too, each named by its node (``_graph``). A container
whose children are unchanged is returned as is; one whose children change is a shallow copy
(``model_copy``) of the user's object: the user's objects are never mutated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, get_buffer_string
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable, RunnableBranch, RunnableParallel, RunnableSequence, RunnableWithFallbacks
from langchain_core.runnables.base import RunnableBindingBase, RunnableEachBase
from langchain_core.runnables.passthrough import RunnableAssign

from lmbridge.adapters.langchain._graph import is_graph, rewrite_graph

Replace = Callable[[str, BasePromptTemplate[Any]], Runnable[Any, Any]]
Leaf = Callable[[Any], Any]
TAG = "lmbridge:prompt:"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def same(node: Any) -> Any:
    return node


def rewrite(node: Any, replace: Replace, leaf: Leaf = same, path: str = "") -> Any:
    """``node`` with each prompt template replaced by ``replace(name, template)`` and every other leaf
    (a model, a parser, a lambda) by ``leaf(node)``."""
    if isinstance(node, BasePromptTemplate):
        return replace(path or "prompt", node)
    if isinstance(node, RunnableSequence):
        steps = [node.first, *node.middle, node.last]
        new = [rewrite(s, replace, leaf, _join(path, f"step{i}")) for i, s in enumerate(steps)]
        if all(a is b for a, b in zip(steps, new)):
            return node
        return node.model_copy(update={"first": new[0], "middle": new[1:-1], "last": new[-1]})
    if isinstance(node, RunnableParallel):
        parallel = {k: rewrite(v, replace, leaf, _join(path, k)) for k, v in node.steps__.items()}
        changed = any(parallel[k] is not v for k, v in node.steps__.items())
        return node.model_copy(update={"steps__": parallel}) if changed else node
    if isinstance(node, RunnableAssign):
        mapper = rewrite(node.mapper, replace, leaf, path)
        return node if mapper is node.mapper else node.model_copy(update={"mapper": mapper})
    if isinstance(node, RunnableBranch):
        return _branch(node, replace, leaf, path)
    if isinstance(node, RunnableWithFallbacks):
        main = rewrite(node.runnable, replace, leaf, path)
        others = [rewrite(f, replace, leaf, _join(path, f"fallback{i}")) for i, f in enumerate(node.fallbacks)]
        if main is node.runnable and all(a is b for a, b in zip(node.fallbacks, others)):
            return node
        return node.model_copy(update={"runnable": main, "fallbacks": others})
    if isinstance(node, (RunnableBindingBase, RunnableEachBase)):
        bound = rewrite(node.bound, replace, leaf, path)
        return node if bound is node.bound else node.model_copy(update={"bound": bound})
    if is_graph(node):  # a LangGraph graph: its nodes' Runnables, named by node
        return rewrite_graph(node, lambda child, where: rewrite(child, replace, leaf, where), path)
    return leaf(node)


def _branch(node: RunnableBranch[Any, Any], replace: Replace, leaf: Leaf, path: str) -> Any:
    branches = [(rewrite(c, replace, leaf, _join(path, f"branch{i}.condition")),
                 rewrite(r, replace, leaf, _join(path, f"branch{i}"))) for i, (c, r) in enumerate(node.branches)]
    default = rewrite(node.default, replace, leaf, _join(path, "default"))
    if default is node.default and all(a is c and b is r for (a, b), (c, r) in zip(branches, node.branches)):
        return node
    return node.model_copy(update={"branches": branches, "default": default})


def find_prompts(chain: Any) -> tuple[list[tuple[str, BasePromptTemplate[Any]]], list[str]]:
    """The prompt templates in ``chain`` by name, and the type names of everything else found."""
    found: list[tuple[str, BasePromptTemplate[Any]]] = []
    seen: list[str] = []

    def keep(name: str, template: BasePromptTemplate[Any]) -> Runnable[Any, Any]:
        found.append((name, template))
        return template

    def other(node: Any) -> Any:
        seen.append(type(node).__name__)
        return node

    rewrite(chain, keep, other)
    return found, seen


def _same(a: list[BaseMessage], b: list[BaseMessage]) -> bool:
    return len(a) == len(b) and all(x.type == y.type and x.content == y.content for x, y in zip(a, b))


class StepRecorder(BaseCallbackHandler):
    """Per call: for each tagged prompt, the variables it rendered and the model's reply to it.

    A prompt's run is tagged ``lmbridge:prompt:<name>``; the model run whose input messages equal
    what that prompt rendered is the prompt's step, and its reply text is the step's output. A
    model error is kept, so the call can say it was the model that raised.
    """

    run_inline = True

    def __init__(self) -> None:
        self.steps: list[tuple[str, dict[str, Any], str]] = []
        self.model_error: BaseException | None = None
        self.replies: list[str] = []
        self._prompts: dict[UUID, tuple[str, dict[str, Any]]] = {}
        self._rendered: list[tuple[str, dict[str, Any], list[BaseMessage]]] = []
        self._models: dict[UUID, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, tags: list[str] | None = None,
                       **kwargs: Any) -> None:
        name = next((t[len(TAG):] for t in tags or () if t.startswith(TAG)), None)
        if name is not None and isinstance(inputs, dict):
            with self._lock:
                self._prompts[run_id] = (name, dict(inputs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            found = self._prompts.pop(run_id, None)
            if found is not None and hasattr(outputs, "to_messages"):
                self._rendered.append((found[0], found[1], outputs.to_messages()))

    def _match(self, run_id: UUID, messages: list[BaseMessage]) -> None:
        with self._lock:
            for i, (name, values, sent) in enumerate(self._rendered):
                if _same(sent, messages):
                    self._models[run_id] = (name, values)
                    del self._rendered[i]
                    return

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], *, run_id: UUID,
                            **kwargs: Any) -> None:
        if messages:
            self._match(run_id, messages[0])

    def on_llm_start(self, serialized: Any, prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        if not prompts:
            return
        with self._lock:
            for i, (name, values, sent) in enumerate(self._rendered):
                text = sent[0].content if len(sent) == 1 and sent[0].type == "human" else get_buffer_string(sent)
                if text == prompts[0]:
                    self._models[run_id] = (name, values)
                    del self._rendered[i]
                    return

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        generations = getattr(response, "generations", None) or [[]]
        first = generations[0][0] if generations and generations[0] else None
        text = "" if first is None else str(first.text)
        with self._lock:
            self.replies.append(text)
            found = self._models.pop(run_id, None)
            if found is not None:
                self.steps.append((found[0], found[1], text))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._models.pop(run_id, None)
            self.model_error = error


__all__ = ["TAG", "StepRecorder", "find_prompts", "rewrite"]
