"""Migrate every default prompt of LlamaIndex (``llama_index.core.prompts.default_prompts``) with
``from_llamaindex_prompt`` and count how many migrate verbatim: every hand-written line kept as an
instruction line, or as the label of a field.

    python benchmarks/llamaindex_prompts.py            # prints the table; --out writes it too

A prompt that does not migrate is listed with the error it raised; a prompt that migrates but not
verbatim is listed with the first line that was lost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lmbridge import BridgeError  # noqa: E402
from lmbridge.adapters.llamaindex._prompts import from_llamaindex_prompt, lost_lines  # noqa: E402


def default_prompts() -> dict[str, object]:
    from llama_index.core.prompts import BasePromptTemplate, default_prompts

    return {name: value for name, value in sorted(vars(default_prompts).items())
            if isinstance(value, BasePromptTemplate)}


def measure() -> tuple[list[str], int, int, int]:
    import llama_index.core

    prompts = default_prompts()
    lines = [f"# benchmarks/llamaindex_prompts.py on llama-index-core {llama_index.core.__version__}", "",
             "| prompt | variables | migrated | verbatim | note |", "|---|---|---|---|---|"]
    migrated = verbatim = 0
    for name, template in prompts.items():
        variables = ", ".join(getattr(template, "template_vars", []) or [])
        try:
            signature = from_llamaindex_prompt(template)  # type: ignore[arg-type]
        except (BridgeError, ValueError) as exc:
            lines.append(f"| {name} | {variables} | no | no | {type(exc).__name__}: {str(exc)[:80]} |")
            continue
        migrated += 1
        lost = lost_lines(template, signature)  # type: ignore[arg-type]
        verbatim += not lost
        note = f"lost: {lost[0].strip()[:60]!r}" if lost else signature.spec()
        lines.append(f"| {name} | {variables} | yes | {'no' if lost else 'yes'} | {note} |")
    lines += ["", f"{migrated} of {len(prompts)} default prompts migrate; {verbatim} of them verbatim."]
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
