"""Compile the chain you already have: ``from_chain``, ``ChainProgram`` and ``compile_chain``.

``from_chain(chain)`` wraps a user's LangChain Runnable as an lmbridge ``Module``: its
``named_predictors()`` are the prompt templates found inside (``_chain_walk``), each a
``ChainPrompt`` whose learnable state (instructions, demos) is written back in the template's own
shape (``_chain_prompt``). Calling the program runs the user's chain with the current prompts: a
copy of the chain's containers holding the compiled templates, built per state and cached, so the
user's object is never mutated and threads running different candidates never share a swap.

Each call records, from LangChain's callbacks, what every prompt rendered and what the model replied
to it, as the step of that prompt's predictor, so ``BootstrapFewShot`` (and every optimizer built on
it) makes per-prompt demos from end-to-end runs the metric accepts. The program returns the chain's
own output (a string, a dict, a message), which is what the user's metric receives.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable

from lmbridge import (
    BaseLM,
    BridgeError,
    ConfigurationError,
    Example,
    InputError,
    Module,
    ParseError,
    Predict,
    Prediction,
    Usage,
)
from lmbridge.adapters._flow import Call, Flow, arun, run
from lmbridge.adapters._retriever_k import RetrieverK
from lmbridge.adapters._templates import plain
from lmbridge.adapters.langchain._chain_prompt import TemplateShape, shape_of
from lmbridge.adapters.langchain._chain_walk import TAG, StepRecorder, find_prompts, rewrite, same
from lmbridge.adapters.langchain._chat import BridgeChatModel
from lmbridge.adapters.langchain._graph import is_graph, without_checkpointer
from lmbridge.adapters.langchain._learnable import KEY as LEARNABLE_KEY
from lmbridge.adapters.langchain._learnable import find_learnables, opted_pairs
from lmbridge.adapters.langchain._lm import lm_error
from lmbridge.adapters.langchain._retrievers import chain_retrievers, with_k
from lmbridge.adapters.langchain._trace import langchain_config
from lmbridge.evaluate import Metric
from lmbridge.lm import TransientError
from lmbridge.optimizers import Optimizer
from lmbridge.signatures import make_signature
from lmbridge.tracing import current_trace, record_step

DEFAULT_OUTPUT = "output"


class ChainPrompt(Predict):
    """One prompt template of a chain, as a predictor: its signature's inputs are the template's
    variables, its one output the model's reply to it. It is run by the chain, never on its own."""

    def __init__(self, shape: TemplateShape) -> None:
        spec = f"{', '.join(shape.variables)} -> {shape.output}"
        super().__init__(make_signature(spec, shape.instruction, name="ChainPromptSignature"))
        self._shape = shape

    @property
    def shape(self) -> TemplateShape:
        return self._shape

    def template(self) -> BasePromptTemplate[Any]:
        """The user's template with this predictor's instructions and demos."""
        if self.format is not None:
            raise ConfigurationError(f"a chain's prompt keeps its template's shape; it cannot take a prompt "
                                     f"format ({type(self.format).__name__}): compile without format= "
                                     "(MIPROv2: formats=[])")
        instructions = self.signature.instructions
        return self._shape.compile(instructions, self.demos)

    def messages(self, **inputs: Any) -> list[Any]:
        """The messages this prompt renders for ``inputs`` (as lmbridge messages)."""
        from lmbridge.adapters.langchain._chat import to_bridge_messages

        self._check(inputs)
        return to_bridge_messages(self.template().invoke(dict(inputs)).to_messages())

    def forward(self, **inputs: Any) -> Prediction:
        raise ConfigurationError("a chain's prompt runs inside its chain: call the ChainProgram, not the prompt")

    async def aforward(self, **inputs: Any) -> Prediction:
        return self.forward(**inputs)

    def __deepcopy__(self, memo: dict[int, Any]) -> ChainPrompt:
        new = copy.copy(self)  # the user's template is shared, never copied
        new.demos = copy.deepcopy(self.demos, memo)
        new.lm_params = dict(self.lm_params)
        return new


class ChainProgram(Module):
    """The user's chain as an lmbridge program whose predictors are the chain's prompts."""

    def __init__(self, chain: Runnable[Any, Any], *, output: str = DEFAULT_OUTPUT,
                 input_key: str | None = None, search_k: Sequence[int] | bool = True) -> None:
        if not isinstance(chain, Runnable):
            raise TypeError(f"from_chain takes a LangChain Runnable, not a {type(chain).__name__}")
        found, others = find_prompts(chain)
        opted, hidden = find_learnables(chain)
        reach = ("A prompt built or called inside a function (RunnableLambda, a graph's function node) cannot be "
                 "reached: make it a step of the chain, or define it as learnable(prompt, name=...)")
        if not found and not opted:
            what = ", ".join(dict.fromkeys(others)) or "nothing"
            inside = f"; a prompt template is used inside {', '.join(hidden)}" if hidden else ""
            raise ConfigurationError(
                f"no prompt template found in the chain (found: {what}{inside}); from_chain learns in the "
                "ChatPromptTemplate, PromptTemplate and FewShotPromptTemplate steps of a chain or of a graph's "
                f"nodes. {reach}")
        if hidden:
            warnings.warn(f"a prompt template used inside {', '.join(hidden)} is not learned. {reach}",
                          UserWarning, stacklevel=3)
        clash = sorted({p.key for p in opted} & {name for name, _ in found})
        if clash:
            raise ConfigurationError(f"a learnable prompt is named {clash}, as a prompt found in the chain: rename it")
        self._chain = chain
        self._input_key = input_key
        self._prompts = {name: ChainPrompt(shape_of(t, output, name)) for name, t in [*found, *opted_pairs(opted)]}
        self._opted = [p.key for p in opted]
        self._lm = _bridge_lm(chain)
        for prompt in self._prompts.values():  # so that a compile meters the chain's calls (``CompileRun.guard``)
            prompt.lm = self._lm
        self._retrievers, self._k = chain_retrievers(chain, search_k)
        self._cache: dict[bool, tuple[tuple[Any, ...], Runnable[Any, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def chain(self) -> Runnable[Any, Any]:
        """The user's chain, unchanged."""
        return self._chain

    @property
    def retriever_k(self) -> RetrieverK | None:
        """The searched ``k`` of the chain's retrievers (None when the chain has no retriever with a k knob)."""
        return self._k

    def named_predictors(self) -> list[tuple[str, Predict]]:
        return list(self._prompts.items())

    def named_modules(self) -> list[tuple[str, Module]]:
        return [*self._prompts.items(), *([("retriever_k", self._k)] if self._k is not None else [])]

    def __deepcopy__(self, memo: dict[int, Any]) -> ChainProgram:
        new = copy.copy(self)  # the user's chain is shared, never copied
        new._prompts = {n: copy.deepcopy(p, memo) for n, p in self._prompts.items()}
        new._k = copy.deepcopy(self._k, memo)
        new._cache, new._lock = {}, threading.Lock()
        new.report = copy.deepcopy(self.report, memo)
        return new

    def input_variables(self) -> list[str]:
        """The keys the chain's input schema requires (empty when the schema does not say, and for a
        LangGraph graph, whose state schema lists its outputs too)."""
        if is_graph(self._chain):
            return []
        try:
            schema = self._chain.get_input_jsonschema()
        except Exception:  # a custom Runnable whose schema cannot be built: nothing to check
            return []
        return [str(k) for k in schema.get("required", [])] if schema.get("type") == "object" else []

    # -- running ---------------------------------------------------------------------------------
    def to_chain(self) -> Runnable[Any, Any]:
        """The user's chain with each prompt replaced by its compiled version; every other object is the user's own."""
        templates = {name: p.template() for name, p in self._prompts.items()}
        return self._bind(rewrite(self._chain, lambda name, t: templates[name], self._k_swap(same)), templates)

    def _running_chain(self, traced: bool) -> Runnable[Any, Any]:
        """The chain for the current state (built once per state); when traced, each prompt is tagged
        for the recorder. A graph runs without its checkpointer: each call is a run of its own."""
        token: tuple[Any, ...] = tuple(x for p in self._prompts.values()
                                       for x in (p.signature, p.format, p.lm, *p.demos, None))
        token += (self._k.chosen,) if self._k is not None else ()
        cached = self._cache.get(traced)
        if cached is not None and len(cached[0]) == len(token) and all(a is b for a, b in zip(cached[0], token)):
            return cached[1]
        templates = {name: p.template().with_config(tags=[TAG + name]) if traced else p.template()
                     for name, p in self._prompts.items()}
        built = rewrite(self._chain, lambda name, t: templates[name], self._k_swap(self._model_swap()))
        built = self._bind(without_checkpointer(built), templates)
        with self._lock:
            self._cache[traced] = (token, built)
        return built

    def _bind(self, chain: Runnable[Any, Any], templates: Mapping[str, Runnable[Any, Any]]) -> Runnable[Any, Any]:
        """``chain`` configured with the templates of the learnable prompts (a graph stays a graph)."""
        if not self._opted:
            return chain
        return chain.with_config(configurable={LEARNABLE_KEY: {name: templates[name] for name in self._opted}})

    def _model_swap(self) -> Callable[[Any], Any]:
        """The chain's ``BridgeChatModel`` steps given the prompts' LM when it was replaced (a compile's
        metered copy of the chain's LM, or an LM set on the predictors); every other leaf unchanged."""
        lms = {id(p.lm): p.lm for p in self._prompts.values()}
        lm = next(iter(lms.values())) if len(lms) == 1 else None
        if lm is None or self._lm is None or lm is self._lm:
            return same

        def swap(node: Any) -> Any:
            if isinstance(node, BridgeChatModel) and node.lm is self._lm:
                return node.model_copy(update={"lm": lm})
            return node
        return swap

    def _k_swap(self, leaf: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``leaf``, with each of the user's retrievers whose searched ``k`` differs from its own
        replaced by a copy holding that ``k``."""
        changed = self._k.changed() if self._k is not None else {}
        if not changed:
            return leaf
        copies = {id(self._retrievers[name]): with_k(self._retrievers[name], k) for name, k in changed.items()}
        return lambda node: copies.get(id(node), leaf(node))

    def _start(self) -> tuple[Runnable[Any, Any], dict[str, Any], StepRecorder]:
        """The chain to run, its config, and the recorder of its steps: a run outside any trace (a plain
        call, not an evaluation) needs no step records, and runs with no callback of ours."""
        recorder = StepRecorder()
        traced = current_trace() is not None
        outer = langchain_config()  # under the bridge run this call is in, when a LangChainCallback is installed
        if outer is None:
            return self._running_chain(traced), {"callbacks": [recorder]} if traced else {}, recorder
        manager = outer["callbacks"]
        if traced:
            manager.add_handler(recorder, inherit=True)
        return self._running_chain(traced), {"callbacks": manager}, recorder

    def _finish(self, recorder: StepRecorder, output: Any) -> Any:
        for name, values, reply in recorder.steps:
            prompt = self._prompts[name]
            shown = {k: plain(values[k]) for k in prompt.signature.input_fields if k in values}
            record_step(prompt, shown, Prediction.from_values({prompt.shape.output: reply}, Usage(), reply))
        return output

    def _failure(self, recorder: StepRecorder, exc: Exception) -> Exception:
        """The documented error for a failed run (raised ``from`` the original)."""
        if isinstance(exc, BridgeError):
            return exc
        if isinstance(exc, OutputParserException):
            text = str(exc.llm_output or (recorder.replies[-1] if recorder.replies else ""))
            return ParseError(f"the chain's parser could not read the reply: {exc}", completion=text)
        model = _raised_in_model(exc)
        if model is not None or recorder.model_error is exc:
            error = lm_error(exc, model or "the chain's model")
            # The chain already ran its own retries: a transient failure is final here, as its LMError.
            return error.error if isinstance(error, TransientError) else error
        if isinstance(exc, KeyError) and "missing variables" in str(exc):
            return InputError(f"the chain's prompt is missing input variables: {exc}")
        return exc

    def _input(self, inputs: dict[str, Any]) -> Any:
        """What the chain is invoked with: the inputs as a dict, or the one ``input_key`` value itself."""
        if self._input_key is None:
            return inputs
        if set(inputs) != {self._input_key}:
            raise InputError(f"this chain takes one input, {self._input_key!r} (input_key); got {sorted(inputs)}")
        return inputs[self._input_key]

    def forward(self, **inputs: Any) -> Any:  # the chain's own output: what the user's metric reads
        return run(self._flow(inputs))

    async def aforward(self, **inputs: Any) -> Any:
        return await arun(self._flow(inputs))

    def _flow(self, inputs: dict[str, Any]) -> Flow[Any]:
        """One run of the chain, for both shells: invoke it, map its failure, read its steps."""
        chain, config, recorder = self._start()
        try:
            output = yield Call(lambda: chain.invoke(self._input(inputs), config=config),  # type: ignore[arg-type]
                                lambda: chain.ainvoke(self._input(inputs), config=config))  # type: ignore[arg-type]
        except Exception as exc:
            failure = self._failure(recorder, exc)
            if failure is exc:
                raise
            raise failure from exc
        return self._finish(recorder, output)


def _bridge_lm(chain: Runnable[Any, Any]) -> BaseLM | None:
    """The lmbridge LM behind the chain's ``BridgeChatModel`` steps, when they all share one."""
    found: dict[int, BaseLM] = {}

    def look(node: Any) -> Any:
        if isinstance(node, BridgeChatModel) and isinstance(node.lm, BaseLM):
            found[id(node.lm)] = node.lm
        return node

    rewrite(chain, lambda name, t: t, look)
    return next(iter(found.values())) if len(found) == 1 else None


def _raised_in_model(exc: BaseException) -> str | None:
    """The name of the LangChain model whose call raised ``exc`` (read from the traceback), or None."""
    from langchain_core.language_models import BaseLanguageModel

    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, BaseLanguageModel):
            return type(owner).__name__
        tb = tb.tb_next
    return None


def from_chain(chain: Runnable[Any, Any], *, output: str = DEFAULT_OUTPUT,
               input_key: str | None = None, search_k: Sequence[int] | bool = True) -> ChainProgram:
    """The chain as an lmbridge program; ``output`` names each prompt's output field (the key of the
    model's reply in demos; for a one-prompt chain, the label field of your examples). A chain invoked
    with a bare value (``chain.invoke("a question")``) takes ``input_key``: the examples' one input.
    The ``k`` of each retriever in the chain with a k knob is a searched setting: ``search_k`` lists
    the values to try (default 1, 3, 5 and the retriever's own), ``False`` leaves every ``k`` alone."""
    return ChainProgram(chain, output=output, input_key=input_key, search_k=search_k)


def label_field(trainset: Sequence[Example]) -> str | None:
    """The single label field the examples share (their one non-input key), or None."""
    labels: set[str] = set()
    for example in trainset:
        keys = example.input_keys or ()
        labels |= {k for k in example if k not in keys}
    return next(iter(labels)) if len(labels) == 1 else None


def check_inputs(program: ChainProgram, trainset: Sequence[Example], where: str) -> None:
    """Every variable the chain requires is an input of every example; InputError naming it if not."""
    required = program.input_variables()
    for i, example in enumerate(trainset):
        if example.input_keys is None:
            raise InputError(f"{where} example {i} has no inputs marked: build it with Example(...).with_inputs"
                             f"({', '.join(map(repr, required)) or '...'})")
        missing = [v for v in required if v not in example.input_keys]
        if missing:
            raise InputError(f"the chain needs the input variable(s) {missing}, which {where} example {i} does not "
                             f"provide (its inputs are {list(example.input_keys)})")


def compile_chain(chain: Runnable[Any, Any], *, trainset: Sequence[Example], metric: Metric,
                  optimizer: Optimizer | None = None, valset: Sequence[Example] | None = None,
                  input_key: str | None = None, search_k: Sequence[int] | bool = True) -> Runnable[Any, Any]:
    """``from_chain``, ``optimizer.compile``, ``to_chain`` in one call; see ``docs/compile-chain.md``.

    The default optimizer is ``BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=4)``;
    an optimizer given without a metric of its own uses ``metric`` (on a copy: yours is not changed).
    Without a valset, a trainset of 8 rows or more gives its last third as the valset, on which the
    compiled chain must beat the original beyond noise to be kept.
    """
    train = list(trainset)
    program = from_chain(chain, input_key=input_key, search_k=search_k)
    label = label_field(train)
    if label is not None and len(program.named_predictors()) == 1:
        program = from_chain(chain, output=label, input_key=input_key, search_k=search_k)
    if valset is None and len(train) >= 8:
        train, valset = train[:len(train) * 2 // 3], train[len(train) * 2 // 3:]
    if input_key is None:
        check_inputs(program, train, "trainset")
        if valset is not None:
            check_inputs(program, list(valset), "valset")
    chosen = _with_metric(optimizer, metric)
    compiled = chosen.compile(program, trainset=train, valset=valset)
    assert isinstance(compiled, ChainProgram)
    return compiled.to_chain()


def _with_metric(optimizer: Optimizer | None, metric: Metric) -> Optimizer:
    """The optimizer to run: the default one, or a copy of the given one with ``metric`` when it has none
    and with no prompt formats to search (a chain's prompts keep their templates' shape)."""
    from lmbridge import BootstrapFewShot

    if optimizer is None:
        return BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=4)
    needs_metric = getattr(optimizer, "metric", False) is None
    if needs_metric or getattr(optimizer, "formats", None):
        optimizer = copy.copy(optimizer)
        if needs_metric:
            optimizer.metric = metric  # type: ignore[attr-defined]
        if getattr(optimizer, "formats", None):
            optimizer.formats = []  # type: ignore[attr-defined]
    return optimizer


__all__ = ["ChainProgram", "ChainPrompt", "check_inputs", "compile_chain", "from_chain", "label_field"]
