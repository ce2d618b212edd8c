"""Migrate every default prompt of LlamaIndex (``llama_index.core.prompts.default_prompts``) with
``from_llamaindex_prompt`` and measure how much of the prompt survives:

* **similarity**: the original prompt and the migrated one (``Predict(signature).messages``, the
  default ``ChatFormat``; a value inside a sentence is a ``{name}`` slot of the instructions, written
  in place) are rendered with the same inputs, and their texts are compared with
  ``difflib.SequenceMatcher.ratio`` (1.0: the same text). Each variable gets a short sample value;
  ``context_str`` gets two passages, written as text in the original and as a ``list[str]`` in the
  migrated prompt. The goal is 0.9; a prompt below it is listed with its reason.
* **verbatim**: every hand-written line kept as an instruction line, or as the label of a field.

    python benchmarks/llamaindex_prompts.py            # prints the table; --out writes it too

A prompt that does not migrate is listed with the error it raised.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import lmbridge  # noqa: E402
from lmbridge import BridgeError  # noqa: E402
from lmbridge.adapters.llamaindex._prompts import from_llamaindex_prompt, lost_lines  # noqa: E402

GOAL = 0.9



def reason(signature: Any) -> str:
    """Why a migrated prompt stays below the goal, read from the signature: what the format writes
    differently from the template."""
    held = [n for n in signature.input_fields if "{" + n + "}" in signature.instructions]
    labelled = [n for n in signature.input_fields if n not in held]
    if signature.instructions.startswith("Given `"):  # no hand-written text: the defaults
        why = ("the prompt is its variable alone: the migrated prompt adds the default instructions, a label "
               "and the answer cue")
    elif labelled:
        why = (f"the closing values ({', '.join(labelled)}) are written under their labels after the instructions, "
               "with the answer cue")
    else:
        why = "every value stands in its sentence; the format adds a blank line and the answer cue"
    if any(f.annotation == list[str] for f in signature.input_fields.values()):
        why += "; passages are written as a numbered list ([1] ...)"
    return why


def default_prompts() -> dict[str, object]:
    from llama_index.core.prompts import BasePromptTemplate, default_prompts

    return {name: value for name, value in sorted(vars(default_prompts).items())
            if isinstance(value, BasePromptTemplate)}


PASSAGES = ["Super Bowl 50 was an American football game to determine the champion of the National Football "
            "League (NFL) for the 2015 season.",
            "The American Football Conference (AFC) champion Denver Broncos defeated the National Football "
            "Conference (NFC) champion Carolina Panthers 24-10 to earn their third Super Bowl title."]
SAMPLES = {"query_str": "Which NFL team won Super Bowl 50, and by what score?",
           "existing_answer": "The Denver Broncos won Super Bowl 50.",
           "context_msg": "The game was played on February 7, 2016, at Levi's Stadium in Santa Clara, California."}


def sample(var: str) -> str:
    """The value a variable gets in both renderings: SQuAD text for the RAG variables, else a short mark."""
    if var == "context_str":
        return "\n".join(PASSAGES)
    return SAMPLES.get(var, f"<the {var.replace('_', ' ')}>")


def similarity(template: Any, signature: Any) -> float:
    """difflib ratio of the original and the migrated prompt, rendered with the same inputs."""
    from llama_index.core.prompts import ChatPromptTemplate

    variables = getattr(template, "template_vars", None) or getattr(template.default_template, "template_vars", [])
    values = {v: sample(v) for v in variables}
    if isinstance(getattr(template, "default_template", template), ChatPromptTemplate):
        original = "\n\n".join(m.content or "" for m in template.format_messages(**values))
    else:
        original = template.format(**values)
    mapped = {kw: tv for kw, tv in (getattr(template, "template_var_mappings", None) or {}).items()}
    inputs = {n: (PASSAGES if f.annotation == list[str] else values[mapped.get(n, n)])
              for n, f in signature.input_fields.items()}
    migrated = "\n\n".join(m["content"] for m in lmbridge.Predict(signature).messages(**inputs))
    return difflib.SequenceMatcher(None, original.strip(), migrated.strip(), autojunk=False).ratio()


def measure() -> tuple[list[str], int, int, int]:
    import llama_index.core

    prompts = default_prompts()
    lines = [f"# benchmarks/llamaindex_prompts.py on llama-index-core {llama_index.core.__version__}", "",
             "| prompt | variables | similarity | verbatim | note |", "|---|---|---|---|---|"]
    migrated = verbatim = above = 0
    for name, template in prompts.items():
        variables = ", ".join(getattr(template, "template_vars", []) or [])
        try:
            signature = from_llamaindex_prompt(template)  # type: ignore[arg-type]
        except (BridgeError, ValueError) as exc:
            lines.append(f"| {name} | {variables} | not migrated | no | {type(exc).__name__}: {str(exc)[:80]} |")
            continue
        migrated += 1
        lost = lost_lines(template, signature)  # type: ignore[arg-type]
        verbatim += not lost
        ratio = similarity(template, signature)
        above += ratio >= GOAL
        note = f"lost: {lost[0].strip()[:60]!r}" if lost else signature.spec()
        if ratio < GOAL:
            note = f"below {GOAL}: {reason(signature)}; {note}"
        lines.append(f"| {name} | {variables} | {ratio:.3f} | {'no' if lost else 'yes'} | {note} |")
    lines += ["", f"{migrated} of {len(prompts)} default prompts migrate; {verbatim} of them verbatim; "
              f"{above} at similarity >= {GOAL}."]
    return lines, len(prompts), migrated, verbatim


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    lines, _, _, _ = measure()
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
