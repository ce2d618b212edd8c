"""Migrate every prompt template the ``langchain-classic`` distribution ships, and count how many keep
their hand-written text verbatim.

    pip install langchain-classic==1.0.8          # only for this measurement
    .venv/bin/python benchmarks/langchain_migration.py

A template is found as a module-level ``BasePromptTemplate`` in any importable ``langchain_classic``
module (deduplicated by identity). Each one goes through ``migrate_prompt`` with the default outputs.
It counts as **verbatim** when every hand-written line survives: each line of its text that holds
no variable is found, unchanged, in the signature's instructions, except a last line that is the
answer cue, which must be the first output field's label, and a label line over a variable on the
next line, which must be that input field's label. Lines that hold a variable are the variable
slots; the format writes those itself. Failures and non-verbatim templates are listed with
the reason.

It also reports, per template, the **similarity** of the rendered prompts, measured as
``benchmarks/llamaindex_prompts.py`` measures LlamaIndex's: the original template and the migrated
signature (``Predict(signature, demos=...).messages``, the default ``ChatFormat``) rendered with the
same inputs (a short sample value per variable, a list of two messages for a list input), compared
with ``difflib.SequenceMatcher.ratio``. A template below 0.9 is listed with its reason.
Output: benchmarks/results/langchain_migration.txt.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langchain_core.prompts import BasePromptTemplate  # noqa: E402

import lmbridge  # noqa: E402
from lmbridge.adapters.langchain._migrate import MigratedPrompt, migrate_prompt  # noqa: E402
from lmbridge.adapters.langchain._prompts import template_texts  # noqa: E402

_VARIABLE = re.compile(r"\{[^{}\s]*\}|\{\{.*?\}\}|\{%.*?%\}")


def shipped_templates() -> dict[str, Any]:
    import langchain_classic

    found: dict[int, tuple[str, Any]] = {}
    for info in pkgutil.walk_packages(langchain_classic.__path__, "langchain_classic."):
        if ".tests" in info.name or info.name.endswith("__main__"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(info.name)
        except Exception:
            continue
        for attr, value in vars(module).items():
            if isinstance(value, BasePromptTemplate) and id(value) not in found:
                found[id(value)] = (f"{info.name}:{attr}", value)
    return dict(sorted(found.values(), key=lambda item: item[0]))


def verbatim_problem(template: Any, signature: Any) -> str | None:
    """None when every hand-written line is kept; else the first line that is not."""
    pieces = [text for text, fmt in _pieces(template) if fmt != "messages"]
    lines = [ln.strip() for text in pieces for ln in text.replace("{{", "{").replace("}}", "}").splitlines()
             if ln.strip()]
    labels = {f.label.lower() for f in signature.input_fields.values()}
    literal = [ln for i, ln in enumerate(lines) if not _VARIABLE.search(ln)
               and not _slot_label(ln, lines[i + 1] if i + 1 < len(lines) else "", labels)]
    first = next(iter(signature.output_fields.values()))
    if literal and lines and literal[-1] == lines[-1] and literal[-1].endswith(":") \
            and literal[-1][:-1].strip().lower() == first.label.lower():
        literal = literal[:-1]
    for line in literal:
        if line not in signature.instructions:
            return f"line not kept: {line[:70]!r}"
    return None


def _slot_label(line: str, following: str, labels: set[str]) -> bool:
    """A label line over a variable on the next line (``"Chat History:"`` then ``"{chat_history}"``):
    part of the slot when the field kept it as its label."""
    return line.endswith(":") and bool(_VARIABLE.fullmatch(following.strip())) and line[:-1].strip().lower() in labels


def _pieces(template: Any) -> list[tuple[str, str]]:
    from langchain_core.prompts import FewShotPromptTemplate

    if isinstance(template, FewShotPromptTemplate):
        return [(template.prefix, template.template_format), (template.suffix, template.template_format)]
    try:
        return template_texts(template)
    except Exception:
        return []


GOAL = 0.9


def similarity(template: Any, migrated: MigratedPrompt) -> float:
    """difflib ratio of the template and the migrated prompt, rendered with the same inputs."""
    from langchain_core.messages import HumanMessage

    signature = migrated.signature
    lists = [n for n, f in signature.input_fields.items() if f.annotation == list[str]]
    values: dict[str, Any] = {n: f"<the {n.replace('_', ' ')}>" for n in template.input_variables}
    values.update({n: [HumanMessage(f"<{n} one>"), HumanMessage(f"<{n} two>")] for n in lists
                   if n in template.input_variables})
    rendered = template.invoke(values)
    original = "\n\n".join(str(m.content) for m in rendered.to_messages()) if hasattr(rendered, "to_messages") \
        else str(rendered)
    inputs = {n: ([f"<{n} one>", f"<{n} two>"] if n in lists else values.get(n, f"<the {n}>"))
              for n in signature.input_fields}
    predictor = lmbridge.Predict(signature)
    predictor.demos = list(migrated.demos)
    ours = "\n\n".join(m["content"] for m in predictor.messages(**migrated.inputs(**inputs)))
    return difflib.SequenceMatcher(None, original.strip(), ours.strip(), autojunk=False).ratio()


def reason(template: Any, migrated: MigratedPrompt) -> str:
    """Why a migrated template renders below the goal, read from the template and the signature."""
    from langchain_core.messages import AIMessage
    from langchain_core.prompts.chat import AIMessagePromptTemplate

    signature = migrated.signature
    held = [n for n in signature.input_fields if "{" + n + "}" in signature.instructions]
    labelled = [n for n in signature.input_fields if n not in held]
    if migrated.demos:
        return "few-shot examples become demo turns (user/assistant messages), not one block of text"
    if any(isinstance(m, (AIMessage, AIMessagePromptTemplate)) for m in getattr(template, "messages", [])):
        return "a fixed AI turn is left out of the signature (give it to Predict as a demo)"
    if signature.instructions.startswith("Given `"):
        return ("the template is its variables and their labels alone: the migrated prompt adds instructions "
                "and the answer cue")
    if labelled:
        return (f"the closing values ({', '.join(labelled)}) are written under their labels after the "
                "instructions, with the answer cue")
    return "every value stands in its sentence; the format adds a blank line and the answer cue"


def main() -> str:
    templates = shipped_templates()
    failed: list[tuple[str, str]] = []
    changed: list[tuple[str, str]] = []
    similar: list[str] = []
    migrated = above = 0
    for name, template in templates.items():
        try:
            result = migrate_prompt(template)
        except Exception as exc:
            failed.append((name, f"{type(exc).__name__}: {str(exc)[:150]}"))
            continue
        migrated += 1
        problem = verbatim_problem(template, result.signature)
        if problem is not None:
            changed.append((name, problem))
        try:
            ratio = similarity(template, result)
        except Exception as exc:
            similar.append(f"- {name}: not rendered ({type(exc).__name__}: {str(exc)[:80]})")
            continue
        above += ratio >= GOAL
        why = "" if ratio >= GOAL else f" (below {GOAL}: {reason(template, result)})"
        similar.append(f"- {name}: {ratio:.3f}{why}")
    verbatim = migrated - len(changed)
    lines = [f"langchain-classic prompt templates: {len(templates)}",
             f"migrated: {migrated}; text verbatim: {verbatim}; text changed: {len(changed)}; "
             f"refused with an error: {len(failed)}", "", "Refused:"]
    lines += [f"- {n}: {why}" for n, why in failed] or ["- none"]
    lines += ["", "Text changed:"]
    lines += [f"- {n}: {why}" for n, why in changed] or ["- none"]
    lines += ["", f"Similarity of the rendered prompts (goal {GOAL}; {above} of {migrated} at or above it):"]
    lines += similar
    report = "\n".join(lines)
    print(report)
    out = ROOT / "benchmarks" / "results" / "langchain_migration.txt"
    out.write_text(report + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
