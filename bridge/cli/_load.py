"""What the ``lmbridge`` command's arguments name, loaded: the program, the metric, the data rows and
the LM; and the two errors that end a command without a traceback (see ``cli.main``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmbridge import metrics
from lmbridge.datasets import load_examples
from lmbridge.lm import LM, BaseLM
from lmbridge.programs import Module
from lmbridge.settings import context, current
from lmbridge.types import Example

DEFAULT_LM = "local/smollm2"


class UsageError(Exception):
    """A command-line mistake: printed without a traceback."""


class RunFailed(Exception):
    """The run finished but produced nothing usable: printed without a traceback, exit status 1."""


def import_named(spec: str, what: str) -> Any:
    """The object ``module:name`` names (``name`` may be dotted), imported because the user named it.
    The current directory is importable. ``UsageError`` when it cannot be found."""
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
    value = import_named(spec, "the program")
    if not isinstance(value, Module) and callable(value):
        value = value()
    if not isinstance(value, Module):
        raise UsageError(f"{spec} is a {type(value).__name__}, not a bridge Module (or a factory of one)")
    return value


def load_metric(spec: str) -> Any:
    name, _, field = spec.partition(":")
    if name in ("exact_match", "f1") and field and "." not in field:
        return metrics.exact_match(field) if name == "exact_match" else metrics.f1(field)
    metric = import_named(spec, "the metric")
    if not callable(metric):
        raise UsageError(f"{spec} is not callable")
    return metric


def load_rows(path: str, input_fields: Sequence[str]) -> list[Example]:
    """The rows of a JSONL data file as Examples (``lmbridge.datasets.load_examples``); a file that
    cannot be read, a bad line or no rows at all is a ``UsageError`` naming the file and the line."""

    try:
        rows = load_examples(path, input_fields)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
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
        value = import_named(args.lm_factory, "--lm-factory")
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


def lm_context(lm: BaseLM | None) -> Any:
    """``lmbridge.context`` with the command's LM, or the ambient settings when it chose none."""
    return context(lm=lm) if lm is not None else context()
