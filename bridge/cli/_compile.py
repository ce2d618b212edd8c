"""``lmbridge compile``: the optimizer the command line names, run on the data rows, the program saved,
and the compile report printed as a table; ``--workers N`` runs N processes on one MIPROv2 study;
``--optimizer finetune --export PATH`` writes the fine-tuning set as chat JSONL instead of training."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lmbridge.finetune as finetune
import lmbridge.optimizers as opt
from lmbridge.cli._load import (
    UsageError,
    input_fields_of,
    lm_context,
    load_metric,
    load_program,
    load_rows,
    make_lm,
)

OPTIMIZERS = {
    "labeled": "LabeledFewShot: k labeled demos from the trainset, no LM calls",
    "bootstrap": "BootstrapFewShot: demos from the program's own correct runs on the trainset",
    "random-search": "BootstrapFewShotWithRandomSearch: several bootstrapped demo sets, the best on the valset",
    "mipro": "MIPROv2 (default; needs lmbridge[optuna]): instructions, demos and prompt format, searched with TPE",
    "copro": "COPRO: instructions proposed and refined by the LM",
    "simba": "SIMBA: rules and demos added from the program's hardest examples",
    "gepa": "GEPA: instructions evolved from reflection on failures",
    "finetune": "BootstrapFinetune: the LM fine-tuned on the program's passing runs (LoRA on CPU, or a provider)",
    "better-together": "BetterTogether: prompt optimization and fine-tuning in turn (--strategy 'p -> w -> p')",
}
"""The optimizers the command offers. KNNFewShot and Ensemble are Python-only: a KNN program looks
up demos in memory for each input, and an ensemble combines several programs built in code; neither
can be carried by one saved JSON file of plain state."""


def make_optimizer(args: argparse.Namespace, metric: Any) -> Any:
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
    if name == "finetune":
        return opt.BootstrapFinetune(metric, trainer=make_trainer(args), max_examples=args.max_examples or 500,
                                     **threads, **common)
    if name == "better-together":
        if args.prompt_optimizer in ("finetune", "better-together"):
            raise UsageError(f"--prompt-optimizer must optimize prompts, not {args.prompt_optimizer!r}")
        prompts = make_optimizer(argparse.Namespace(**{**vars(args), "optimizer": args.prompt_optimizer}), metric)
        weights = make_optimizer(argparse.Namespace(**{**vars(args), "optimizer": "finetune"}), metric)
        return opt.BetterTogether(prompts, weights, args.strategy, metric=metric, **common)
    raise UsageError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")


def make_trainer(args: argparse.Namespace) -> Any:
    """The weight trainer ``--trainer`` names, or None (the optimizer picks by the LM: local or provider)."""
    local_options = {k: v for k, v in (("steps", args.steps), ("rank", args.rank)) if v is not None}
    if args.trainer == "provider":
        if local_options:
            raise UsageError("--steps and --rank set the local trainer; the provider chooses its own "
                             "(pass --trainer local, or leave them out)")
        return finetune.ProviderFinetune(api_base=args.trainer_api_base, api_key_env=args.api_key_env)
    if args.trainer == "local" or local_options:
        local = getattr(finetune, "LocalLoRA", None)
        if local is None:
            raise UsageError("this lmbridge has no local trainer (lmbridge.finetune.LocalLoRA): use --trainer provider")
        return local(**local_options)
    return None


CHECKPOINTED = ("bootstrap", "random-search", "mipro", "finetune", "better-together")


def compile_kwargs(args: argparse.Namespace, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.checkpoint and name in CHECKPOINTED:
        out["checkpoint"] = args.checkpoint
    if name == "mipro" and args.num_trials:
        out["num_trials"] = args.num_trials
    if name == "mipro" and args.minibatch_size:
        out["minibatch_size"] = args.minibatch_size
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    if args.workers != 1:
        return compile_with_workers(args)
    if args.export and args.optimizer != "finetune":
        raise UsageError("--export writes the training set of --optimizer finetune")
    if not args.out and not args.export:
        raise UsageError("--out is required: where to save the compiled program")
    program = load_program(args.program)
    metric = load_metric(args.metric)
    fields = input_fields_of(program, args.input_fields)
    train = load_rows(args.trainset, fields)
    val = load_rows(args.valset, fields) if args.valset else None
    optimizer = make_optimizer(args, metric)
    with lm_context(make_lm(args, program)):
        options = compile_kwargs(args, args.optimizer)
        sizes = {k: v for k, v in options.items() if k in ("num_trials", "minibatch_size")}
        estimate = optimizer.estimate(program, trainset=train, valset=val, **sizes)
        print(f"estimate: {estimate}", file=sys.stderr)
        if args.estimate_only:
            print(json.dumps(estimate.to_dict()))
            return 0
        if args.export:
            files = optimizer.export(args.export, program, trainset=train, **options)
            print("\n".join(f"wrote {path}" for path in files))
            return 0
        if args.checkpoint and args.optimizer not in CHECKPOINTED:
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

    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.optimizer != "mipro" or not args.checkpoint:
        raise UsageError("--workers needs --optimizer mipro and a --checkpoint the workers share "
                         "(a postgresql:// URL, or an SQLite file on this machine)")
    root = str(Path(__file__).resolve().parents[2])
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


def _number(value: Any, template: str, missing: str = "-") -> str:
    """A report's number written with ``template``; anything else in its place shown as it is. A
    report is data: ``load()`` accepts whatever it holds, so showing it must never fail."""
    if value is None:
        return missing
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return template.format(float(value))
        except (OverflowError, ValueError):
            pass
    return repr(value)[:80]


def _trials(trials: Any) -> str:
    """The search trials (not the full-valset evaluations) of a report's trial list."""
    if trials is None:
        return "0"
    if not isinstance(trials, list):
        return repr(trials)[:80]
    fulls = sum(1 for t in trials if isinstance(t, dict) and t.get("kind") == "full_evaluation")
    return str(len(trials) - fulls) + (f" (+ {fulls} full evaluations)" if fulls else "")


def report_table(report: dict[str, Any], saved: str | None = None) -> str:
    """The compile report as a table. Its counts are the report's own: the search trials (what
    ``--num-trials`` sets), the full-valset evaluations, and the progress steps the bar showed. A
    value of an unexpected kind (a hand-edited file) is shown as it is, never an error."""
    rows = [
        ("optimizer", str(report.get("optimizer", "-"))),
        ("baseline score", _number(report.get("baseline_score"), "{:.1f}%")),
        ("best score", _number(report.get("best_score"), "{:.1f}%")),
        ("trials", _trials(report.get("trials"))),
    ]
    progress = report.get("progress")
    if isinstance(progress, dict):
        rows.append(("progress", f"{progress.get('done')} of {progress.get('planned')} {progress.get('unit')}"))
    rows += [
        ("LM calls", f"{report.get('lm_calls', 0)} (cache hits {report.get('cache_hits', 0)})"),
        ("tokens", str(report.get("tokens", 0))),
        ("cost", _number(report.get("cost"), "${:.4f}", missing="unknown")),
        ("failed examples", f"{report.get('failures', 0)} of {report.get('examples_run', 0)}"),
        ("wall time", _number(report.get("wall_time", 0.0), "{:.1f} s")),
        ("stopped early", str(report.get("stopped_early") or "no")),
    ]
    rows += _weights_rows(report)
    if saved:
        rows.append(("saved to", saved))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _weights_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The fine-tuning runs (BootstrapFinetune) and the stages (BetterTogether) of a report, if any."""
    rows = []
    tuned = report.get("finetune")
    for run in tuned.get("training", []) if isinstance(tuned, dict) else []:
        if isinstance(run, dict):
            steps = f", {run.get('steps')} steps" if run.get("steps") is not None else ""
            rows.append(("fine-tuned", f"{run.get('model')} from {run.get('base_model')} ({run.get('trainer')}; "
                                       f"{run.get('examples')} examples{steps})"))
    for stage in report.get("stages") or []:
        if isinstance(stage, dict):
            rows.append((f"stage {stage.get('stage')} ({stage.get('kind')})",
                         f"{stage.get('optimizer')}: score {_number(stage.get('score'), '{:.1f}%')}, "
                         f"{stage.get('lm_calls')} LM calls"))
    return rows
