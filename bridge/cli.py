"""The ``lmbridge`` command: compile, evaluate and inspect programs.

    lmbridge compile app:program --trainset train.jsonl --valset dev.jsonl --metric app:metric \\
        --optimizer mipro --auto light --out compiled.json
    lmbridge evaluate app:program --devset test.jsonl --metric exact_match:label --load compiled.json
    lmbridge inspect compiled.json

``app:program`` names a Module instance, or a class or function that returns one, in an importable
module (the current directory is importable). The command imports it because you named it; loading
a compiled JSON file never runs code. ``--metric`` is ``module:function`` or a built-in
``exact_match:FIELD`` / ``f1:FIELD``. Data files hold one JSON object per line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError
from bridge.lm import LM, BaseLM
from bridge.module import Module
from bridge.settings import context
from bridge.types import Example

OPTIMIZERS = ["labeled", "bootstrap", "random-search", "mipro", "copro", "simba", "gepa", "knn"]


class UsageError(Exception):
    """A command-line mistake: printed without a traceback."""


def _import(spec: str, what: str) -> Any:
    if ":" not in spec:
        raise UsageError(f"{what} must look like module:name, not {spec!r}")
    module_name, attr = spec.split(":", 1)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} for {what}: {exc}") from exc
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise UsageError(f"{module_name!r} has no {attr!r} ({what})")
        value = getattr(value, part)
    return value


def load_program(spec: str) -> Module:
    value = _import(spec, "the program")
    if not isinstance(value, Module) and callable(value):
        value = value()
    if not isinstance(value, Module):
        raise UsageError(f"{spec} is a {type(value).__name__}, not a bridge Module (or a factory of one)")
    return value


def load_metric(spec: str) -> Any:
    from bridge import metrics

    name, _, field = spec.partition(":")
    if name in ("exact_match", "f1") and field and "." not in field:
        return metrics.exact_match(field) if name == "exact_match" else metrics.f1(field)
    metric = _import(spec, "the metric")
    if not callable(metric):
        raise UsageError(f"{spec} is not callable")
    return metric


def load_rows(path: str, input_fields: Sequence[str]) -> list[Example]:
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n} is not JSON: {exc}") from exc
        missing = [f for f in input_fields if f not in data]
        if missing:
            raise UsageError(f"{path}:{n} lacks the input field(s) {missing}")
        rows.append(Example(data).with_inputs(*input_fields))
    return rows


def input_fields_of(program: Module, given: str | None) -> list[str]:
    if given:
        return [f.strip() for f in given.split(",") if f.strip()]
    predictors = program.predictors()
    if not predictors:
        raise UsageError("the program has no predictors; pass --input-fields")
    return list(predictors[0].signature.input_fields)


def make_lm(args: argparse.Namespace) -> BaseLM:
    if getattr(args, "lm_factory", None):
        value = _import(args.lm_factory, "--lm-factory")
        lm = value if isinstance(value, BaseLM) else value()
        if not isinstance(lm, BaseLM):
            raise UsageError(f"{args.lm_factory} did not give a bridge LM")
        return lm
    return LM(args.lm, api_base=args.api_base)


# -- compile -----------------------------------------------------------------------------------------

def make_optimizer(args: argparse.Namespace, metric: Any) -> Any:
    import bridge.optimizers as opt

    common: dict[str, Any] = {"seed": args.seed, "max_lm_calls": args.max_lm_calls,
                              "max_cost": args.max_cost, "display_progress": not args.quiet}
    threads = {"num_threads": args.num_threads}
    demos = {k: v for k, v in (("max_bootstrapped_demos", args.max_bootstrapped_demos),
                               ("max_labeled_demos", args.max_labeled_demos)) if v is not None}
    name = args.optimizer
    if name == "labeled":
        return opt.LabeledFewShot(k=args.k or 16, seed=args.seed, display_progress=not args.quiet)
    if name == "bootstrap":
        return opt.BootstrapFewShot(metric=metric, **demos, **threads, **common)
    if name == "random-search":
        return opt.BootstrapFewShotWithRandomSearch(metric, num_candidate_programs=args.num_candidates or 8,
                                                    **demos, **threads, **common)
    if name == "mipro":
        auto = None if args.auto == "none" else args.auto
        extra = {"num_candidates": args.num_candidates} if auto is None else {}
        return opt.MIPROv2(metric, auto=auto, **extra, **demos, **threads, **common)
    cls = getattr(opt, {"copro": "COPRO", "simba": "SIMBA", "gepa": "GEPA", "knn": "KNNFewShot"}[name], None)
    if cls is None:
        raise UsageError(f"optimizer {name!r} is not available in this version")
    if name == "copro":
        return cls(metric=metric, **threads, **common)
    if name == "simba":
        return cls(metric=metric, **threads, **common)
    if name == "gepa":
        return cls(metric, auto=args.auto if args.auto != "none" else "light", **threads, **common)
    raise UsageError("the knn optimizer needs an embedder: use it from Python (bridge.KNNFewShot)")


def compile_kwargs(args: argparse.Namespace, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.checkpoint and name in ("bootstrap", "random-search", "mipro"):
        out["checkpoint"] = args.checkpoint
    if name == "mipro" and args.num_trials:
        out["num_trials"] = args.num_trials
    if name == "mipro" and args.minibatch_size:
        out["minibatch_size"] = args.minibatch_size
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    program = load_program(args.program)
    metric = load_metric(args.metric)
    fields = input_fields_of(program, args.input_fields)
    train = load_rows(args.trainset, fields)
    val = load_rows(args.valset, fields) if args.valset else None
    lm = make_lm(args)
    optimizer = make_optimizer(args, metric)
    with context(lm=lm):
        options = compile_kwargs(args, args.optimizer)
        sizes = {k: v for k, v in options.items() if k in ("num_trials", "minibatch_size")}
        estimate = optimizer.estimate(program, trainset=train, valset=val, **sizes)
        print(f"estimate: {estimate}", file=sys.stderr)
        if args.estimate_only:
            print(json.dumps(estimate.to_dict()))
            return 0
        if args.checkpoint and args.optimizer not in ("bootstrap", "random-search", "mipro"):
            print(f"note: --checkpoint is not used by {args.optimizer}", file=sys.stderr)
        valset = {"valset": val} if val is not None and args.optimizer != "labeled" else {}
        compiled = optimizer.compile(program, trainset=train, **valset, **options)
    compiled.save(args.out)
    for warning in (compiled.report or {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(report_table(compiled.report or {}, saved=args.out))
    return 0


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}%"


def report_table(report: dict[str, Any], saved: str | None = None) -> str:
    trials = report.get("trials") or []
    cost = report.get("cost")
    rows = [
        ("optimizer", str(report.get("optimizer", "-"))),
        ("baseline score", _pct(report.get("baseline_score"))),
        ("best score", _pct(report.get("best_score"))),
        ("trials", str(len(trials))),
        ("LM calls", f"{report.get('lm_calls', 0)} (cache hits {report.get('cache_hits', 0)})"),
        ("tokens", str(report.get("tokens", 0))),
        ("cost", "unknown" if cost is None else f"${float(cost):.4f}"),
        ("failed examples", f"{report.get('failures', 0)} of {report.get('examples_run', 0)}"),
        ("wall time", f"{float(report.get('wall_time', 0.0)):.1f} s"),
        ("stopped early", str(report.get("stopped_early") or "no")),
    ]
    if saved:
        rows.append(("saved to", saved))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# -- evaluate ----------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from bridge.evaluate import Evaluate

    program = load_program(args.program)
    if args.load:
        program.load(args.load)
    metric = load_metric(args.metric)
    rows = load_rows(args.devset, input_fields_of(program, args.input_fields))
    with context(lm=make_lm(args)):
        result = Evaluate(devset=rows, metric=metric, num_threads=args.num_threads,
                          display_progress=not args.quiet)(program)
    print(f"score      {result.score:.1f}%  ({len(result.results)} examples, {result.errors} failed)")
    print(f"LM calls   {result.usage.calls} (cache hits {result.usage.cache_hits})")
    print(f"wall time  {result.elapsed:.1f} s")
    return 0


# -- inspect -----------------------------------------------------------------------------------------

def _annotation(type_text: str) -> Any:
    """The type a saved field names, or str when it names a type only the program's code knows."""
    from bridge.errors import SignatureError
    from bridge.signature import make_signature

    try:
        return make_signature(f"x -> y: {type_text}").output_fields["y"].annotation
    except SignatureError:
        return str


def saved_signature(state: dict[str, Any]) -> Any:
    """A signature rebuilt from a predictor's saved state: fields, types, descriptions, instructions."""
    from bridge.signature import Field, make_signature

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
    from bridge.formats import format_from_state
    from bridge.persistence import apply_state, check_state, read_state
    from bridge.predict import DEFAULT_FORMAT

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


# -- the parser --------------------------------------------------------------------------------------

def _lm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lm", default="local/smollm2", help="model string (default: local/smollm2)")
    p.add_argument("--lm-factory", help="module:name of a bridge LM, or of a function returning one")
    p.add_argument("--api-base", help="base URL of an OpenAI-compatible server")
    p.add_argument("--input-fields", help="comma-separated input fields (default: the first predictor's)")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lmbridge",
                                   description="Compile, evaluate and inspect lmbridge programs.")
    sub = root.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="optimize a program on a trainset and save it as JSON")
    c.add_argument("program", help="module:name of the program")
    c.add_argument("--trainset", required=True)
    c.add_argument("--valset")
    c.add_argument("--metric", required=True, help="module:function, exact_match:FIELD or f1:FIELD")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="mipro")
    c.add_argument("--auto", choices=["light", "medium", "heavy", "none"], default="light")
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--max-lm-calls", type=int)
    c.add_argument("--max-cost", type=float)
    c.add_argument("--checkpoint", help="a file (or RDB URL, for mipro) to resume from and share")
    c.add_argument("--k", type=int, help="demos for --optimizer labeled")
    c.add_argument("--max-bootstrapped-demos", type=int)
    c.add_argument("--max-labeled-demos", type=int)
    c.add_argument("--num-candidates", type=int)
    c.add_argument("--num-trials", type=int)
    c.add_argument("--minibatch-size", type=int)
    c.add_argument("--estimate-only", action="store_true", help="print the projected LM calls and stop")
    _lm_options(c)
    c.set_defaults(run=cmd_compile)

    e = sub.add_parser("evaluate", help="score a program on a devset")
    e.add_argument("program")
    e.add_argument("--devset", required=True)
    e.add_argument("--metric", required=True)
    e.add_argument("--load", help="a compiled JSON file to load into the program first")
    _lm_options(e)
    e.set_defaults(run=cmd_evaluate)

    i = sub.add_parser("inspect", help="show the messages a compiled program sends, without running a model")
    i.add_argument("file")
    i.add_argument("--program", help="module:name of the program, to render with its own code")
    i.add_argument("--no-report", action="store_true")
    i.set_defaults(run=cmd_inspect)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(printable(f"lmbridge: error: {exc}"), file=sys.stderr)
        return 2
    except (BridgeError, ValueError, TypeError) as exc:
        print(printable(f"lmbridge: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
