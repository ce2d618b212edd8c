"""LlamaIndex tools in: ``from_llamaindex_tool(tool)`` turns a LlamaIndex ``FunctionTool``,
``QueryEngineTool`` or any other ``BaseTool`` into a ``lmbridge.Tool`` for ``lmbridge.ReAct``.

The bridge tool keeps the LlamaIndex tool's name, its description and the argument schema of its
``metadata.fn_schema`` (types, defaults and field descriptions), so arguments are checked before
the call. A call goes through the tool's ``acall`` when it is async (``AsyncBaseTool``: a
``FunctionTool``, a ``QueryEngineTool``), else ``call``. The observation is the ``ToolOutput``'s
``content``, the text a LlamaIndex agent would show its model; a ``ToolOutput`` marked as an
error, like any exception, comes out as ``lmbridge.ToolError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lmbridge import Tool, ToolError
from lmbridge.adapters.llamaindex._nodes import require_llamaindex
from lmbridge.agents import register_tool_converter

if TYPE_CHECKING:
    from llama_index.core.tools import BaseTool


def from_llamaindex_tool(tool: BaseTool, *, timeout: float | None = 30.0) -> Tool:
    """Wrap a LlamaIndex tool as a ``lmbridge.Tool`` (see the module docstring)."""
    require_llamaindex()
    from llama_index.core.tools import AsyncBaseTool
    from llama_index.core.tools import BaseTool as LIBaseTool

    if not isinstance(tool, LIBaseTool):
        raise TypeError(f"from_llamaindex_tool needs a llama_index BaseTool, got {type(tool).__name__}")
    meta = tool.metadata
    name = meta.get_name()
    params, annotations = _parameters(meta.fn_schema)

    def content(output: Any) -> Any:
        if getattr(output, "is_error", False):
            raise ToolError(f"tool {name!r} failed: {getattr(output, 'content', output)}")
        return getattr(output, "content", output)

    def run(**kwargs: Any) -> Any:
        call: Any = getattr(tool, "call", tool)  # AsyncBaseTool.call; a plain BaseTool is called
        return content(call(**kwargs))

    async def arun(**kwargs: Any) -> Any:
        return content(await tool.acall(**kwargs))  # type: ignore[attr-defined]

    func: Callable[..., Any] = arun if isinstance(tool, AsyncBaseTool) else run
    func.__name__ = name
    func.__doc__ = meta.description
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = annotations
    return Tool(func, name=name, desc=meta.description or "", timeout=timeout)


def _parameters(schema: Any) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """Keyword-only parameters whose defaults are the schema's pydantic FieldInfos, so the bridge
    Tool's argument model keeps the types, defaults, constraints and descriptions."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    if schema is None:  # LlamaIndex's default: one string argument named "input"
        return [inspect.Parameter("input", keyword, annotation=str)], {"input": str}
    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    for field_name, field in schema.model_fields.items():
        annotations[field_name] = field.annotation
        params.append(inspect.Parameter(field_name, keyword, default=field, annotation=field.annotation))
    return params, annotations


# Let ``lmbridge.ReAct(tools=[...])`` take LlamaIndex tools directly.
register_tool_converter("llama_index", from_llamaindex_tool)


__all__ = ["from_llamaindex_tool"]
