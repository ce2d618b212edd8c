"""LangChain tools as bridge tools: ``from_langchain_tool(tool)``, and the converter that lets
``lmbridge.ReAct(tools=[...])`` take LangChain tools (and Runnables, through ``as_tool``) directly.

A converted tool behaves as LangChain runs it:

* the model sees the ``tool_call_schema``: injected arguments (``InjectedToolArg``,
  ``InjectedToolCallId``) are left out of it;
* ``InjectedToolCallId`` is filled with the call's id (the tool is invoked with a tool call, as an
  agent does); other injected arguments come from ``injected=`` or their defaults;
* ``handle_tool_error`` and ``handle_validation_error`` turn a failure into the observation text,
  exactly as ``tool.invoke`` does; without them a failure is a ``lmbridge.ToolError``;
* ``return_direct`` ends a ReAct loop with the tool's result.

This module imports langchain-core when a tool is converted.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from lmbridge import Tool, ToolError
from lmbridge.adapters.langchain._prompts import require_langchain
from lmbridge.agents import register_tool_converter

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                               "array": list, "object": dict}


class LangChainTool(Tool):
    """A ``lmbridge.Tool`` that runs a LangChain tool. Arguments are checked against the tool's schema
    first, unless the LangChain tool handles validation errors itself (then it sees them)."""

    def __init__(self, tool: BaseTool, func: Callable[..., Any], *, timeout: float | None,
                 afunc: Callable[..., Awaitable[Any]] | None = None) -> None:
        super().__init__(func, name=tool.name, desc=tool.description or "", timeout=timeout,
                         return_direct=bool(tool.return_direct), afunc=afunc)
        self.langchain_tool = tool

    def validate(self, args: Any) -> dict[str, Any]:
        try:
            return super().validate(args)
        except ToolError:
            if self.langchain_tool.handle_validation_error and isinstance(args, Mapping):
                return dict(args)  # tool.invoke validates and answers with its own message
            raise


def from_langchain_tool(tool: BaseTool, *, timeout: float | None = 30.0,
                        injected: Mapping[str, Any] | None = None) -> Tool:
    """Wrap a LangChain tool as a ``lmbridge.Tool`` with its name, description and call schema.

    ``injected`` gives the values of the tool's ``InjectedToolArg`` arguments (those the model
    never sees); one that is required and not given is an error here, not at the first call.
    """
    require_langchain()
    from langchain_core.tools import BaseTool as LCBaseTool

    if not isinstance(tool, LCBaseTool):
        raise TypeError(f"from_langchain_tool needs a langchain_core BaseTool, got {type(tool).__name__}")
    given = dict(injected or {})
    call_id_args, hidden = _injected(tool)
    missing = [n for n, required in hidden.items() if required and n not in given]
    if missing:
        raise TypeError(f"tool {tool.name!r} has injected argument(s) {missing} (InjectedToolArg) that the model "
                        "never fills: pass from_langchain_tool(tool, injected={...}) with their values")
    params, annotations = _tool_parameters(tool.tool_call_schema)

    def payload(kwargs: dict[str, Any]) -> Any:
        args = {**kwargs, **{k: v for k, v in given.items() if k in hidden}}
        if call_id_args:
            return {"type": "tool_call", "name": tool.name, "args": args, "id": f"call_{uuid.uuid4().hex[:16]}"}
        return args

    def run(**kwargs: Any) -> Any:
        return _content(tool.invoke(payload(kwargs)))

    async def arun(**kwargs: Any) -> Any:
        return _content(await tool.ainvoke(payload(kwargs)))

    native_async = _has_native_async(tool)
    func: Callable[..., Any] = run if _has_sync(tool) or not native_async else arun
    shown: tuple[Callable[..., Any], ...] = (run, arun)
    for f in shown:
        f.__name__ = tool.name
        f.__doc__ = tool.description
        f.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        f.__annotations__ = annotations
    return LangChainTool(tool, func, timeout=timeout, afunc=arun if native_async and func is run else None)


def _has_native_async(tool: Any) -> bool:
    from langchain_core.tools import BaseTool as LCBaseTool

    if getattr(tool, "coroutine", None) is not None:
        return True
    return getattr(tool, "func", None) is None and type(tool)._arun is not LCBaseTool._arun


def _has_sync(tool: Any) -> bool:
    """Whether ``tool.invoke`` runs a sync implementation: a ``Tool``/``StructuredTool`` with a ``func``, or
    a ``BaseTool`` subclass (its ``_run``). A sync call then runs it, as LangChain does, never the coroutine."""
    return getattr(tool, "func", None) is not None or not hasattr(tool, "func")


def _injected(tool: Any) -> tuple[list[str], dict[str, bool]]:
    """(arguments filled with the tool call id, {other injected argument: is it required})."""
    from langchain_core.tools import InjectedToolCallId

    if isinstance(tool.args_schema, Mapping):  # a JSON-schema dict declares no injected arguments
        return [], {}
    schema = tool.get_input_schema()
    shown = _schema_names(tool.tool_call_schema)
    call_ids: list[str] = []
    hidden: dict[str, bool] = {}
    for name, field in getattr(schema, "model_fields", {}).items():
        if name in shown or name in ("callbacks", "run_manager", "config"):
            continue
        marks = list(getattr(field, "metadata", ()))
        if any(m is InjectedToolCallId or isinstance(m, InjectedToolCallId) for m in marks):
            call_ids.append(name)
        else:
            hidden[name] = field.is_required()
    return call_ids, hidden


def _schema_names(schema: Any) -> set[str]:
    if isinstance(schema, Mapping):
        return set(schema.get("properties", {}))
    return set(getattr(schema, "model_fields", {}))


def _content(result: Any) -> Any:
    """A tool's answer as its content: a ToolMessage (from a tool-call invocation) gives its content."""
    from langchain_core.messages import ToolMessage

    if isinstance(result, ToolMessage):
        return result.content
    return result


def _tool_parameters(schema: Any) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """Keyword-only parameters whose defaults are pydantic FieldInfos, so that the bridge Tool's
    argument model keeps the LangChain schema's types, defaults, constraints and descriptions."""
    from pydantic.fields import FieldInfo

    keyword = inspect.Parameter.KEYWORD_ONLY
    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    if isinstance(schema, Mapping):  # a tool declared with a JSON-schema dict
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            kind = _JSON_TYPES.get(prop.get("type", ""), Any)
            desc = prop.get("description")
            info = FieldInfo(description=desc) if name in required else FieldInfo(
                default=prop.get("default"), description=desc)
            annotations[name] = kind
            params.append(inspect.Parameter(name, keyword, default=info, annotation=kind))
        return params, annotations
    for name, field in schema.model_fields.items():
        annotations[name] = field.annotation
        params.append(inspect.Parameter(name, keyword, default=field, annotation=field.annotation))
    return params, annotations


def convert(tool: Any) -> Tool:
    """The converter ``lmbridge.ReAct`` uses for objects from langchain-core: a ``BaseTool`` as is, any
    other Runnable through its ``as_tool()``."""
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool as LCBaseTool

    if isinstance(tool, LCBaseTool):
        return from_langchain_tool(tool)
    if isinstance(tool, Runnable):
        return from_langchain_tool(tool.as_tool())
    raise TypeError(f"{type(tool).__name__} is not a LangChain tool or Runnable, so it cannot be a tool")


register_tool_converter("langchain_core", convert)

__all__ = ["LangChainTool", "convert", "from_langchain_tool"]
