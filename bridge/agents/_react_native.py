"""The native side of ReAct: the prompt and the tool specs of a step when the model calls tools itself.

Pure functions of their arguments, used by ``lmbridge.react.ReAct`` in its native mode. The step
predictor keeps its one signature in both modes; here its state becomes a function-calling request:

* the system message is the predictor's instructions (optimizers may have rewritten them) and a
  note on calling the tools natively, then its demos, written out as text steps
  (``Thought:`` / ``Tool:`` / ``Args:``), the way the text protocol shows them;
* the user message holds the input fields and the trajectory;
* the request offers every tool's JSON schema plus ``finish``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmbridge.agents._tools import Tool
from lmbridge.programs import Predict
from lmbridge.signatures import render, render_input
from lmbridge.types import Message

FINISH = "finish"
NATIVE_NOTE = (
    "Take each step as a function call: call exactly one of the tools with its arguments, and write "
    "your thought, if any, as the message text. Call {finish} when you know enough.")
REASK = ("You replied without calling a tool. Call one of the tools now, or call {finish} "
         "if you know enough.")
NO_CALL_NOTE = "done (the model replied without calling a tool)"


def finish_spec() -> dict[str, Any]:
    """The ``finish`` pseudo-tool, in the OpenAI function-calling shape; it takes no arguments."""
    return {"type": "function",
            "function": {"name": FINISH, "description": "Stop calling tools: the answer is known.",
                         "parameters": {"type": "object", "properties": {}}}}


def tool_specs(tools: Mapping[str, Tool]) -> list[dict[str, Any]]:
    """Every tool's function spec, then ``finish``."""
    return [*(t.to_function_spec() for t in tools.values()), finish_spec()]


def _block(fields: Mapping[str, Any], values: Mapping[str, Any], render_value: Any) -> str:
    return "\n".join(f"{f.label}: {render_value(values[n])}" for n, f in fields.items() if n in values)


def native_messages(step: Predict, inputs: Mapping[str, Any]) -> list[Message]:
    """The messages of one native step: ``step``'s instructions and demos, then ``inputs``."""
    signature = step.signature
    parts = [signature.instructions.strip(), NATIVE_NOTE.format(finish=FINISH)]
    shown = [d for d in step.demos
             if all(n in d for n in signature.input_fields) and all(n in d for n in signature.output_fields)]
    if shown:
        examples = "\n\n".join(f"{_block(signature.input_fields, d, render_input)}\n"
                               f"{_block(signature.output_fields, d, render)}" for d in shown)
        parts.append(f"Examples of steps, written out as text:\n\n{examples}")
    return [{"role": "system", "content": "\n\n".join(p for p in parts if p)},
            {"role": "user", "content": _block(signature.input_fields, inputs, render_input)}]


def reask_messages(messages: list[Message], reply: str) -> list[Message]:
    """``messages`` followed by the reply that called no tool and a request to call one."""
    return [*messages, {"role": "assistant", "content": reply.strip() or "(no tool call)"},
            {"role": "user", "content": REASK.format(finish=FINISH)}]


__all__ = ["FINISH", "finish_spec", "native_messages", "reask_messages", "tool_specs"]
