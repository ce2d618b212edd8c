"""Agents: tools and the ReAct loop (text-protocol and native tool calls)."""

from lmbridge.agents._react import ReAct
from lmbridge.agents._tools import Tool, register_tool_converter, run_sync

__all__ = [
    "ReAct",
    "Tool",
    "register_tool_converter",
    "run_sync",
]
