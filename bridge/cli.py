"""The ``lmbridge`` command: compile, evaluate and inspect programs.

    lmbridge compile app:program --trainset train.jsonl --valset dev.jsonl --metric app:metric \\
        --optimizer mipro --auto light --out compiled.json
    lmbridge evaluate app:program --devset test.jsonl --metric exact_match:label --load compiled.json
    lmbridge inspect compiled.json
    lmbridge migrate app:PROMPT --demos demos.jsonl     # a LangChain prompt as a signature class

``app:program`` names a Module instance, or a class or function that returns one, in an importable
module (the current directory is importable). The command imports it because you named it; loading
a compiled JSON file never runs code. ``--metric`` is ``module:function`` or a built-in
``exact_match:FIELD`` / ``f1:FIELD``. Data files are JSONL (see ``DATA_FORMAT``).

Exit status: 0 on success, 1 when the run failed (a configuration error, a metric or data that
cannot work, every example failed), 2 on a command-line mistake. The reason goes to stderr.
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

from lmbridge.errors import BridgeError
from lmbridge.lm import LM, BaseLM
from lmbridge.module import Module
from lmbridge.settings import context, current
from lmbridge.types import Example

OPTIMIZERS = {
    "labeled": "LabeledFewShot: k labeled demos from the trainset, no LM calls",
    "bootstrap": "BootstrapFewShot: demos from the program's own correct runs on the trainset",
    "random-search": "BootstrapFewShotWithRandomSearch: several bootstrapped demo sets, the best on the valset",
    "mipro": "MIPROv2 (default; needs lmbridge[optuna]): instructions, demos and prompt format, searched with TPE",
    "copro": "COPRO: instructions proposed and refined by the LM",
    "simba": "SIMBA: rules and demos added from the program's hardest examples",
    "gepa": "GEPA: instructions evolved from reflection on failures",
}
"""The optimizers the command offers. KNNFewShot and Ensemble are Python-only: a KNN program looks
up demos in memory for each input, and an ensemble combines several programs built in code; neither
can be carried by one saved JSON file of plain state."""

DEFAULT_LM = "local/smollm2"

DATA_FORMAT = """\
data files (--trainset, --valset, --devset):
  JSONL: one JSON object per line, UTF-8; blank lines are skipped. Each object holds the
  program's input fields (by default those of its first predictor; --input-fields a,b to choose)
  and the gold fields the metric reads, for example
    {"text": "a gorgeous, witty film", "label": "positive"}
  Every row needs every input field; a missing one is an error naming the line.

the LM:
  --lm MODEL uses that model for the whole run. Without --lm the program's own LM is used (an LM
  given to its predictors, or lmbridge.configure(...) run when its module is imported); when it has
  none, the embedded local/smollm2.

exit status: 0 on success; 1 when the run failed (no usable LM, refused credentials, an unknown
model, a metric or data that cannot work, every example failed); 2 on a command-line mistake.
"""


class UsageError(Exception):
    """A command-line mistake: printed without a traceback."""


class RunFailed(Exception):
    """The run finished but produced nothing usable: printed without a traceback, exit status 1."""


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
    from lmbridge import metrics

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
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n} is not JSON ({exc}); data files hold one JSON object per line") from exc
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{n} is a JSON {type(data).__name__}, not an object")
        missing = [f for f in input_fields if f not in data]
        if missing:
            raise UsageError(f"{path}:{n} lacks the input field(s) {missing}")
        rows.append(Example(data).with_inputs(*input_fields))
    if not rows:
        raise UsageError(f"{path} holds no rows")
    return rows


def input_fields_of(program: Module, given: str | None) -> list[str]:
    if given:
        return [f.strip() for f in given.split(",") if f.strip()]
    predictors = program.predictors()
    if not predictors:
        raise UsageError("the program has no predictors; pass --input-fields")
    return list(predictors[0].signature.input_fields)


def make_lm(args: argparse.Namespace, program: Module) -> BaseLM | None:
    """The LM the command puts in context: --lm-factory or --lm when given; otherwise None (the
    program's own LM is used) or, when the program has no LM at all, the embedded default."""
    if getattr(args, "lm_factory", None):
        value = _import(args.lm_factory, "--lm-factory")
        lm = value if isinstance(value, BaseLM) else value()
        if not isinstance(lm, BaseLM):
            raise UsageError(f"{args.lm_factory} did not give a bridge LM")
        return lm
    if args.lm:
        return LM(args.lm, api_base=args.api_base)
    if current().lm is not None or all(p.lm is not None for p in program.predictors()):
        return None
    print(f"note: the program configures no LM; using {DEFAULT_LM} (pass --lm to choose)", file=sys.stderr)
    return LM(DEFAULT_LM, api_base=args.api_base)


def _lm_context(lm: BaseLM | None) -> Any:
    return context(lm=lm) if lm is not None else context()


# -- compile -----------------------------------------------------------------------------------------

def make_optimizer(args: argparse.Namespace, metric: Any) -> Any:
    import lmbridge.optimizers as opt

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
    if name == "copro":
        return opt.COPRO(metric=metric, **threads, **common)
    if name == "simba":
        return opt.SIMBA(metric=metric, **threads, **common)
    if name == "gepa":
        return opt.GEPA(metric, auto=args.auto if args.auto != "none" else "light", **threads, **common)
    raise UsageError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")


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
    if args.workers != 1:
        return compile_with_workers(args)
    program = load_program(args.program)
    metric = load_metric(args.metric)
    fields = input_fields_of(program, args.input_fields)
    train = load_rows(args.trainset, fields)
    val = load_rows(args.valset, fields) if args.valset else None
    optimizer = make_optimizer(args, metric)
    with _lm_context(make_lm(args, program)):
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


def compile_with_workers(args: argparse.Namespace) -> int:
    """``--workers N``: run this compile in N processes on one shared MIPROv2 study. N-1 children run
    the same command with ``--workers 1``; this process is the Nth worker and saves the program. Every
    worker of a study picks the same program, so the children's copies are thrown away."""
    import os
    import subprocess
    import tempfile

    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.optimizer != "mipro" or not args.checkpoint:
        raise UsageError("--workers needs --optimizer mipro and a --checkpoint the workers share "
                         "(a postgresql:// URL, or an SQLite file on this machine)")
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="lmbridge-workers-") as tmp:
        children = []
        for i in range(1, args.workers):
            log = open(Path(tmp) / f"worker-{i}.log", "w+")  # noqa: SIM115 - closed below
            command = [sys.executable, "-m", "lmbridge.cli", *args.argv, "--workers", "1", "--quiet",
                       "--out", str(Path(tmp) / f"worker-{i}.json")]
            children.append((i, log, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)))
        args.workers = 1
        try:
            code = cmd_compile(args)
        finally:
            for i, log, child in children:
                if child.wait() != 0:
                    log.seek(0)
                    tail = log.read()[-2000:]
                    print(f"warning: worker {i} exited with {child.returncode}; its trials went to the others:\n"
                          f"{tail}", file=sys.stderr)
                log.close()
    return code


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}%"


def report_table(report: dict[str, Any], saved: str | None = None) -> str:
    """The compile report as a table. Its counts are the report's own: the search trials (what
    ``--num-trials`` sets), the full-valset evaluations, and the progress steps the bar showed."""
    trials = report.get("trials") or []
    searched = [t for t in trials if t.get("kind") != "full_evaluation"]
    fulls = len(trials) - len(searched)
    cost = report.get("cost")
    rows = [
        ("optimizer", str(report.get("optimizer", "-"))),
        ("baseline score", _pct(report.get("baseline_score"))),
        ("best score", _pct(report.get("best_score"))),
        ("trials", str(len(searched)) + (f" (+ {fulls} full evaluations)" if fulls else "")),
    ]
    progress = report.get("progress")
    if isinstance(progress, dict):
        rows.append(("progress", f"{progress.get('done')} of {progress.get('planned')} {progress.get('unit')}"))
    rows += [
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
    from lmbridge.evaluate import Evaluate

    program = load_program(args.program)
    if args.load:
        program.load(args.load)
    metric = load_metric(args.metric)
    rows = load_rows(args.devset, input_fields_of(program, args.input_fields))
    with _lm_context(make_lm(args, program)):
        result = Evaluate(devset=rows, metric=metric, num_threads=args.num_threads,
                          display_progress=not args.quiet)(program)
    print(f"score      {result.score:.1f}%  ({len(result.results)} examples, {result.errors} failed)")
    print(f"LM calls   {result.usage.calls} (cache hits {result.usage.cache_hits})")
    print(f"wall time  {result.elapsed:.1f} s")
    first = next((r.error for r in result.results if r.error is not None), None)
    if result.errors and result.errors == len(result.results):
        raise RunFailed(f"every one of the {result.errors} examples failed, so there is no score; first: {first}")
    if first is not None:
        print(f"note: {result.errors} examples failed and scored 0; first: {first}", file=sys.stderr)
    return 0


# -- inspect -----------------------------------------------------------------------------------------

def _annotation(type_text: str) -> Any:
    """The type a saved field names, or str when it names a type only the program's code knows."""
    from lmbridge.errors import SignatureError
    from lmbridge.signature import make_signature

    try:
        return make_signature(f"x -> y: {type_text}").output_fields["y"].annotation
    except SignatureError:
        return str


def saved_signature(state: dict[str, Any]) -> Any:
    """A signature rebuilt from a predictor's saved state: fields, types, descriptions, instructions."""
    from lmbridge.signature import Field, make_signature

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
    from lmbridge.formats import format_from_state
    from lmbridge.persistence import apply_state, check_state, read_state
    from lmbridge.predict import DEFAULT_FORMAT

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


def cmd_migrate(args: argparse.Namespace) -> int:
    """Print a LangChain prompt (``module:NAME`` or a text file) migrated to a signature class."""
    from lmbridge.adapters.langchain_migrate import print_migration

    template = _import(args.prompt, "the prompt") if ":" in args.prompt and not Path(args.prompt).exists() else None
    return print_migration(args.prompt, template, output_fields=args.output_fields, name=args.name,
                           demos=args.demos, template_format=args.template_format)


# -- the parser --------------------------------------------------------------------------------------

def _version() -> str:
    from lmbridge import __version__

    return f"lmbridge {__version__}"


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lm", metavar="MODEL",
                   help="model string for the whole run, such as local/smollm2 or openai/gpt-4o-mini "
                        "(default: the program's own LM, else local/smollm2)")
    p.add_argument("--lm-factory", metavar="MODULE:NAME",
                   help="a bridge LM object, or a function returning one, to use instead of --lm")
    p.add_argument("--api-base", metavar="URL", help="base URL of an OpenAI-compatible server, for --lm")
    p.add_argument("--input-fields", metavar="A,B",
                   help="comma-separated input fields of the data rows (default: the first predictor's)")
    p.add_argument("--num-threads", type=int, metavar="N",
                   help="examples run at once (default: lmbridge.configure's num_threads)")
    p.add_argument("--quiet", action="store_true", help="no progress display on stderr")


def parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    root = argparse.ArgumentParser(prog="lmbridge", description="Compile, evaluate and inspect lmbridge programs.",
                                   epilog=DATA_FORMAT, formatter_class=fmt)
    root.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    optimizers = "\n".join(f"  {name:<14}{text}" for name, text in OPTIMIZERS.items())
    c = sub.add_parser("compile", help="optimize a program on a trainset and save it as JSON",
                       description="Optimize a program on a trainset and save it as JSON.",
                       epilog=f"optimizers (--optimizer):\n{optimizers}\n  KNNFewShot and Ensemble are "
                              "used from Python only (see docs/optimizers/cli.md).\n\n" + DATA_FORMAT,
                       formatter_class=fmt)
    c.add_argument("program", help="module:name of the program (a Module, or a factory of one)")
    c.add_argument("--trainset", required=True, metavar="FILE.jsonl", help="training rows, JSONL")
    c.add_argument("--valset", metavar="FILE.jsonl",
                   help="validation rows, JSONL (default: a split of the trainset, where the optimizer needs one)")
    c.add_argument("--metric", required=True, metavar="SPEC",
                   help="module:function(example, prediction, trace=None), exact_match:FIELD or f1:FIELD")
    c.add_argument("--optimizer", choices=list(OPTIMIZERS), default="mipro", help="the optimizer (default: mipro)")
    c.add_argument("--auto", choices=["light", "medium", "heavy", "none"], default="light",
                   help="run size for mipro and gepa (default: light); none: set --num-candidates, --num-trials")
    c.add_argument("--out", required=True, metavar="FILE.json", help="where to save the compiled program")
    c.add_argument("--seed", type=int, default=0, help="random seed; the same seed, data and cache give the "
                                                        "same program (default: 0)")
    c.add_argument("--max-lm-calls", type=int, metavar="N",
                   help="hard cap on LM calls; the compile stops there with the best program so far")
    c.add_argument("--max-cost", type=float, metavar="USD", help="hard cap on spend, in US dollars")
    c.add_argument("--checkpoint", metavar="PATH|URL",
                   help="a file (or an RDB URL, for mipro) to resume from and share (bootstrap, random-search, mipro)")
    c.add_argument("--k", type=int, help="demos per predictor for --optimizer labeled (default: 16)")
    c.add_argument("--max-bootstrapped-demos", type=int, metavar="N", help="bootstrapped demos per predictor")
    c.add_argument("--max-labeled-demos", type=int, metavar="N", help="labeled demos per predictor")
    c.add_argument("--num-candidates", type=int, metavar="N",
                   help="candidate programs (random-search) or instruction and demo candidates (mipro)")
    c.add_argument("--num-trials", type=int, metavar="N", help="search trials for mipro")
    c.add_argument("--minibatch-size", type=int, metavar="N", help="valset rows per mipro trial")
    c.add_argument("--estimate-only", action="store_true", help="print the projected LM calls and stop")
    c.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on this machine sharing the --checkpoint study (mipro)")
    _common_options(c)
    c.set_defaults(run=cmd_compile)

    e = sub.add_parser("evaluate", help="score a program on a devset",
                       description="Score a program on a devset and print the score.",
                       epilog=DATA_FORMAT, formatter_class=fmt)
    e.add_argument("program", help="module:name of the program (a Module, or a factory of one)")
    e.add_argument("--devset", required=True, metavar="FILE.jsonl", help="rows to score, JSONL")
    e.add_argument("--metric", required=True, metavar="SPEC",
                   help="module:function(example, prediction, trace=None), exact_match:FIELD or f1:FIELD")
    e.add_argument("--load", metavar="FILE.json", help="a compiled JSON file to load into the program first")
    _common_options(e)
    e.set_defaults(run=cmd_evaluate)

    i = sub.add_parser("inspect", help="show the messages a compiled program sends, without running a model")
    i.add_argument("file")
    i.add_argument("--program", help="module:name of the program, to render with its own code")
    i.add_argument("--no-report", action="store_true")
    i.set_defaults(run=cmd_inspect)

    m = sub.add_parser("migrate", help="print a LangChain prompt as a signature class (Python source)")
    m.add_argument("prompt", help="module:NAME of a PromptTemplate / ChatPromptTemplate, or a text file")
    m.add_argument("--output-fields", help='outputs, as the right side of a signature ("answer: int")')
    m.add_argument("--name", help="the class name (default: from the prompt's name)")
    m.add_argument("--demos", help="write the prompt's few-shot examples here, as JSON Lines")
    m.add_argument("--template-format", default="f-string", choices=["f-string", "jinja2", "mustache"],
                   help="the format of a text-file prompt")
    m.set_defaults(run=cmd_migrate)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --workers starts the same command again
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(printable(f"lmbridge: error: {exc}"), file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"lmbridge: {exc}", file=sys.stderr)
        return 1
    except (BridgeError, ValueError, TypeError) as exc:
        print(printable(f"lmbridge: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
