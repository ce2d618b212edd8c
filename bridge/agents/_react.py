"""ReAct: an agent loop of thought, tool call and observation, made of two ordinary predictors.

``react`` (a Predict) writes each step: a thought, the next tool's name and its arguments as a JSON
object. The tool runs and its result (or its error) joins the trajectory as an observation. The loop
ends when the model picks ``finish``, after ``max_iters`` steps, when a tool made with
``return_direct=True`` succeeds (its result is then the answer), or when even an empty trajectory
no longer fits the context window. ``extract`` (a ChainOfThought) then reads the trajectory and
fills the signature's output fields. Both are plain predictors, so any optimizer can compile them.

The trajectory shown to the model is trimmed from the oldest step when the model reports a context
overflow (``ContextWindowError``) or when it passes ``max_trajectory_chars``; the Prediction always
holds the whole trajectory, with ``finish_reason`` saying how the loop ended.

Steps are written in one of two ways. The text protocol above works with every model. When the LM
calls tools natively (``function_calling``: ``"auto"`` asks ``lm.supports_function_calling()``), a
step is instead a request that offers the tools' JSON schemas and ``finish`` (see
``lmbridge.react_native``), and the model's tool calls are the step. The trajectory, the loop and
``extract`` are the same in both modes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lmbridge.agents._loop import Ask, Call, Flow, Use, adrive, drive
from lmbridge.agents._react_native import FINISH, NO_CALL_NOTE, native_messages, reask_messages, tool_specs
from lmbridge.agents._tools import Tool, ensure_tool, render_result
from lmbridge.errors import ContextWindowError, InputError, ParseError, SignatureError, ToolError, TruncatedError
from lmbridge.lm import BaseLM, Completion
from lmbridge.programs import ChainOfThought, Module, Predict
from lmbridge.signatures import (
    Field,
    InputField,
    Signature,
    SignatureLike,
    coerce,
    ensure_signature,
    find_json,
    make_signature,
)
from lmbridge.tracing import record_step, record_usage
from lmbridge.types import Message, Prediction, Usage

FinishReason = Literal["finish", "max_iters", "context_overflow", "return_direct"]
FunctionCalling = Literal["auto"] | bool


@dataclass
class _Run:
    """One run of the loop: the inputs, every step so far, and how many old steps are hidden."""

    inputs: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    reason: FinishReason = "max_iters"

    def drop_oldest(self) -> bool:
        if self.start >= len(self.steps):
            return False
        self.start += 1
        return True


@dataclass(frozen=True)
class _Decision:
    thought: str
    tool: str
    args: Any
    error: str | None = None
    note: str = "done"
    """The observation recorded when this decision is a finish."""


class ReAct(Module):
    """``ReAct(signature, tools=[...], max_iters=10)``: answer ``signature`` by calling tools.

    ``tools`` are ``lmbridge.Tool`` objects, plain (sync or async) callables, or tools of a framework
    with a converter (LangChain tools, see ``lmbridge.tools.register_tool_converter``). ``predict_options``
    (``lm=``, ``format=``, sampling parameters) go to both predictors. ``function_calling`` picks
    how steps are written: ``"auto"`` (native tool calls when the LM supports them, else the text
    protocol), ``True`` (always native) or ``False`` (always text).
    """

    def __init__(self, signature: SignatureLike, tools: Sequence[Tool | Callable[..., Any] | Any],
                 max_iters: int = 10, *, max_trajectory_chars: int | None = None,
                 function_calling: FunctionCalling = "auto", **predict_options: Any) -> None:
        self.signature: type[Signature] = ensure_signature(signature)
        if "trajectory" in self.signature.fields():
            raise SignatureError("ReAct adds a 'trajectory' input field: rename the signature's own field")
        wrapped = [ensure_tool(t) for t in tools]
        self.tools: dict[str, Tool] = {t.name: t for t in wrapped}
        if FINISH in self.tools or len(self.tools) != len(wrapped):
            raise ValueError(f"tool names must be unique and not {FINISH!r}: {[t.name for t in wrapped]}")
        if max_iters < 1:
            raise ValueError("max_iters must be at least 1")
        if not (isinstance(function_calling, bool) or function_calling == "auto"):
            raise ValueError(f"function_calling must be 'auto', True or False, not {function_calling!r}")
        self.function_calling: FunctionCalling = function_calling
        self.max_iters = max_iters
        self.max_trajectory_chars = max_trajectory_chars
        self.react = Predict(self._step_signature(), **predict_options)
        trajectory = InputField(desc="the tool calls made so far and their results")
        self.extract = ChainOfThought(self.signature.append("trajectory", trajectory), **predict_options)

    def _step_signature(self) -> type[Signature]:
        names = [*self.tools, FINISH]
        lines = [f"({i}) {t.describe()}" for i, t in enumerate(self.tools.values(), 1)]
        lines.append(f"({len(lines) + 1}) {FINISH}: the answer is known, stop calling tools. Args: {{}}")
        outputs = ", ".join(f"`{n}`" for n in self.signature.output_fields)
        instructions = (
            f"{self.signature.instructions}\n\nYou work step by step to find {outputs}. In each step write a "
            "Thought, then choose a Tool and give its Args as a JSON object. The tool's result is added to "
            f"the trajectory. When you know enough, choose {FINISH}.\n\nTools:\n" + "\n".join(lines))
        fields = {
            **self.signature.input_fields,
            "trajectory": Field("trajectory", "input", str, "your steps so far, with each tool's result"),
            "next_thought": Field("next_thought", "output", str, "what to do next, and why", "Thought"),
            "next_tool_name": Field("next_tool_name", "output", Literal.__getitem__(tuple(names)),
                                    "the tool to call", "Tool"),
            "next_tool_args": Field("next_tool_args", "output", dict[str, Any],
                                    "the tool's arguments", "Args"),
        }
        return make_signature(fields, instructions, name="ReActStep")

    # -- pure pieces, shared by the sync and async loops ----------------------------------------
    def _check(self, inputs: dict[str, Any]) -> None:
        expected = set(self.signature.input_fields)
        if set(inputs) != expected:
            raise InputError(f"ReAct({self.signature.spec()}): expected inputs {sorted(expected)}, "
                             f"got {sorted(inputs)}")

    def _with_trajectory(self, run: _Run) -> dict[str, Any]:
        shown = run.steps[run.start:]
        text = render_trajectory(shown, skipped=run.start)
        budget = self.max_trajectory_chars
        while budget is not None and len(text) > budget and len(shown) > 1:
            shown = shown[1:]
            text = render_trajectory(shown, skipped=len(run.steps) - len(shown))
        return {**run.inputs, "trajectory": text}

    def _decide(self, pred: Prediction) -> list[_Decision]:
        return [_Decision(str(pred.next_thought), str(pred.next_tool_name), pred.next_tool_args)]

    def _named(self, text: str, thought: str) -> _Decision | None:
        """The step a ``Tool:`` line names, with the JSON object in ``text`` as its arguments."""
        named = _field_line(text, r"(?:next[ _])?tool(?:[ _]name)?")
        return None if named is None else self._decision_for(thought, named, _read_args(text))

    def _decision_for(self, thought: str, tool: str, args: Any) -> _Decision:
        tool = tool.strip("`'\" .,;")
        known = {n.lower(): n for n in [*self.tools, FINISH]}
        return _Decision(thought, known.get(tool.lower(), tool), args)

    def _salvage(self, error: ParseError) -> list[_Decision]:
        """Read what can be read from a step that did not parse (small models often garble one field):
        a ``Tool:`` line, else the tool named first; a JSON object, else an ``Args:`` line."""
        text = error.completion or ""
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        thought = _field_line(text, r"(?:next[ _])?thought") or first_line
        named = self._named(text, thought)
        if named is not None:
            return [named]
        mentions = [(m.start(), n) for n in [*self.tools, FINISH]
                    for m in [re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text, re.I)] if m]
        if not mentions:
            return [_Decision(thought, "", {}, f"the step could not be read ({error.message}). "
                              "Write a Thought, a Tool and its Args.")]
        return [self._decision_for(thought, min(mentions)[1], _read_args(text))]

    # -- native steps: pure pieces -----------------------------------------------------------------
    def _native(self) -> bool:
        if self.function_calling == "auto":
            return self.react._resolve()[0].supports_function_calling()
        return bool(self.function_calling)

    def _native_request(self, run: _Run) -> tuple[BaseLM, dict[str, Any], dict[str, Any], list[Message]]:
        lm = self.react._resolve()[0]
        params = {**self.react.lm_params, "tools": tool_specs(self.tools), "tool_choice": "auto"}
        shown = self._with_trajectory(run)
        return lm, params, shown, native_messages(self.react, shown)

    def _native_decisions(self, shown: dict[str, Any], completion: Completion) -> list[_Decision]:
        """The step(s) of a native reply: its tool calls; else a ``Tool:`` line in its text; else a
        finish (the model answered instead of calling a tool, even when asked again)."""
        thought = completion.text.strip()
        if not completion.tool_calls:
            named = self._named(thought, _field_line(thought, r"(?:next[ _])?thought") or "")
            return [named or _Decision(thought, FINISH, {}, note=NO_CALL_NOTE)]
        decisions = []
        for i, call in enumerate(completion.tool_calls):
            text = thought if i == 0 else ""
            if call.error is not None and call.name != FINISH:
                decisions.append(_Decision(text, call.name, call.raw, f"tool {call.name!r}: {call.error}"))
            else:
                decisions.append(_Decision(text, call.name, call.args if call.error is None else {}))
        first = decisions[0]
        if first.error is None and (first.tool in self.tools or first.tool == FINISH):
            values = {"next_thought": first.thought, "next_tool_name": first.tool, "next_tool_args": first.args}
            record_step(self.react, shown, Prediction.from_values(values, completion.usage, completion.text))
        return decisions

    def _needs_reask(self, completion: Completion) -> bool:
        if completion.tool_calls or self._named(completion.text, "") is not None:
            return False
        record_usage(Usage(parse_retries=1))
        return True

    def _record(self, run: _Run, decision: _Decision, observation: str, failed: bool) -> None:
        run.steps.append({"thought": decision.thought, "tool_name": decision.tool, "tool_args": decision.args,
                          "observation": observation, "error": failed})

    def _tool_for(self, decision: _Decision) -> Tool | str:
        if decision.error is not None:
            return f"Error: {decision.error}"
        tool = self.tools.get(decision.tool)
        if tool is None:
            known = ", ".join([*self.tools, FINISH])
            return f"Error: there is no tool {decision.tool!r}; the tools are: {known}."
        return tool

    def _settle(self, run: _Run, decision: _Decision) -> Tool | None:
        """Record a step that runs no tool (a finish, an error) and return None; else the tool to run."""
        if decision.tool == FINISH and decision.error is None:
            self._record(run, decision, decision.note, False)
            run.reason = "finish"
            return None
        tool = self._tool_for(decision)
        if isinstance(tool, str):
            self._record(run, decision, tool, True)
            return None
        return tool

    def _room(self, run: _Run, decisions: list[_Decision]) -> list[_Decision]:
        return decisions[:self.max_iters - len(run.steps)]

    def _over(self, run: _Run) -> bool:
        return run.reason != "max_iters" or len(run.steps) >= self.max_iters

    def _direct(self, run: _Run, tool: Tool) -> None:
        if tool.return_direct:
            run.reason = "return_direct"

    def _direct_result(self, run: _Run) -> Prediction | None:
        """The Prediction of a loop a ``return_direct`` tool ended: the tool's result is the one output
        field (read as its type); with several output fields, None (``extract`` reads the trajectory)."""
        if run.reason != "return_direct" or len(self.signature.output_fields) != 1:
            return None
        name, field = next(iter(self.signature.output_fields.items()))
        value = coerce(run.steps[-1]["observation"], field.annotation, name)
        return Prediction({name: value}, trajectory=run.steps, finish_reason=run.reason)

    def _result(self, run: _Run, extracted: Prediction) -> Prediction:
        values = {k: v for k, v in extracted.items() if k != "trajectory"}
        return Prediction(values, trajectory=run.steps, finish_reason=run.reason)

    # -- the loop, written once: a generator that yields the I/O it needs (``Call`` a module,
    # ``Ask`` an LM, ``Use`` a tool) and receives each answer, or its error thrown in at the
    # yield; ``forward`` drives it sync and ``aforward`` async (``lmbridge.agents._loop``).
    def forward(self, **inputs: Any) -> Prediction:
        return drive(self._loop(inputs))

    async def aforward(self, **inputs: Any) -> Prediction:
        return await adrive(self._loop(inputs))

    def _loop(self, inputs: dict[str, Any]) -> Flow[Prediction]:
        self._check(inputs)
        run = _Run(dict(inputs))
        native = self._native()
        for _ in range(self.max_iters):
            decisions = yield from (self._native_next(run) if native else self._next(run))
            if decisions is None:
                run.reason = "context_overflow"
                break
            for decision in self._room(run, decisions):
                tool = self._settle(run, decision)
                if tool is not None:
                    try:
                        self._record(run, decision, render_result((yield Use(tool, decision.args))), False)
                        self._direct(run, tool)
                    except ToolError as error:
                        self._record(run, decision, f"Error: {error}", True)
                if run.reason != "max_iters":
                    break
            if self._over(run):
                break
        direct = self._direct_result(run)
        if direct is not None:
            return direct
        while True:
            try:
                return self._result(run, (yield Call(self.extract, self._with_trajectory(run))))
            except ContextWindowError:
                if not run.drop_oldest():
                    raise

    def _next(self, run: _Run) -> Flow[list[_Decision] | None]:
        while True:
            try:
                return self._decide((yield Call(self.react, self._with_trajectory(run))))
            except ContextWindowError:
                if not run.drop_oldest():
                    return None
            except ParseError as error:
                return self._salvage(error)

    def _native_next(self, run: _Run) -> Flow[list[_Decision] | None]:
        while True:
            lm, params, shown, messages = self._native_request(run)
            try:
                completion: Completion = _whole(lm, params, (yield Ask(lm, messages, params)))
                if self._needs_reask(completion):
                    completion = _whole(lm, params, (yield Ask(lm, reask_messages(messages, completion.text), params)))
            except ContextWindowError:
                if not run.drop_oldest():
                    return None
                continue
            return self._native_decisions(shown, completion)


def _whole(lm: BaseLM, params: dict[str, Any], completion: Completion) -> Completion:
    """``completion``, unless it stopped at its token limit: a cut-off step is never read (nor its tool
    calls), as a Predict never reads a cut-off answer."""
    if completion.truncated:
        limit = {**lm.params, **params}.get("max_tokens")
        raise TruncatedError(lm.model, limit if isinstance(limit, int) else None, completion.text)
    return completion


def render_trajectory(steps: Sequence[dict[str, Any]], skipped: int = 0) -> str:
    """The trajectory as the model reads it, in the same labels it writes a step with (a step without
    a thought, as native tool calls often are, has no ``Thought:`` line)."""
    blocks = [f"({skipped} earlier steps left out)"] if skipped else []
    for s in steps:
        args = json.dumps(s["tool_args"], ensure_ascii=False, default=str)
        thought = f"Thought: {s['thought']}\n" if s["thought"] else ""
        blocks.append(f"{thought}Tool: {s['tool_name']}\nArgs: {args}\nObservation: {s['observation']}")
    return "\n" + "\n\n".join(blocks) if blocks else "(no steps yet)"


def _field_line(text: str, label: str) -> str | None:
    match = re.search(rf"^[ \t*#]*{label}[ \t*]*:[ \t*]*(.*)$", text, re.I | re.M)
    return match.group(1).strip() if match and match.group(1).strip() else None


def _read_args(text: str) -> Any:
    """The arguments of a garbled step: its JSON object (``json_text.find_json``), else the bare text of
    an ``Args:`` line, else none."""
    try:
        args = find_json(text, dict)
    except ValueError:
        args = None
    if isinstance(args, dict):
        return args
    bare = _field_line(text, r"(?:next[ _])?(?:tool[ _])?args")
    return bare if bare is not None else {}


__all__ = ["FINISH", "FinishReason", "FunctionCalling", "ReAct", "render_trajectory"]
