"""``lmbridge inspect``: the messages each predictor of a saved program sends, and its compile report,
shown without running a model; text from the file is made safe for a terminal first."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from lmbridge.cli._compile import report_table
from lmbridge.cli._load import UsageError, load_program
from lmbridge.errors import BridgeError, SignatureError
from lmbridge.formats import format_from_state
from lmbridge.programs import DEFAULT_FORMAT, Module, apply_state, check_state, read_state
from lmbridge.signatures import Field, make_signature
from lmbridge.types import Example


def _annotation(type_text: str) -> Any:
    """The type a saved field names, or str when it names a type only the program's code knows."""

    try:
        return make_signature(f"x -> y: {type_text}").output_fields["y"].annotation
    except SignatureError:
        return str


def saved_signature(state: dict[str, Any]) -> Any:
    """A signature rebuilt from a predictor's saved state: fields, types, descriptions, instructions."""

    fields = {name: Field(name, entry["kind"], _annotation(str(entry.get("type", "str"))),
                          str(entry.get("desc", "")), str(entry.get("prefix", "")))
              for name, entry in state["fields"].items()}
    return make_signature(fields, state["instructions"])


def render_messages(messages: Sequence[Any]) -> str:
    out = []
    for m in messages:
        body = "\n".join(f"    {line}" for line in str(m["content"]).splitlines())
        out.append(f"  [{m['role']}]\n{body}")
    return "\n".join(out)


def render_file(path: str, program: Module | None = None, show_report: bool = True) -> str:
    """The messages each predictor of a saved program sends (inputs shown as {placeholders}) and its
    compile report. Runs no model and, without ``program``, no code. The file is checked first (its
    format marker, version and shape: StateError names what is wrong); the text comes back raw, for
    ``printable`` to make safe for a terminal."""

    state = read_state(path)
    predictors = check_state(state)
    blocks = [f"{path}: program {state.get('program')}, lmbridge {state.get('lmbridge_version')}"]
    if program is not None:
        apply_state(program, state)
        for name, p in program.named_predictors():
            inputs = {n: "{" + n + "}" for n in p.signature.input_fields}
            blocks.append(f"predictor {name} ({p.signature.spec()}), {len(p.demos)} demos\n"
                          + render_messages(p.messages(**inputs)))
    else:
        for name, entry in predictors.items():
            sig = saved_signature(entry)
            fmt = format_from_state(entry["format"]) if entry.get("format") else DEFAULT_FORMAT
            demos = [Example(d) for d in entry["demos"]]
            inputs = {n: "{" + n + "}" for n in sig.input_fields}
            blocks.append(f"predictor {name} ({sig.spec()}), {len(demos)} demos, format {fmt!r}\n"
                          + render_messages(fmt.format(sig, demos, inputs)))
    report = state.get("report")
    if show_report:
        blocks.append("compile report\n" + (report_table(report) if isinstance(report, dict) else "  (none)"))
    return "\n\n".join(blocks)


_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 and C1 controls (ESC, CR, BEL, CSI), but not \t \n
                     r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
                     r"\u2028\u2029\ud800-\udfff]")  # line and paragraph separators, lone surrogates


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ANSI escapes, carriage returns,
    backspaces), bidirectional overrides and line separators from a file are shown escaped (an
    ESC shows as ``\\x1b``), never sent raw. Newlines and tabs stay."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def cmd_inspect(args: argparse.Namespace) -> int:
    program = load_program(args.program) if args.program else None
    try:
        text = render_file(args.file, program=program, show_report=not args.no_report)
    except (BridgeError, UsageError):
        raise
    except Exception as exc:  # a file that passed the checks yet cannot be shown: a message, not a traceback
        raise UsageError(f"cannot show {args.file}: {type(exc).__name__}: {exc}") from exc
    try:
        print(printable(text))
        sys.stdout.flush()
    except BrokenPipeError:  # `lmbridge inspect f.json | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail again
        return 1
    return 0
