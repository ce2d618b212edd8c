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

This module holds the parser, ``main``, evaluate and migrate; ``cli_compile`` runs compile,
``cli_inspect`` shows saved programs, and ``cli_load`` loads what the arguments name.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmbridge._version import __version__
from lmbridge.cli._compile import OPTIMIZERS, cmd_compile
from lmbridge.cli._inspect import cmd_inspect, printable
from lmbridge.cli._load import (
    RunFailed,
    UsageError,
    import_named,
    input_fields_of,
    lm_context,
    load_metric,
    load_program,
    load_rows,
    make_lm,
)
from lmbridge.errors import BridgeError
from lmbridge.evaluate import Evaluate
from lmbridge.settings import context, current
from lmbridge.tracing import Callback, Run
from lmbridge.types import Usage

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


# -- evaluate ----------------------------------------------------------------------------------------

class FailedRequests(Callback):
    """Counts the LM calls that ended in an error. The run's usage counts completed calls and every
    retry, but not the last request of a call that failed: without this, a run against a server
    that always fails would show no LM calls at all."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def on_lm_error(self, run: Run, error: BaseException) -> None:
        with self._lock:
            self.calls += 1


def lm_calls_line(usage: Usage, failed: FailedRequests) -> str:
    """What the run asked of the model: every request sent is counted, failed ones too."""
    sent = usage.calls + usage.retries + failed.calls
    return (f"LM calls   {usage.calls} completed, {failed.calls} failed ({sent} requests sent; "
            f"cache hits {usage.cache_hits})")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a program on a devset. The outcome is checked before anything is printed: a run in
    which every example failed has no score, and none is shown."""

    program = load_program(args.program)
    if args.load:
        program.load(args.load)
    metric = load_metric(args.metric)
    rows = load_rows(args.devset, input_fields_of(program, args.input_fields))
    failed = FailedRequests()
    with lm_context(make_lm(args, program)), context(callbacks=[*current().callbacks, failed]):
        result = Evaluate(devset=rows, metric=metric, num_threads=args.num_threads,
                          display_progress=not args.quiet)(program)
    first = next((r.error for r in result.results if r.error is not None), None)
    if result.errors and result.errors == len(result.results):
        print(lm_calls_line(result.usage, failed), file=sys.stderr)
        raise RunFailed(f"every one of the {result.errors} examples failed, so there is no score; first: {first}")
    print(f"score      {result.score:.1f}%  ({len(result.results)} examples, {result.errors} failed)")
    print(lm_calls_line(result.usage, failed))
    print(f"wall time  {result.elapsed:.1f} s")
    if first is not None:
        print(f"note: {result.errors} examples failed and scored 0; first: {first}", file=sys.stderr)
    return 0


# -- migrate -----------------------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> int:
    """Print a LangChain prompt (``module:NAME`` or a text file) migrated to a signature class."""
    # The CLI is the top layer: it may use an integration. Imported here, as the one subcommand that needs it.
    from lmbridge.adapters.langchain import print_migration

    named = ":" in args.prompt and not Path(args.prompt).exists()
    template = import_named(args.prompt, "the prompt") if named else None
    status: int = print_migration(args.prompt, template, output_fields=args.output_fields, name=args.name,
                                  demos=args.demos, template_format=args.template_format)
    return status


# -- the parser --------------------------------------------------------------------------------------

def _version() -> str:
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


FORMATTER = argparse.RawDescriptionHelpFormatter


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lmbridge", description="Compile, evaluate and inspect lmbridge programs.",
                                   epilog=DATA_FORMAT, formatter_class=FORMATTER)
    root.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _compile_parser(sub)
    _evaluate_parser(sub)
    _inspect_parser(sub)
    _migrate_parser(sub)
    return root


def _compile_parser(sub: Any) -> None:
    optimizers = "\n".join(f"  {name:<16}{text}" for name, text in OPTIMIZERS.items())
    c = sub.add_parser("compile", help="optimize a program on a trainset and save it as JSON",
                       description="Optimize a program on a trainset and save it as JSON.",
                       epilog=f"optimizers (--optimizer):\n{optimizers}\n  KNNFewShot and Ensemble are "
                              "used from Python only (see docs/optimizers/cli.md).\n\n" + DATA_FORMAT,
                       formatter_class=FORMATTER)
    c.add_argument("program", help="module:name of the program (a Module, or a factory of one)")
    c.add_argument("--trainset", required=True, metavar="FILE.jsonl", help="training rows, JSONL")
    c.add_argument("--valset", metavar="FILE.jsonl",
                   help="validation rows, JSONL (default: a split of the trainset, where the optimizer needs one)")
    c.add_argument("--metric", required=True, metavar="SPEC",
                   help="module:function(example, prediction, trace=None), exact_match:FIELD or f1:FIELD")
    c.add_argument("--optimizer", choices=list(OPTIMIZERS), default="mipro", help="the optimizer (default: mipro)")
    c.add_argument("--auto", choices=["light", "medium", "heavy", "none"], default="light",
                   help="run size for mipro and gepa (default: light); none: set --num-candidates, --num-trials")
    c.add_argument("--out", metavar="FILE.json",
                   help="where to save the compiled program (required, except with --export)")
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
    _weights_options(c)
    _common_options(c)
    c.set_defaults(run=cmd_compile)


def _weights_options(c: argparse.ArgumentParser) -> None:
    w = c.add_argument_group("fine-tuning (--optimizer finetune, better-together)")
    w.add_argument("--trainer", choices=["local", "provider"],
                   help="local: LoRA on the embedded model, on CPU (lmbridge[finetune]); provider: the provider's "
                        "fine-tuning API (default: local for a local/... model, else provider)")
    w.add_argument("--steps", type=int, metavar="N", help="training steps of the local trainer")
    w.add_argument("--rank", type=int, metavar="N", help="LoRA rank of the local trainer")
    w.add_argument("--max-examples", type=int, metavar="N",
                   help="passing runs of the program to train on (default: 500)")
    w.add_argument("--export", metavar="PATH",
                   help="write the training set as chat JSONL (OpenAI fine-tuning format) and stop: a .jsonl path "
                        "gets one multitask file, a folder one file per predictor")
    w.add_argument("--trainer-api-base", metavar="URL",
                   help="base URL of the provider's OpenAI-compatible fine-tuning API (default: OpenAI's)")
    w.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the provider's API key (default: OPENAI_API_KEY)")
    w.add_argument("--strategy", default="p -> w -> p",
                   help="better-together stages: p (prompt optimization) and w (fine-tuning) joined by -> "
                        "(default: 'p -> w -> p')")
    w.add_argument("--prompt-optimizer", default="bootstrap", choices=["labeled", "bootstrap", "random-search",
                                                                      "mipro", "copro", "simba", "gepa"],
                   help="better-together's prompt optimizer (default: bootstrap)")


def _evaluate_parser(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="score a program on a devset",
                       description="Score a program on a devset and print the score.",
                       epilog=DATA_FORMAT, formatter_class=FORMATTER)
    e.add_argument("program", help="module:name of the program (a Module, or a factory of one)")
    e.add_argument("--devset", required=True, metavar="FILE.jsonl", help="rows to score, JSONL")
    e.add_argument("--metric", required=True, metavar="SPEC",
                   help="module:function(example, prediction, trace=None), exact_match:FIELD or f1:FIELD")
    e.add_argument("--load", metavar="FILE.json", help="a compiled JSON file to load into the program first")
    _common_options(e)
    e.set_defaults(run=cmd_evaluate)


def _inspect_parser(sub: Any) -> None:
    i = sub.add_parser("inspect", help="show the messages a compiled program sends, without running a model")
    i.add_argument("file")
    i.add_argument("--program", help="module:name of the program, to render with its own code")
    i.add_argument("--no-report", action="store_true")
    i.set_defaults(run=cmd_inspect)


def _migrate_parser(sub: Any) -> None:
    m = sub.add_parser("migrate", help="print a LangChain prompt as a signature class (Python source)")
    m.add_argument("prompt", help="module:NAME of a PromptTemplate / ChatPromptTemplate, or a text file")
    m.add_argument("--output-fields", help='outputs, as the right side of a signature ("answer: int")')
    m.add_argument("--name", help="the class name (default: from the prompt's name)")
    m.add_argument("--demos", help="write the prompt's few-shot examples here, as JSON Lines")
    m.add_argument("--template-format", default="f-string", choices=["f-string", "jinja2", "mustache"],
                   help="the format of a text-file prompt")
    m.set_defaults(run=cmd_migrate)


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


