"""Compile the query engine you already have: ``from_query_engine``, ``QueryEngineProgram`` and
``compile_query_engine``.

Any LlamaIndex ``PromptMixin`` (query engines, chat engines, response synthesizers, agents) is a
program whose predictors are its ``get_prompts()``. Each prompt's learnable state (instructions,
demos) is written in the template's own shape: for a text template, the instruction is its leading
paragraphs with no variable and demos are example blocks; for a chat template, the instruction is a
leading system message and demos are example user/assistant turns. A ``SelectorPromptTemplate``
learns in the variant it picks for the module's own LLM.

A call runs a copy of the user's object carrying the current prompts: only the modules on the
path to a changed prompt are copied (``copy.copy``), and the prompts are installed through each
copied module's own ``update_prompts``, one level at a time, so keys with several ``:`` work. The
user's object is never changed. Demos come from LlamaIndex's instrumentation: each ``llm.predict``
call's template, its arguments and the model's output.

The ``k`` (``similarity_top_k``) of a retriever the object holds is a searched setting too
(``RetrieverK``): a call runs on a copy of the object whose retriever is a copy carrying the chosen ``k``.
"""

from __future__ import annotations

import contextvars
import copy
import threading
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMPredictEndEvent, LLMPredictStartEvent
from llama_index.core.prompts import BasePromptTemplate, ChatPromptTemplate, PromptTemplate, SelectorPromptTemplate
from llama_index.core.prompts.mixin import PromptMixin
from llama_index_instrumentation import get_dispatcher

from lmbridge import ConfigurationError, Example, Module, Predict, Prediction, Usage
from lmbridge.adapters._flow import Call, Flow, arun, run
from lmbridge.adapters._retriever_k import RetrieverK
from lmbridge.adapters._templates import demo_block, plain, split_instruction
from lmbridge.adapters.llamaindex._retrievers import engine_retrievers, with_top_k
from lmbridge.evaluate import Metric
from lmbridge.optimizers import Optimizer
from lmbridge.signatures import make_signature
from lmbridge.tracing import record_step

_steps: contextvars.ContextVar[list[BaseEvent] | None] = contextvars.ContextVar(
    "lmbridge_engine_steps", default=None)


class _PredictEvents(BaseEventHandler):
    """Hands each ``llm.predict`` start/end event to the call running in this context, if any."""

    @classmethod
    def class_name(cls) -> str:
        return "LmbridgePredictEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        found = _steps.get()
        if found is not None and isinstance(event, (LLMPredictStartEvent, LLMPredictEndEvent)):
            found.append(event)


_installed = threading.Lock()
_handler: _PredictEvents | None = None


def _listen() -> None:
    global _handler
    with _installed:
        if _handler is None:
            _handler = _PredictEvents()
            get_dispatcher().add_event_handler(_handler)


def _text(template: BasePromptTemplate) -> str:
    if isinstance(template, ChatPromptTemplate):
        return "\x00".join(f"{m.role}:{m.content}" for m in template.message_templates)
    return str(getattr(template, "template", ""))


class EnginePrompt(Predict):
    """One prompt of a LlamaIndex module, as a predictor run by its module, never on its own."""

    def __init__(self, template: BasePromptTemplate, chosen: BasePromptTemplate, output: str) -> None:
        variables = [v for v in chosen.template_vars if v not in chosen.kwargs]
        instruction = _instruction(chosen)
        super().__init__(make_signature(f"{', '.join(variables)} -> {output}", instruction, name="EnginePromptSig"))
        self._template, self._chosen, self._output, self._instruction = template, chosen, output, instruction

    @property
    def output(self) -> str:
        """The output field's name: the demo key holding the model's reply."""
        return self._output

    def template(self) -> BasePromptTemplate:
        """The user's prompt with this predictor's instructions and demos."""
        instructions = self.signature.instructions
        if instructions == self._instruction and not self.demos:
            return self._template
        demos = [d for d in self.demos if self._output in d and all(v in d for v in self.signature.input_fields)]
        if isinstance(self._chosen, ChatPromptTemplate):
            return _chat(self._chosen, self._instruction, instructions, demos, self._output)
        return _text_prompt(self._chosen, instructions, demos, self._output)

    def forward(self, **inputs: Any) -> Prediction:
        raise ConfigurationError("an engine's prompt runs inside its engine: call the QueryEngineProgram")

    def __deepcopy__(self, memo: dict[int, Any]) -> EnginePrompt:
        new = copy.copy(self)  # the user's template is shared, never copied
        new.demos = copy.deepcopy(self.demos, memo)
        return new


def _instruction(template: BasePromptTemplate) -> str:
    if isinstance(template, ChatPromptTemplate):
        first = template.message_templates[0] if template.message_templates else None
        if first is not None and first.role == MessageRole.SYSTEM and "{" not in (first.content or ""):
            return first.content or ""
        return ""
    return split_instruction(str(getattr(template, "template", "")))[0]


def _chat(template: ChatPromptTemplate, old: str, instructions: str, demos: Sequence[Example],
          output: str) -> BasePromptTemplate:
    messages = list(template.message_templates)
    if old and messages and messages[0].role == MessageRole.SYSTEM:
        messages = messages[1:]
    lead = 0
    while lead < len(messages) and messages[lead].role == MessageRole.SYSTEM:
        lead += 1
    query = next((m for m in reversed(messages) if m.role == MessageRole.USER), None)
    turns = []
    for demo in demos:
        if query is not None:
            one = ChatPromptTemplate(message_templates=[query]).format_messages(
                **{**template.kwargs, **{k: plain(v) for k, v in demo.items()}})
            turns.extend(one)
        turns.append(ChatMessage(role=MessageRole.ASSISTANT, content=str(demo[output])))
    head = [ChatMessage(role=MessageRole.SYSTEM, content=instructions)] if instructions else []
    return template.model_copy(update={"message_templates": [*head, *messages[:lead], *turns, *messages[lead:]]})


def _text_prompt(template: BasePromptTemplate, instructions: str, demos: Sequence[Example],
                 output: str) -> BasePromptTemplate:
    _, body = split_instruction(str(getattr(template, "template", "")))
    blocks = [demo_block(PromptTemplate(body).format(**{**template.kwargs, **{k: plain(v) for k, v in d.items()}}),
                         str(d[output])) for d in demos]
    head = "".join(f"{t}\n\n" for t in [instructions, *blocks] if t)
    return template.model_copy(update={"template": head + body})


# -- the module tree -----------------------------------------------------------------------------

def _owner(root: PromptMixin, path: Sequence[str]) -> PromptMixin:
    node = root
    for name in path:
        node = node._get_prompt_modules()[name]
    return node


def _relink(parent: Any, old: Any, new: Any) -> None:
    """Point the copied ``parent`` at ``new`` wherever it held ``old``."""
    private = getattr(parent, "__pydantic_private__", None) or {}
    for key, value in [*vars(parent).items(), *private.items()]:
        if value is old:
            if key in private:
                private[key] = new
            else:
                object.__setattr__(parent, key, new)
            return
    raise ConfigurationError(f"cannot copy {type(parent).__name__}: it does not hold its prompt module "
                             f"{type(old).__name__} as an attribute")


def with_prompts(module: PromptMixin, updates: dict[tuple[str, ...], BasePromptTemplate]) -> PromptMixin:
    """A copy of ``module`` with each ``(path..., key)`` prompt installed; modules off those paths shared."""
    new = copy.copy(module)
    own = {path[0]: t for path, t in updates.items() if len(path) == 1}
    for name, child in module._get_prompt_modules().items():
        sub = {path[1:]: t for path, t in updates.items() if len(path) > 1 and path[0] == name}
        if sub:
            _relink(new, child, with_prompts(child, sub))
    if own:
        new._update_prompts(own)
    return new


def _variants(template: Any) -> set[str]:
    if isinstance(template, SelectorPromptTemplate):
        return {_text(template.default_template), *(_text(t) for _, t in template.conditionals or [])}
    return {_text(template)}


class QueryEngineProgram(Module):
    """The user's LlamaIndex object as an lmbridge program whose predictors are its prompts."""

    def __init__(self, obj: Any, *, output: str = "output", search_k: Sequence[int] | bool = True) -> None:
        if not isinstance(obj, PromptMixin):
            raise TypeError(f"from_query_engine takes a LlamaIndex PromptMixin (a query engine, chat engine, "
                            f"response synthesizer or agent), not a {type(obj).__name__}")
        found = obj.get_prompts()
        if not found:
            raise ConfigurationError(f"no prompt found in the {type(obj).__name__}: get_prompts() is empty "
                                     f"(its prompt modules: {sorted(obj._get_prompt_modules()) or 'none'})")
        self._obj = obj
        self._prompts: dict[str, EnginePrompt] = {}
        for key, template in found.items():
            *path, _ = key.split(":")
            chosen = template.select(getattr(_owner(obj, path), "_llm", None)) \
                if isinstance(template, SelectorPromptTemplate) else template
            self._prompts[key] = EnginePrompt(template, chosen, output)
        self._retrievers, self._k = engine_retrievers(obj, search_k)
        self._cache: tuple[tuple[Any, ...], Any] | None = None
        _listen()

    @property
    def engine(self) -> Any:
        """The user's object, unchanged."""
        return self._obj

    def named_predictors(self) -> list[tuple[str, Predict]]:
        return list(self._prompts.items())

    def named_modules(self) -> list[tuple[str, Module]]:
        return [*self._prompts.items(), *([("retriever_k", self._k)] if self._k is not None else [])]

    @property
    def retriever_k(self) -> RetrieverK | None:
        """The searched ``k`` of the object's retriever (None when it holds no retriever with a top-k knob)."""
        return self._k

    def __deepcopy__(self, memo: dict[int, Any]) -> QueryEngineProgram:
        new = copy.copy(self)  # the user's object is shared, never copied
        new._prompts = {k: copy.deepcopy(p, memo) for k, p in self._prompts.items()}
        new._k = copy.deepcopy(self._k, memo)
        new._cache = None
        new.report = copy.deepcopy(self.report, memo)
        return new

    def to_query_engine(self) -> Any:
        """A copy of the user's object, of the same class, with the compiled prompts installed and its
        retriever replaced by a copy with the searched ``k`` when that differs from its own."""
        updates = {tuple(k.split(":")): p.template() for k, p in self._prompts.items()}
        built = with_prompts(self._obj, updates)
        for name, k in (self._k.changed() if self._k is not None else {}).items():
            _relink(built, self._retrievers[name], with_top_k(self._retrievers[name], k))
        return built

    def _running(self) -> Any:
        token: tuple[Any, ...] = tuple(x for p in self._prompts.values() for x in (p.signature, *p.demos, None))
        token += (self._k.chosen,) if self._k is not None else ()
        cached = self._cache
        if cached is not None and len(cached[0]) == len(token) and all(a is b for a, b in zip(cached[0], token)):
            return cached[1]
        built = self.to_query_engine()
        self._cache = (token, built)
        return built

    def _query(self, inputs: dict[str, Any]) -> Any:
        if len(inputs) != 1:
            from lmbridge import InputError

            raise InputError(f"a query engine takes one input (the query), not {sorted(inputs)}")
        return next(iter(inputs.values()))

    def _record(self, events: list[BaseEvent]) -> None:
        starts = {e.span_id: e for e in events if isinstance(e, LLMPredictStartEvent)}
        texts = {name: _variants(p.template()) for name, p in self._prompts.items()}
        for event in events:
            if not isinstance(event, LLMPredictEndEvent) or event.span_id not in starts:
                continue
            start = starts[event.span_id]
            sent = _variants(start.template)
            name = next((n for n, t in texts.items() if t & sent), None)
            if name is None:
                continue
            prompt = self._prompts[name]
            values = {**start.template.kwargs, **(start.template_args or {})}
            shown = {k: plain(values[k]) for k in prompt.signature.input_fields if k in values}
            reply = str(event.output)
            record_step(prompt, shown, Prediction.from_values({prompt.output: reply}, Usage(), reply))

    def forward(self, **inputs: Any) -> Any:  # the object's own answer (a Response): what the metric reads
        return run(self._flow(inputs))

    async def aforward(self, **inputs: Any) -> Any:
        return await arun(self._flow(inputs))

    def _flow(self, inputs: dict[str, Any]) -> Flow[Any]:
        """One run of the object, for both shells: ask it (a chat engine by ``chat``), map an LLM's
        failure, record the prompts' steps."""
        query, engine = self._query(inputs), self._running()
        chat = not hasattr(engine, "query") and hasattr(engine, "chat")
        token = _steps.set([])
        try:
            answer = yield Call(lambda: engine.chat(query) if chat else engine.query(query),
                                lambda: engine.achat(query) if chat else engine.aquery(query))
            self._record(_steps.get() or [])
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            _steps.reset(token)
        return answer


def _mapped(exc: Exception) -> Exception:
    """An LLM's failure (read from the traceback) as an ``LMError`` subclass; an lmbridge error or an
    error of the user's own code unchanged."""
    from llama_index.core.base.llms.base import BaseLLM

    from lmbridge import BridgeError
    from lmbridge.errors import provider_error

    if isinstance(exc, BridgeError):
        return exc
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, BaseLLM):
            return provider_error(exc, type(owner).__name__)
        tb = tb.tb_next
    return exc


def from_query_engine(obj: Any, *, output: str = "output", search_k: Sequence[int] | bool = True) -> QueryEngineProgram:
    """The LlamaIndex object as an lmbridge program; ``output`` names each prompt's output field. The
    ``k`` of the retriever the object holds (its ``similarity_top_k``) is a searched setting:
    ``search_k`` lists the values to try (default 1, 3, 5 and its own), ``False`` leaves it alone."""
    return QueryEngineProgram(obj, output=output, search_k=search_k)


def compile_query_engine(obj: Any, *, trainset: Sequence[Example], metric: Metric, optimizer: Optimizer | None = None,
                         valset: Sequence[Example] | None = None, search_k: Sequence[int] | bool = True) -> Any:
    """``from_query_engine``, ``optimizer.compile``, ``to_query_engine`` in one call (defaults as
    ``compile_chain``'s: BootstrapFewShot with ``metric``; the last third of 8+ rows as the valset)."""
    from lmbridge import BootstrapFewShot, InputError

    train = list(trainset)
    for where, rows in (("trainset", train), ("valset", list(valset or []))):
        for i, example in enumerate(rows):
            if example.input_keys is None or len(example.input_keys) != 1:
                raise InputError(f"{where} example {i}: a query engine's example has one input, the query "
                                 f"(Example(query=..., answer=...).with_inputs('query')); it has "
                                 f"{list(example.input_keys or [])}")
    program = from_query_engine(obj, search_k=search_k)
    if valset is None and len(train) >= 8:
        train, valset = train[:len(train) * 2 // 3], train[len(train) * 2 // 3:]
    if optimizer is None:
        optimizer = BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=0)
    elif getattr(optimizer, "metric", False) is None:
        optimizer = copy.copy(optimizer)
        optimizer.metric = metric  # type: ignore[attr-defined]
    compiled = optimizer.compile(program, trainset=train, valset=valset)
    assert isinstance(compiled, QueryEngineProgram)
    return compiled.to_query_engine()


__all__ = ["EnginePrompt", "QueryEngineProgram", "compile_query_engine", "from_query_engine", "with_prompts"]
