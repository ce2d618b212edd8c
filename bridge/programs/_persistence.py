"""Saving and loading programs as plain JSON state.

A file holds, per predictor, its instructions, its field descriptions and labels, its demos and its
prompt format, plus the compile report, a format version and the lmbridge version. It holds no code,
no pickle, no base URL and no key. Loading validates the whole file first and changes nothing when
it does not fit: a wrong format, a newer version, a missing or extra predictor, or fields that
differ all raise StateError.

A predictor whose own LM carries trained weights (``BaseLM.weights_state``: a LoRA adapter of an
embedded model, or a provider's fine-tuned model) also has a ``"weights"`` entry: the model name,
and for an adapter its path and sha256. That is the one case where a file names a model: the
trained weights belong to their base model and are part of what was compiled, so the program is
not itself without them. Loading rebuilds that LM, after checking that the adapter file exists and
still has its hash; a missing or changed file raises StateError naming it (it never falls back to
the base model). A file without weights entries loads as before, leaving each predictor's LM alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmbridge._version import __version__
from lmbridge.errors import BridgeError, StateError
from lmbridge.formats import format_from_state
from lmbridge.lm import LM, BaseLM, file_sha256
from lmbridge.signatures import to_jsonable, type_name
from lmbridge.types import Example

if TYPE_CHECKING:
    from lmbridge.programs._module import Module
    from lmbridge.programs._predict import Predict

FORMAT = "lmbridge.program"
FORMAT_VERSION = 1
MAX_DEPTH = 64
"""How deeply a program file may nest its values: deeper would load, then fail to run or to save."""
MAX_VALUES = 2_000_000
"""How many values (objects, lists, strings, numbers) a program file may hold in all."""


def library_version() -> str:
    return __version__


def predictor_state(p: Predict) -> dict[str, Any]:
    sig = p.signature
    state = {
        "instructions": sig.instructions,
        "fields": {n: {"kind": f.kind, "type": type_name(f.annotation), "desc": f.desc, "prefix": f.prefix}
                   for n, f in sig.fields().items()},
        "demos": [{k: to_jsonable(v) for k, v in d.items()} for d in p.demos],
        "format": p.format.to_state() if p.format is not None else None,
    }
    weights = p.lm.weights_state() if p.lm is not None else None
    if weights is not None:
        state["weights"] = weights
    return state


def _check_weights(name: str, weights: Any) -> None:
    """The shape of a ``"weights"`` entry: a model name, and for an adapter its path and sha256."""
    if not isinstance(weights, dict) or not isinstance(weights.get("model"), str) or not weights["model"]:
        raise StateError(f"predictor {name!r}: 'weights' must be an object with a 'model' name")
    if "adapter" in weights or "sha256" in weights:
        digest = weights.get("sha256")
        if not isinstance(weights.get("adapter"), str) or not isinstance(digest, str) or len(digest) != 64:
            raise StateError(f"predictor {name!r}: 'weights' of an adapter needs its 'adapter' path and 'sha256'")


def weights_lm(name: str, weights: dict[str, Any]) -> BaseLM:
    """Rebuild the LM a ``"weights"`` entry describes, checking the adapter file and its hash first."""
    model = weights["model"]
    try:
        if "adapter" not in weights:
            return LM(model, fine_tuned=True)
        path = Path(weights["adapter"])
        if not path.is_file():
            raise StateError(f"predictor {name!r} runs {model} with the LoRA adapter {path}, which is missing; "
                             "copy that file back to this path, or compile the program again to retrain it")
        if file_sha256(path) != weights["sha256"]:
            raise StateError(f"predictor {name!r}: the LoRA adapter {path} has changed since the program was "
                             "saved (its sha256 differs); restore the saved file, or compile the program again")
        return LM(model, adapter=path)
    except (BridgeError, OSError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"predictor {name!r}: cannot rebuild its fine-tuned LM {model}: {exc}") from exc


def sections(program: Module) -> dict[str, dict[str, Module]]:
    """The modules that save state of their own, by ``state_section`` and then by path (``"self"``
    for the program itself)."""
    found: dict[str, dict[str, Module]] = {}
    for name, module in [("self", program), *program.named_modules()]:
        if module.state_section is not None:
            found.setdefault(module.state_section, {})[name] = module
    return found


def program_state(program: Module) -> dict[str, Any]:
    state: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lmbridge_version": library_version(),
        "program": type(program).__name__,
        "predictors": {name: predictor_state(p) for name, p in program.named_predictors()},
        "report": program.report,
    }
    for section, modules in sections(program).items():
        state[section] = {name: m.own_state() for name, m in modules.items()}
    return state


def _check_entry(name: str, state: Any) -> None:
    """The shape of one predictor's saved state, checked without the program."""
    if not isinstance(state, dict):
        raise StateError(f"predictor {name!r}: state must be an object")
    for key, kind in (("instructions", str), ("fields", dict), ("demos", list)):
        if not isinstance(state.get(key), kind):
            raise StateError(f"predictor {name!r}: {key!r} is missing or is not a {kind.__name__}")
    for n, entry in state["fields"].items():
        if not isinstance(entry, dict) or entry.get("kind") not in ("input", "output"):
            raise StateError(f"predictor {name!r}: field {n!r} must be an object whose 'kind' is input or output")
        for key in ("type", "desc", "prefix"):
            if key in entry and not isinstance(entry[key], str):
                raise StateError(f"predictor {name!r}: field {n!r} has a {key!r} that is not a string")
    for i, demo in enumerate(state["demos"]):
        if not isinstance(demo, dict):
            raise StateError(f"predictor {name!r}: demo {i} is not an object")
    if "weights" in state:
        _check_weights(name, state["weights"])
    fmt = state.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise StateError(f"predictor {name!r}: 'format' must be an object or null, not {type(fmt).__name__}")
        try:
            format_from_state(fmt)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(f"predictor {name!r}: format {fmt.get('name')!r}: {exc}") from exc


def check_bounds(state: Any) -> None:
    """The one bound every loaded state passes, before anything reads it: at most ``MAX_DEPTH``
    levels and ``MAX_VALUES`` values, text that is valid Unicode (a lone surrogate would load and
    run, then fail to save), and integers a float can hold (a 400-digit number overflows). Walks
    without recursion, so a deep or self-containing state is refused, never a RecursionError."""
    stack: list[tuple[Any, int, str]] = [(state, 0, "the file")]
    seen = 0
    while stack:
        value, depth, where = stack.pop()
        seen += 1
        if depth > MAX_DEPTH or seen > MAX_VALUES:
            limit = f"nests deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else f"holds over {MAX_VALUES} values"
            raise StateError(f"program file {limit} (at {where}); it was not written by lmbridge")
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
            raise StateError(f"program file holds an integer too large for a number ({value.bit_length()} bits) "
                             f"at {where}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, where)
                stack.append((item, depth + 1, f"{where} / {str(key)[:40]!r}"))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, depth + 1, f"{where} / {i}") for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StateError(f"program file holds text that is not valid Unicode at {where}: {exc.reason} "
                         f"({text[exc.start:exc.end]!a})") from exc


def check_state(state: Any) -> dict[str, Any]:
    """Check that ``state`` is a whole program file this lmbridge can read, without a program: its
    bounds (``check_bounds``), the format marker, the version and the shape of every predictor.
    Returns its predictors; raises StateError naming the first problem."""
    check_bounds(state)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        dspy = isinstance(state, dict) and any(isinstance(v, dict) and "signature" in v and "demos" in v
                                               for v in state.values())
        hint = "; it was saved by DSPy: load it with lmbridge.dspy_state.from_dspy_state(program, path)" if dspy else ""
        raise StateError(f"not an lmbridge program file (expected \"format\": \"{FORMAT}\"){hint}")
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= FORMAT_VERSION:
        raise StateError(f"program file format version {version!r} is not supported by this lmbridge "
                         f"(it reads versions up to {FORMAT_VERSION}); a newer file needs a newer lmbridge")
    saved = state.get("predictors")
    if not isinstance(saved, dict):
        raise StateError("program file has no 'predictors' object")
    for name, entry in saved.items():
        _check_entry(name, entry)
    return saved


def _check_predictor(name: str, p: Predict, state: dict[str, Any]) -> None:
    fields = p.signature.fields()
    saved = state["fields"]
    if list(saved) != list(fields):
        raise StateError(f"predictor {name!r}: the file has fields {list(saved)}, the program has {list(fields)}")
    for n, f in fields.items():
        entry = saved[n]
        if entry.get("kind") != f.kind:
            raise StateError(f"predictor {name!r}: field {n!r} is an {f.kind} here but not in the file")
        if entry.get("type", type_name(f.annotation)) != type_name(f.annotation):
            raise StateError(f"predictor {name!r}: field {n!r} has type {type_name(f.annotation)} here, "
                             f"{entry.get('type')} in the file")


def apply_state(program: Module, state: Any) -> None:
    """Validate ``state`` against ``program`` completely, then apply it. Raises only StateError, and
    a state that does not fit changes nothing."""
    saved = check_state(state)
    mine = dict(program.named_predictors())
    if set(saved) != set(mine):
        missing, extra = sorted(set(mine) - set(saved)), sorted(set(saved) - set(mine))
        raise StateError(f"program file does not fit {type(program).__name__}: "
                         f"missing predictors {missing}, unexpected predictors {extra}")
    for name, p in mine.items():
        _check_predictor(name, p, saved[name])
    own = _checked_sections(program, state)
    planned = []
    for name, p in mine.items():  # build every new value first; assign only when all of them are built
        s = saved[name]
        try:
            sig = p.signature.with_instructions(s["instructions"])
            for n, entry in s["fields"].items():
                sig = sig.with_updated_field(n, desc=entry.get("desc", ""), prefix=entry.get("prefix", ""))
            demos = [Example(d) for d in s["demos"]]
            fmt = format_from_state(s["format"]) if s.get("format") is not None else p.format
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise StateError(f"predictor {name!r}: {exc}") from exc
        lm = weights_lm(name, s["weights"]) if "weights" in s else p.lm
        planned.append((p, sig, demos, fmt, lm))
    for p, sig, demos, fmt, lm in planned:
        p.signature, p.demos, p.format, p.lm = sig, demos, fmt, lm
    for apply in own:
        apply()
    report = state.get("report")
    program.report = report if isinstance(report, dict) else None


def _checked_sections(program: Module, state: dict[str, Any]) -> list[Callable[[], None]]:
    """What applies the state each module saved of its own, all checked first; a section the file
    lacks (a file from before it was saved) sets nothing."""
    appliers = []
    for section, mine in sections(program).items():
        saved = state.get(section)
        if saved is None:
            continue
        if not isinstance(saved, dict) or set(saved) != set(mine):
            names = sorted(saved) if isinstance(saved, dict) else saved
            kind = type(next(iter(mine.values()))).__name__
            raise StateError(f"program file does not fit {type(program).__name__}: it has {kind} modules {names}, "
                             f"the program has {sorted(mine)}")
        appliers += [mine[name].check_own_state(name, entry) for name, entry in saved.items()]
    return appliers


def save(program: Module, path: str | Path) -> None:
    path = Path(path)
    text = json.dumps(program_state(program), indent=2, ensure_ascii=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(f"program file {path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise StateError(f"cannot read program file {path}: {exc}") from exc
    try:
        state = json.loads(text)
    except RecursionError as exc:
        raise StateError(f"program file {path} nests its JSON too deeply to read") from exc
    except ValueError as exc:
        raise StateError(f"program file {path} is not valid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise StateError(f"program file {path} does not hold a JSON object")
    return state


def load(program: Module, path: str | Path) -> None:
    apply_state(program, read_state(path))
