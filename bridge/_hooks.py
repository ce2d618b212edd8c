"""The tracing hook's interface: ``Callback`` and the values its methods receive (``Run``, ``LMEnd``,
``RunScore``), and ``CallbackSet``, what ``Settings.callbacks`` holds.

It sits on the ground floor, below ``settings``, so that the settings can check and hold callbacks
while ``lmbridge.tracing`` (which starts runs and reads the settings) sits above both. Users reach
these names through ``lmbridge`` and ``lmbridge.tracing``.

Events, by kind (each method receives the ``Run`` first):

    module, predictor   on_module_start(run, inputs)        on_module_end(run, prediction)
                        on_module_error(run, error)
    lm                  on_lm_start(run, messages, params)  on_lm_token(run, delta)
                        on_lm_end(run, LMEnd)               on_lm_error(run, error)
    tool                on_tool_start(run, args)            on_tool_end(run, result)
                        on_tool_error(run, error)
    retriever           on_retriever_start(run, query, k)   on_retriever_end(run, passages)
                        on_retriever_error(run, error)
    compile             on_compile_start(run, settings)     on_compile_end(run, RunScore)
                        on_compile_error(run, error)
    evaluate            on_evaluate_start(run, size)        on_evaluate_end(run, RunScore)
                        on_evaluate_error(run, error)
    trial               on_trial_start(run, size)           on_trial_end(run, RunScore)
                        on_trial_error(run, error)
    example             on_example_start(run, example)      on_example_end(run, RunScore)
                        on_example_error(run, error)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lmbridge.toolcalls import ToolCall
    from lmbridge.types import Example, Message, Passage, Prediction, Usage

RunKind = Literal["module", "predictor", "lm", "tool", "retriever", "compile", "evaluate", "trial", "example"]


@dataclass(slots=True)
class Run:
    """One traced call. Every event of the call carries the same ``Run``; treat it as read-only.
    (Not frozen: building a frozen dataclass costs several times more, on every traced call.)"""

    run_id: str
    """32 hex digits, unique per call (``uuid.UUID(run_id)`` reads it as a UUID)."""
    parent_run_id: str | None
    """The run this call happened inside, or None for a root."""
    kind: RunKind
    name: str
    """The module's class name, the LM's model, the tool's name, the retriever's name, ..."""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """What is known at the start: a predictor's signature, an example's index, ..."""
    start_time: float = 0.0
    """``time.time()`` when the run started."""


@dataclass(slots=True)
class LMEnd:
    """What an LM call produced: the ``on_lm_end`` payload."""

    messages: Sequence[Message]
    text: str
    """The completion text."""
    model: str
    usage: Usage
    """Tokens, cost, retries of this one call (a cache hit counts ``cache_hits=1`` and no tokens)."""
    cached: bool
    """Whether the answer came from the cache."""
    tool_calls: tuple[ToolCall, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    """The request parameters (temperature, max_tokens, tools, ...)."""
    streamed: bool = False
    """Whether the call was streamed (its deltas went to ``on_lm_token``)."""

    @property
    def cost(self) -> float | None:
        return self.usage.cost

    @property
    def retries(self) -> int:
        return self.usage.retries


@dataclass(slots=True)
class RunScore:
    """The end payload of an evaluation run, a trial or an example."""

    score: float | None
    """Percent (0-100) for a run or trial; the metric's score for an example; the best score for a
    compile; None if there is none."""
    errors: int = 0
    """Examples that failed (for an example: 1 when it failed)."""
    error: str | None = None
    """For an example: why it failed."""
    prediction: Prediction | None = None
    """For an example: what the program returned."""
    usage: Usage | None = None
    """For a compile or an Evaluate run: the LM usage of the whole run."""


class Callback:
    """Base class of the tracing hooks: every method is a no-op; override the ones you need.

    Methods are called on the thread (or asyncio task) that makes the call, so a callback used
    with Evaluate or an optimizer must be thread-safe.
    """

    raise_error: bool = False
    """Let exceptions raised by this callback's methods propagate (default: log and go on)."""

    # modules and predictors (kind "module" / "predictor")
    def on_module_start(self, run: Run, inputs: Mapping[str, Any]) -> None: ...
    def on_module_end(self, run: Run, prediction: Any) -> None: ...
    def on_module_error(self, run: Run, error: BaseException) -> None: ...

    # LM calls (kind "lm")
    def on_lm_start(self, run: Run, messages: Sequence[Message], params: Mapping[str, Any]) -> None: ...
    def on_lm_token(self, run: Run, delta: str) -> None:
        """One text delta of a streamed call (``BaseLM.stream``), in order."""

    def on_lm_end(self, run: Run, end: LMEnd) -> None: ...
    def on_lm_error(self, run: Run, error: BaseException) -> None: ...

    # tools (kind "tool")
    def on_tool_start(self, run: Run, args: Mapping[str, Any]) -> None: ...
    def on_tool_end(self, run: Run, result: Any) -> None: ...
    def on_tool_error(self, run: Run, error: BaseException) -> None: ...

    # retrievers (kind "retriever")
    def on_retriever_start(self, run: Run, query: str, k: int) -> None: ...
    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None: ...
    def on_retriever_error(self, run: Run, error: BaseException) -> None: ...

    # evaluation and compiles: an optimizer's compile, an Evaluate run, a trial, one example
    def on_compile_start(self, run: Run, settings: Mapping[str, Any]) -> None: ...
    def on_compile_end(self, run: Run, result: RunScore) -> None: ...
    def on_compile_error(self, run: Run, error: BaseException) -> None: ...
    def on_evaluate_start(self, run: Run, size: int) -> None: ...
    def on_evaluate_end(self, run: Run, result: RunScore) -> None: ...
    def on_evaluate_error(self, run: Run, error: BaseException) -> None: ...
    def on_trial_start(self, run: Run, size: int) -> None: ...
    def on_trial_end(self, run: Run, result: RunScore) -> None: ...
    def on_trial_error(self, run: Run, error: BaseException) -> None: ...
    def on_example_start(self, run: Run, example: Example) -> None: ...
    def on_example_end(self, run: Run, result: RunScore) -> None: ...
    def on_example_error(self, run: Run, error: BaseException) -> None: ...


GROUP: dict[str, str] = {"module": "module", "predictor": "module", "lm": "lm", "tool": "tool",
                         "retriever": "retriever", "compile": "compile", "evaluate": "evaluate", "trial": "trial",
                         "example": "example"}
"""The group of methods each kind of run reports to (a predictor reports as a module)."""
METHODS: dict[str, dict[str, str]] = {
    kind: {event: f"on_{group}_{event}" for event in ("start", "end", "error", "token")}
    for kind, group in GROUP.items()}


class CallbackSet(tuple[Callback, ...]):
    """The installed callbacks (what ``Settings.callbacks`` holds): a tuple that also knows, for
    each kind of run, which callbacks override one of its methods. A run is made only for those,
    so a callback that watches LM calls alone costs nothing on the other runs."""

    targets: dict[str, tuple[Callback, ...]]

    def __new__(cls, callbacks: Iterable[Callback] = ()) -> CallbackSet:
        self = super().__new__(cls, callbacks)
        self.targets = {group: tuple(c for c in self if overrides(type(c), group)) for group in set(GROUP.values())}
        return self


def overrides(cls: type[Callback], group: str) -> bool:
    """Whether ``cls`` overrides one of the methods of ``group``."""
    return any(getattr(cls, name) is not getattr(Callback, name) for name in METHODS[group].values()
               if hasattr(Callback, name))
