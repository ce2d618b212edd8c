"""``TextFormat``: the raw completion endpoint, with demos written as plain text blocks.

    Classify the sentiment of the movie review.

    Text: a gorgeous, witty, seductive movie.
    Label: positive

    Text: the acting is amateurish.
    Label: negative

    Text: <the input>
    Label:

One prompt, no chat template: what base (pretrained, not instruction-tuned) models such as Gemma 3
270M continue best. The model's text after the last label is read like ``ChatFormat``'s answer, and
the answer is constrained by the same grammar. The embedded model completes the prompt in-process;
an API model goes through LiteLLM's ``text_completion`` (for an OpenAI-compatible server, name the
model ``text-completion-openai/<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lmbridge.formats._base import FORMATS, ChatFormat, Scoring
from lmbridge.formats._prior import Prior
from lmbridge.formats._slots import fill, late, unslotted
from lmbridge.signatures import Signature, render, render_input
from lmbridge.types import Message


class TextFormat(ChatFormat):
    """Demos as plain ``Label: value`` blocks in one raw prompt. ``instructions=False`` leaves the
    signature's instructions out (a base model may do better with demos alone)."""

    name = "text"

    def __init__(self, instructions: bool = True, *, constrained: bool = True, scoring: Scoring = "generate",
                 prior: Prior | Mapping[str, Any] | None = None) -> None:
        super().__init__("inline", "user", constrained=constrained, scoring=scoring, prior=prior)
        if not isinstance(instructions, bool):
            raise ValueError(f"instructions must be True or False, not {instructions!r}")
        self.show_instructions = instructions

    def format(self, signature: type[Signature], demos: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, Any]) -> list[Message]:
        blocks: list[str] = []
        shown = self.show_instructions and bool(signature.instructions.strip())
        head = fill(signature.instructions.strip(), signature, inputs) + "\n\n" if shown else ""
        lead, last = late(signature, head)
        for d in demos:
            if all(n in d for n in signature.input_fields) and all(n in d for n in signature.output_fields):
                blocks.append(self._block(signature, d) + "\n" + "\n".join(
                    f"{f.label}: {render(d[n])}" for n, f in signature.output_fields.items()))
        first = next(iter(signature.output_fields.values()))
        request = self._block(signature, unslotted(signature, inputs) if shown else inputs)
        blocks.append(f"{last}{request}\n{first.label}:" if request else f"{last}{first.label}:")
        return [{"role": "user", "content": lead + "\n\n".join(blocks)}]

    @staticmethod
    def _block(signature: type[Signature], values: Mapping[str, Any]) -> str:
        return "\n".join(f"{f.label}: {render_input(values[n])}"
                         for n, f in signature.input_fields.items() if n in values)

    def endpoint_params(self, signature: type[Signature]) -> dict[str, Any]:
        first_input = next(iter(signature.input_fields.values()), None)
        stop = ["\n\n"] + ([f"\n{first_input.label}:"] if first_input is not None else [])
        return {"endpoint": "completion", "stop": stop}

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name}
        if not self.show_instructions:
            state["instructions"] = False
        return self._choices(state)


FORMATS["text"] = TextFormat
