"""``learnable(prompt, name=...)``: opting in a prompt that ``from_chain`` cannot reach by walking the
chain, such as one used inside a plain Python function node of a LangGraph graph.

The call goes where the prompt is defined and gives back a ``LearnablePrompt``: a Runnable that
renders exactly as the template does, and delegates every other attribute to it. At run time it reads
which template to use from LangChain's run configuration (``configurable["lmbridge:prompts"]``,
which LangChain and LangGraph carry into nested calls through their context variable); when that
holds no template for its name, it is the user's own template. ``ChainProgram`` sets that entry per
call for the candidate being tried (nothing shared between threads), and ``to_chain()`` returns the
graph bound (``with_config``) to the compiled templates, so a saved state loaded onto a fresh
``from_chain(graph)`` applies them too. The user's code keeps calling lmbridge's object here: an
opted-in prompt needs lmbridge at run time, unlike a prompt found in the chain.

``find_learnables`` finds them: as steps of the chain, and in what a function step (``RunnableLambda``,
a graph's function node) refers to: its closure, the module globals its code names, the Runnables
and functions those hold.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config

from lmbridge import ConfigurationError
from lmbridge.adapters.langchain._chain_walk import rewrite

KEY = "lmbridge:prompts"
_DEPTH = 4  # how many function calls deep a function node's references are followed


class LearnablePrompt(Runnable[dict[str, Any], PromptValue]):
    """A prompt template opted in to ``from_chain`` under ``key``; behaves as the template it holds."""

    def __init__(self, template: BasePromptTemplate[Any], key: str) -> None:
        self.template = template
        self.key = key
        self.name = key

    def current(self, config: RunnableConfig | None = None) -> Runnable[Any, Any]:
        """The template this run uses: the one the run's configuration gives for ``key``, or the user's."""
        configurable = ensure_config(config).get("configurable") or {}
        chosen = (configurable.get(KEY) or {}).get(self.key)
        return chosen if isinstance(chosen, Runnable) else self.template

    def invoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> PromptValue:
        config = ensure_config(config)
        return self.current(config).invoke(input, config, **kwargs)  # type: ignore[no-any-return]

    async def ainvoke(self, input: dict[str, Any], config: RunnableConfig | None = None,
                      **kwargs: Any) -> PromptValue:
        config = ensure_config(config)
        return await self.current(config).ainvoke(input, config, **kwargs)  # type: ignore[no-any-return]

    def __getattr__(self, attr: str) -> Any:  # format_messages, input_variables, ...: the current template's
        if attr.startswith("_") or attr in ("template", "key"):
            raise AttributeError(attr)
        current = self.current()
        return getattr(getattr(current, "bound", current), attr)

    def __repr__(self) -> str:
        return f"learnable({self.template!r}, name={self.key!r})"


def learnable(prompt: BasePromptTemplate[Any], *, name: str) -> LearnablePrompt:
    """``prompt`` opted in to ``from_chain``/``compile_chain`` under ``name``; see ``docs/compile-chain.md``."""
    if isinstance(prompt, LearnablePrompt):
        raise ConfigurationError(f"the prompt is already learnable, as {prompt.key!r}")
    if not isinstance(prompt, BasePromptTemplate):
        raise TypeError(f"learnable takes a LangChain prompt template, not a {type(prompt).__name__}")
    if not isinstance(name, str) or not name:
        raise ConfigurationError("learnable needs a name: learnable(prompt, name='rewrite')")
    return LearnablePrompt(prompt, name)


def opted_pairs(prompts: list[LearnablePrompt]) -> list[tuple[str, BasePromptTemplate[Any]]]:
    """Each learnable prompt's name and the user's template it holds."""
    return [(p.key, p.template) for p in prompts]


def _references(func: Any) -> Iterator[Any]:
    """The objects a function's code can reach by name: its closure cells and the globals it names."""
    closure = getattr(func, "__closure__", None) or ()
    for cell in closure:
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    code = getattr(func, "__code__", None)
    spaces = getattr(func, "__globals__", {})
    codes = [code] if isinstance(code, types.CodeType) else []
    while codes:
        current = codes.pop()
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        yield from (spaces[n] for n in current.co_names if n in spaces)


def find_learnables(chain: Any) -> tuple[list[LearnablePrompt], list[str]]:
    """The ``LearnablePrompt``s in ``chain``'s steps and in what its function steps refer to, in order;
    and the functions that use a plain prompt template, which no candidate can reach."""
    found: dict[int, LearnablePrompt] = {}
    hidden: list[str] = []
    visited: set[int] = set()

    def look(obj: Any, depth: int, where: str) -> None:
        if id(obj) in visited or depth > _DEPTH:
            return
        visited.add(id(obj))
        if isinstance(obj, LearnablePrompt):
            found.setdefault(id(obj), obj)
        elif isinstance(obj, Runnable):
            rewrite(obj, lambda name, t: hide(t, depth, where), lambda leaf: visit(leaf, depth))
        elif isinstance(obj, types.FunctionType):
            for ref in _references(obj):
                look(ref, depth + 1, where or obj.__qualname__)

    def hide(template: Any, depth: int, where: str) -> Any:
        if depth > 0 and where not in hidden:  # a prompt a function calls, not a step of the chain
            hidden.append(where)
        return template

    def visit(leaf: Any, depth: int) -> Any:
        if isinstance(leaf, LearnablePrompt):
            found.setdefault(id(leaf), leaf)
        for attr in ("func", "afunc"):
            look(getattr(leaf, attr, None), depth, "")
        return leaf

    look(chain, 0, "")
    prompts = list(found.values())
    keys = [p.key for p in prompts]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigurationError(f"two different learnable prompts are named {twice}: give each its own name")
    return prompts, hidden


__all__ = ["KEY", "LearnablePrompt", "find_learnables", "learnable", "opted_pairs"]
