"""Where the instruction ends and how a demo is written, in a template of either framework.

Both ``from_chain`` (LangChain) and ``from_query_engine`` (LlamaIndex) learn inside the user's own
templates; these are the text rules they share: a string template's instruction is its leading
paragraphs with no variable in them, and a demo block is the rest of the template written with the
demo's values, followed by its answer.
"""

from __future__ import annotations

import re
from typing import Any


def split_instruction(template: str, template_format: str = "f-string") -> tuple[str, str]:
    """(instruction, body): the leading paragraphs with no variable in them, and the rest."""
    opener = re.search(r"(?<!\{)\{(?!\{)" if template_format == "f-string" else r"\{\{|\{%", template)
    head = template[:opener.start()] if opener else template
    cut = head.rfind("\n\n")
    if cut < 0 or opener is None:
        return "", template
    instruction = head[:cut]
    if template_format == "f-string":
        instruction = instruction.replace("{{", "{").replace("}}", "}")
    return instruction.strip(), template[cut + 2:]


def demo_block(block: str, output: str) -> str:
    """A rendered example block followed by its answer (a space after a label such as ``Answer:``)."""
    return f"{block}{'' if not block or block[-1].isspace() else ' '}{output}"


def plain(value: Any) -> Any:
    """A demo value as a template writes it: scalars kept, anything else as its text."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


__all__ = ["demo_block", "plain", "split_instruction"]
