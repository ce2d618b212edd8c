"""Grounded instruction proposals: new instructions for each predictor, written by a prompt model
that sees what the task is about.

For each predictor the proposer gives the prompt model (``prompt_model``, by default the task LM):

* a summary of the training data, written by the prompt model from a sample of examples
  (``data_aware``);
* a description of the program: its steps, their fields and the step being rewritten
  (``program_aware``; built from the signatures, with no LM call);
* a few demonstrations from one of the bootstrapped demo sets (``fewshot_aware``);
* a writing tip drawn with the seed, such as "be concise" or "name the answer options"
  (``tip_aware``);
* the current instruction.

Small prompt models write poor instructions, so the candidate list always starts with the
original instruction and, with ``templates=True``, also holds instructions built from the signature
alone (the task, the fields, and for a fixed label set the labels in both orders): tiny models are
sensitive to exactly such wording.
"""

from __future__ import annotations

import random
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from lmbridge.errors import LMError, ParseError
from lmbridge.lm import BaseLM
from lmbridge.optimizers._support.checkpoint import Checkpoint
from lmbridge.optimizers._support.state import PredictorState
from lmbridge.programs import Predict
from lmbridge.signatures import InputField, OutputField, Signature
from lmbridge.types import Example

TIPS = {
    "none": "",
    "concise": "Keep the instruction short and direct.",
    "detailed": "Say precisely what the input is and what a good answer looks like.",
    "options": "If the answer comes from a fixed set of options, name the options.",
    "persona": "Start by telling the model which expert role to take.",
    "careful": "Warn about the most likely mistake on this task.",
}


class SummarizeData(Signature):
    """Look at these examples of a task's data and describe, in two or three sentences, what the
    inputs are and what the expected outputs look like."""

    examples: str = InputField(desc="examples of the data")
    summary: str = OutputField(desc="a short description of the data and the task")


class ProposeInstruction(Signature):
    """Write a better instruction for one step of a language-model program. The instruction will
    be shown to a small language model before each input. Reply with the instruction only."""

    task_data: str = InputField(desc="what the training data looks like")
    program: str = InputField(desc="the steps of the program")
    examples: str = InputField(desc="examples of this step's inputs and outputs")
    current_instruction: str = InputField(desc="the instruction used now")
    tip: str = InputField(desc="advice for writing the instruction")
    instruction: str = OutputField(desc="the new instruction")


def describe_program(states: Mapping[str, PredictorState], focus: str) -> str:
    lines = []
    for name, s in states.items():
        sig = s.signature
        mark = "  <- the step to rewrite" if name == focus else ""
        lines.append(f"- {name}: {sig.spec()}{mark}")
    return "\n".join(lines)


def example_text(example: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    keys = list(keys) if keys is not None else list(example)
    return "\n".join(f"{k}: {str(example[k])[:300]}" for k in keys if k in example)


def _options(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


def signature_templates(sig: type[Signature]) -> list[str]:
    """Instructions written from the signature alone: plain task statements, label lists, and for an
    extractive answer the length of the span to copy."""
    ins = " and ".join(f.label.lower() for f in sig.input_fields.values())
    outs = " and ".join(f.label.lower() for f in sig.output_fields.values())
    out = [f"Read the {ins} and give the {outs}."]
    first = next(iter(sig.output_fields.values()))
    options = _options(first.annotation)
    if options:
        # The signature's own instruction with the label set named: the wording a person writes first
        # for a small model ("... as negative or positive."), and often the best of these.
        own = sig.instructions.strip().rstrip(".:;!? ")
        if own and not all(o.lower() in own.lower() for o in options):
            out.insert(0, f"{own} as {' or '.join(options)}.")
        out.append(f"Classify the {ins}. Answer with one word: {' or '.join(options)}.")
        out.append(f"Which {first.label.lower()} fits the {ins}: {', '.join(reversed(options))}?")
        out.append(f"You are an expert annotator. Label the {ins} as {' or '.join(sorted(options))}.")
    elif first.extract_from is not None:
        # An extractive answer: say how short the span should be, which small models do not guess.
        source = sig.input_fields[first.extract_from].label.lower()
        out.insert(0, f"Answer with the shortest phrase copied from the {source}: a name, number, date or "
                      "a few words, never a sentence.")
    else:
        out.append(f"You are an expert. Given the {ins}, answer with the {outs} only.")
        out.append(f"Answer with the {outs}. Be brief and exact.")
    return out


_LEAD_IN = re.compile(r"(?:here(?:'s| is)\b|[^\n]*\binstructions?\b)[^\n]*:", re.I)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def clean_instruction(text: str, *, prompt: str = "") -> str | None:
    """A proposal as a usable instruction, or None when it is empty or clearly broken. ``prompt`` is
    the proposer's own instruction: a base model that echoes it back has proposed nothing."""
    text = re.sub(r"^(?:new |proposed |improved )?instruction\s*:\s*", "", text.strip(), flags=re.I)
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    # A lead-in such as "Here is the new instruction:" announces the instruction in the next paragraph;
    # alone, it is no instruction.
    while len(paragraphs) > 1 and _LEAD_IN.fullmatch(paragraphs[0]):
        paragraphs.pop(0)
    text = paragraphs[0] if paragraphs else ""
    text = text.strip().strip('"').strip("'").strip()
    if _LEAD_IN.fullmatch(text) or len(text) < 12 or len(text) > 800 or not re.search(r"[A-Za-z]{3}", text):
        return None
    if prompt and _words(text)[:40] and _words(text)[:40] in _words(prompt):
        return None
    return text


class GroundedProposer:
    """Writes candidate instructions for each predictor of a program (see the module docstring)."""

    def __init__(self, prompt_model: BaseLM | None, *, view_data_batch_size: int = 10,
                 program_aware: bool = True, data_aware: bool = True, tip_aware: bool = True,
                 fewshot_aware: bool = True, templates: bool = True, init_temperature: float = 1.0,
                 seed: int = 0) -> None:
        self.prompt_model = prompt_model
        self.view_data_batch_size = view_data_batch_size
        self.program_aware = program_aware
        self.data_aware = data_aware
        self.tip_aware = tip_aware
        self.fewshot_aware = fewshot_aware
        self.templates = templates
        self.init_temperature = init_temperature
        self.seed = seed

    def _predict(self, signature: type[Signature], n: int) -> Predict:
        params: dict[str, Any] = {"temperature": self.init_temperature if n else 0.0, "max_tokens": 160}
        if n:
            params["rollout_id"] = f"proposal-{self.seed}-{n}"
        return Predict(signature, lm=self.prompt_model, **params)

    def summarize(self, trainset: Sequence[Example], store: Checkpoint) -> str:
        saved = store.get("proposer:summary")
        if isinstance(saved, str):
            return saved
        summary = ""
        if self.data_aware and trainset:
            rng = random.Random(self.seed)
            rows = rng.sample(list(trainset), min(self.view_data_batch_size, len(trainset)))
            text = "\n\n".join(example_text(r) for r in rows)
            try:
                summary = str(self._predict(SummarizeData, 0)(examples=text).summary).strip()[:600]
            except (LMError, ParseError):
                summary = ""
        store.put("proposer:summary", summary)
        return summary

    def propose(self, states: Mapping[str, PredictorState], trainset: Sequence[Example],
                demo_sets: Sequence[Mapping[str, PredictorState]], n: int, store: Checkpoint,
                on_step: Callable[[], None] | None = None) -> dict[str, list[str]]:
        """``n`` instructions per predictor (the original first), saved to ``store`` per predictor."""
        summary = self.summarize(trainset, store)
        out: dict[str, list[str]] = {}
        for name, state in states.items():
            saved = store.get(f"proposer:instructions:{name}")
            if isinstance(saved, list):
                out[name] = [str(s) for s in saved]
                continue
            out[name] = self._for_predictor(name, state, states, summary, demo_sets, n, on_step)
            store.put(f"proposer:instructions:{name}", out[name])
        return out

    def _for_predictor(self, name: str, state: PredictorState, states: Mapping[str, PredictorState],
                       summary: str, demo_sets: Sequence[Mapping[str, PredictorState]], n: int,
                       on_step: Callable[[], None] | None) -> list[str]:
        original = state.signature.instructions
        found = [original]
        templates = signature_templates(state.signature) if self.templates else []
        rng = random.Random(f"{self.seed}:{name}")
        attempt = 0
        while len(found) < n and attempt < 2 * n:
            attempt += 1
            if templates and attempt % 2 == 1:
                candidate: str | None = templates.pop(0)
            else:
                candidate = self._ask(name, state, states, summary, demo_sets, attempt, rng)
                if on_step is not None:
                    on_step()
            if candidate and candidate not in found:
                found.append(candidate)
        found.extend(t for t in templates if len(found) < n and t not in found)
        return found[:n]

    def _ask(self, name: str, state: PredictorState, states: Mapping[str, PredictorState], summary: str,
             demo_sets: Sequence[Mapping[str, PredictorState]], attempt: int,
             rng: random.Random) -> str | None:
        sig = state.signature
        shown = ""
        if self.fewshot_aware and demo_sets:
            demos = list(demo_sets[attempt % len(demo_sets)][name].demos)[:3]
            keys = list(sig.input_fields) + list(sig.output_fields)
            shown = "\n\n".join(example_text(d, keys) for d in demos)
        tip = TIPS[rng.choice(sorted(TIPS))] if self.tip_aware else ""
        program = describe_program(states, name) if self.program_aware else f"- {name}: {sig.spec()}"
        try:
            result = self._predict(ProposeInstruction, attempt)(
                task_data=summary or "(not shown)", program=program, examples=shown or "(none)",
                current_instruction=sig.instructions, tip=tip or "(none)")
        except (LMError, ParseError):
            return None
        return clean_instruction(str(result.instruction), prompt=ProposeInstruction.instructions)
