"""Training data for compiling to weights: a predictor's passing calls as chat examples in its own
prompt format, and the chat JSONL that OpenAI-compatible fine-tuning APIs take.

There is one rendering path. The prompt side of an example is ``predictor.messages(**inputs)``: what
the predictor sends at run time, and what the LangChain and LlamaIndex exports read. The assistant
turn is the format's ``render_outputs`` for the values the model gave, the completion that the
format's parser reads back into those values. So a model trained on these examples sees at run
time exactly the prompts it was trained on.

A line of the JSONL is ``{"messages": [{"role": ..., "content": ...}, ...]}``, the format of
OpenAI's chat fine-tuning files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lmbridge.errors import ConfigurationError
from lmbridge.finetune._protocol import TrainingExample
from lmbridge.formats import PromptFormat
from lmbridge.programs import DEFAULT_FORMAT, Predict
from lmbridge.settings import current
from lmbridge.types import Message


def resolved_format(predictor: Predict) -> PromptFormat:
    """The format ``predictor`` renders with now: its own, else the settings', else the default."""
    return predictor.format or current().format or DEFAULT_FORMAT


def check_chat(name: str, predictor: Predict) -> None:
    """Refuse a predictor whose format sends a raw text prompt (``TextFormat``, the completion endpoint):
    its prompt is not a chat, so a model trained on chat examples would not see it as trained."""
    fmt = resolved_format(predictor)
    if fmt.endpoint_params(predictor.signature).get("endpoint") == "completion":
        raise ConfigurationError(
            f"predictor {name!r} uses {type(fmt).__name__}, which sends one raw text prompt to the completion "
            "endpoint, not a chat; fine-tuning trains on chat examples. Give the fine-tuned predictors a chat "
            "format: BootstrapFinetune(..., format=lmbridge.ChatFormat())")


def training_example(predictor: Predict, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> TrainingExample:
    """The messages ``predictor`` sends for ``inputs``, then the assistant turn stating ``outputs``."""
    messages = predictor.messages(**dict(inputs))
    answer = resolved_format(predictor).render_outputs(predictor.signature, outputs)
    return [*messages, {"role": "assistant", "content": answer}]


def jsonl_line(example: TrainingExample) -> str:
    """One example as a line of chat fine-tuning JSONL (no trailing newline)."""
    turns = [{"role": m["role"], "content": m["content"]} for m in example]
    return json.dumps({"messages": turns}, ensure_ascii=False)


def jsonl_text(examples: Iterable[TrainingExample]) -> str:
    return "".join(jsonl_line(e) + "\n" for e in examples)


def read_jsonl(path: str | Path) -> list[list[Message]]:
    """The examples of a chat JSONL file written by ``write_jsonl``."""
    out: list[list[Message]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(list(json.loads(line)["messages"]))
    return out


def write_jsonl(path: str | Path, examples: Sequence[TrainingExample]) -> Path:
    """Write ``examples`` to ``path`` as chat JSONL, atomically: a failed write (a full disk) leaves no
    half-written file and raises an ``OSError`` that names the file and what to do."""
    target = Path(path)
    text = jsonl_text(examples)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write the training set to {target} ({exc.strerror or exc}): free some "
                                 "disk space or choose another path") from exc
    return target


def export_examples(path: str | Path, examples: Mapping[str, Sequence[TrainingExample]]) -> list[Path]:
    """Write the examples of each predictor (by name). A ``path`` ending in ``.jsonl`` gets one multitask
    file holding every predictor's examples; any other path is a folder that gets ``<predictor>.jsonl``
    per predictor. Returns the files written."""
    target = Path(path)
    if target.suffix == ".jsonl":
        return [write_jsonl(target, [e for rows in examples.values() for e in rows])]
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file: give a folder (one .jsonl per predictor) or a .jsonl path "
                         "(one multitask file)")
    return [write_jsonl(target / f"{_file_name(name)}.jsonl", rows) for name, rows in examples.items()]


def _file_name(predictor: str) -> str:
    return re.sub(r"[^\w.-]+", "_", predictor) or "predictor"
