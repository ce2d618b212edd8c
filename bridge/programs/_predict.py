"""Predict, the one learnable unit, and ChainOfThought, a signature transform around it.

A Predict's state is its instructions (on its signature) and its demos. Optimizers change those
and nothing else. A call formats the messages, asks the LM, and parses the answer; an answer that
does not parse is re-asked once with the error shown, and the re-ask is counted in the usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from lmbridge.errors import ConfigurationError, InputError, ParseError
from lmbridge.formats import ChatFormat, PromptFormat
from lmbridge.lm import BaseLM, Completion
from lmbridge.programs._flow import Ask, Flow, Score, adrive, arun, drive, run
from lmbridge.programs._labels import score_labels
from lmbridge.programs._module import Learnable, Module
from lmbridge.programs._streaming import (
    FieldParser,
    ParseRetry,
    StreamEnd,
    StreamEvent,
    StreamSink,
    atraced_events,
    find_sink,
    traced_events,
)
from lmbridge.settings import current
from lmbridge.signatures import (
    OutputField,
    Signature,
    SignatureLike,
    check_spans,
    ensure_signature,
    extractive_fields,
    passages_of,
    render,
    render_input,
)
from lmbridge.tracing import Callback, RunScope, record_step, record_usage, start_run, watched
from lmbridge.types import Example, Message, Prediction, Usage

DEFAULT_FORMAT: PromptFormat = ChatFormat()
_PLAIN = (str, int, float, bool, type(None))
_metadata: WeakKeyDictionary[type[Signature], Mapping[str, Any]] = WeakKeyDictionary()  # of predictor runs
E = TypeVar("E", Iterator[StreamEvent], AsyncIterator[StreamEvent])  # a stream of events, sync or async


class Predict(Module, Learnable):
    """Ask an LM to fill a signature's output fields from its input fields.

    ``lm`` and ``format`` override the settings for this predictor; ``lm_params`` (temperature,
    max_tokens, ...) go with each request. Inputs are the only thing passed at call time.
    """

    def __init__(self, signature: SignatureLike, *, lm: BaseLM | None = None, format: PromptFormat | None = None,
                 demos: Sequence[Mapping[str, Any]] | None = None, **lm_params: Any) -> None:
        self.signature: type[Signature] = ensure_signature(signature)
        self.demos: list[Example] = [d if isinstance(d, Example) else Example(d) for d in (demos or [])]
        self.lm = lm
        self.format = format
        self.lm_params = lm_params

    @property
    def instructions(self) -> str:
        return self.signature.instructions

    @instructions.setter
    def instructions(self, text: str) -> None:
        self.signature = self.signature.with_instructions(text)

    def __repr__(self) -> str:
        return f"Predict({self.signature.spec()!r}, demos={len(self.demos)})"

    # -- the call path -------------------------------------------------------------------------
    def _resolve(self) -> tuple[BaseLM, PromptFormat]:
        settings = current()
        lm = self.lm or settings.lm
        if lm is None:
            raise ConfigurationError(
                "no LM is configured: pass Predict(..., lm=...) or call "
                "lmbridge.configure(lm=lmbridge.LM('local/smollm2')) first")
        return lm, self.format or settings.format or DEFAULT_FORMAT

    def _check(self, inputs: Mapping[str, Any]) -> None:
        fields = self.signature.input_fields
        if len(inputs) != len(fields) or any(k not in fields for k in inputs):
            missing = [k for k in fields if k not in inputs]
            unknown = [k for k in inputs if k not in fields]
            parts = []
            if missing:
                parts.append(f"missing input field(s) {missing}")
            if unknown:
                parts.append(f"unknown field(s) {unknown}")
            raise InputError(f"{self.signature.__name__} ({self.signature.spec()}): {'; '.join(parts)}")
        for name, value in inputs.items():
            if not isinstance(value, _PLAIN):
                self._check_renderable(name, value)
        for field in extractive_fields(self.signature).values():
            passages_of(self.signature, inputs, field)  # an extractive answer needs passages to copy from

    def _check_renderable(self, name: str, value: Any) -> None:
        """An input is written into the prompt as text or JSON (a date or time as ISO 8601); a value
        with no such form (a set, bytes, an arbitrary object) is an InputError naming the field."""
        try:
            render_input(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InputError(
                f"{self.signature.__name__}: input field {name!r} is a {type(value).__name__}, which cannot be "
                f"written into a prompt ({exc}); pass text, a number, a list, a dict or a pydantic model "
                "(for a set: sorted(...); for bytes: .decode())") from exc

    def messages(self, **inputs: Any) -> list[Message]:
        """The exact messages this predictor would send for ``inputs``, without calling any model."""
        self._check(inputs)
        return self._resolve_format().format(self.signature, self.demos, inputs)

    def _resolve_format(self) -> PromptFormat:
        return self.format or current().format or DEFAULT_FORMAT

    def request_params(self, lm: BaseLM) -> dict[str, Any]:
        """What a call on ``lm`` sends besides the messages: the format's parameters (JSON mode, the raw
        endpoint, a decoding constraint) and ``lm_params``. Exports read it to carry the same request."""
        return self._params(lm, self._resolve_format())

    def _params(self, lm: BaseLM, fmt: PromptFormat, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        extra = fmt.request_params(self.signature) if lm.supports_json_mode() else {}
        extra = {**extra, **fmt.endpoint_params(self.signature)}
        # an extractive output's grammar is built from this call's passages (``inputs``)
        constraint = fmt.constraint(self.signature) if inputs is None else fmt.constraint_for(self.signature, inputs)
        if constraint is not None:  # decoding constrained to the signature's types, where the LM can
            extra.update(lm.constraint_params(constraint))
        return {**extra, **self.lm_params} if extra else self.lm_params

    def _scored(self, lm: BaseLM, fmt: PromptFormat, inputs: dict[str, Any],
                params: dict[str, Any]) -> Prediction | None:
        """The label-scoring path (a format's ``scoring`` other than "generate"): the most probable
        option of a Literal/Enum/bool output, with no text sampled. None when it does not apply."""
        if fmt.scoring == "generate":
            return None
        scores = score_labels(lm, fmt, self.signature, self.demos, inputs, params)
        if scores is None:
            return None
        return self._finish(inputs, {scores.field: scores.choice}, scores.usage, render(scores.choice))

    def _first_parse(self, fmt: PromptFormat, completion: Completion,
                     inputs: Mapping[str, Any]) -> dict[str, Any] | ParseError:
        try:
            return self._parse(fmt, completion.text, inputs)
        except ParseError as error:
            return error

    def _parse(self, fmt: PromptFormat, text: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The answer's values; an extractive one that is not a span of its passages does not parse."""
        values = fmt.parse(self.signature, text)
        check_spans(self.signature, inputs, values, text)
        return values

    def _repair(self, messages: list[Message], fmt: PromptFormat, text: str, error: ParseError) -> list[Message]:
        return [*messages, {"role": "assistant", "content": text},
                {"role": "user", "content": fmt.repair(self.signature, error)}]

    def _second_parse(self, fmt: PromptFormat, first: str, completion: Completion, first_error: ParseError,
                      usage: Usage, inputs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._parse(fmt, completion.text, inputs)
        except ParseError as error:
            merged = fmt.merge(self.signature, first, completion.text, first_error)
            if merged is not None:
                try:
                    return self._parse(fmt, merged, inputs)
                except ParseError:
                    pass
            raise ParseError(error.message, completion=completion.text, signature=self.signature.spec(),
                             field=error.field, attempts=2, usage=usage) from error

    def _finish(self, inputs: dict[str, Any], values: dict[str, Any], usage: Usage, text: str) -> Prediction:
        prediction = Prediction.from_values(values, usage, text)
        record_step(self, inputs, prediction)
        return prediction

    # The call, written once: ``_flow`` is a generator that yields what it needs (an LM call, a
    # label scoring, a stream event) and returns the Prediction; ``drive`` and ``adrive`` run it,
    # sync and async, for ``forward``/``aforward`` (``name`` None) and ``stream``/``astream``.
    def _flow(self, inputs: dict[str, Any], name: str | None) -> Flow:
        self._check(inputs)
        lm, fmt = self._resolve()
        params = self._params(lm, fmt, inputs)
        if name is None and fmt.scoring != "generate":
            scored: Prediction | None = yield Score(lambda: self._scored(lm, fmt, inputs, params))
            if scored is not None:
                return scored
        messages = fmt.format(self.signature, self.demos, inputs)
        parser = FieldParser(fmt, self.signature, name) if name is not None else None
        completion: Completion = yield Ask(lm, fmt, self.signature, messages, params, parser)
        values = self._first_parse(fmt, completion, inputs)
        if not isinstance(values, ParseError):
            return (yield from self._done(inputs, values, completion.usage, completion.text, parser))
        record_usage(Usage(parse_retries=1))
        if name is not None:
            yield ParseRetry(name, values.message)
            merged = fmt.merge(self.signature, completion.text, "", values) or ""
            parser = FieldParser(fmt, self.signature, name, merged)
        second: Completion = yield Ask(lm, fmt, self.signature, self._repair(messages, fmt, completion.text, values),
                                       _unconstrained(params), parser)
        usage = completion.usage + second.usage + Usage(parse_retries=1)
        final = self._second_parse(fmt, completion.text, second, values, usage, inputs)
        return (yield from self._done(inputs, final, usage, second.text, parser))

    def _done(self, inputs: dict[str, Any], values: dict[str, Any], usage: Usage, text: str,
              parser: FieldParser | None) -> Flow:
        if parser is not None:
            yield from parser.close(values)
        return self._finish(inputs, values, usage, text)

    def forward(self, **inputs: Any) -> Prediction:
        return run(self._flow(inputs, None))

    async def aforward(self, **inputs: Any) -> Prediction:
        return await arun(self._flow(inputs, None))

    # A Predict's own usage is exact already: skip the tracker the base class puts around forward.
    def __call__(self, **inputs: Any) -> Prediction:
        callbacks = current().callbacks
        if callbacks:
            return self._traced_predict(callbacks, inputs)
        return self.forward(**inputs)

    async def acall(self, **inputs: Any) -> Prediction:
        callbacks = current().callbacks
        if callbacks:
            return await self._atraced_predict(callbacks, inputs)
        return await self.aforward(**inputs)

    # -- streaming ------------------------------------------------------------------------------
    def stream(self, **inputs: Any) -> Iterator[StreamEvent]:
        """Yield the answer's field events as the model writes them, then ``StreamEnd(prediction)``
        (see ``lmbridge.streaming``). The call is cached, retried, counted and traced like ``__call__``."""
        return self._events(inputs, "self")

    def astream(self, **inputs: Any) -> AsyncIterator[StreamEvent]:
        """The async twin of ``stream``."""
        return self._aevents(inputs, "self")

    def _events(self, inputs: dict[str, Any], name: str) -> Iterator[StreamEvent]:
        callbacks = current().callbacks
        if not callbacks:
            return self._stream(inputs, name)
        return self._traced_events(callbacks, inputs, name)

    def _aevents(self, inputs: dict[str, Any], name: str) -> AsyncIterator[StreamEvent]:
        callbacks = current().callbacks
        if not callbacks:
            return self._astream(inputs, name)
        return self._atraced_events(callbacks, inputs, name)

    def _traced_events(self, callbacks: tuple[Callback, ...], inputs: dict[str, Any],
                       name: str) -> Iterator[StreamEvent]:
        # The run starts with the first event, under the run that is the parent at that moment.
        scope = start_run("predictor", type(self).__name__, inputs, callbacks=callbacks, metadata=self._meta())
        yield from traced_events(scope, self._stream(inputs, name))

    async def _atraced_events(self, callbacks: tuple[Callback, ...], inputs: dict[str, Any],
                              name: str) -> AsyncIterator[StreamEvent]:
        scope = start_run("predictor", type(self).__name__, inputs, callbacks=callbacks, metadata=self._meta())
        async for event in atraced_events(scope, self._astream(inputs, name)):
            yield event

    def _stream(self, inputs: dict[str, Any], name: str) -> Iterator[StreamEvent]:
        return drive(self._flow(inputs, name))

    def _astream(self, inputs: dict[str, Any], name: str) -> AsyncIterator[StreamEvent]:
        return adrive(self._flow(inputs, name))

    # -- tracing --------------------------------------------------------------------------------
    def _meta(self) -> Mapping[str, Any]:
        meta = _metadata.get(self.signature)
        if meta is None:
            meta = _metadata[self.signature] = MappingProxyType({"signature": self.signature.spec()})
        return meta

    def _traced_predict(self, callbacks: tuple[Callback, ...], inputs: dict[str, Any]) -> Prediction:
        sink = find_sink(callbacks)
        if sink is not None:  # inside lmbridge.streamify: stream this answer to the sink
            prediction: Prediction | None = None
            for event in self._events(inputs, sink.name_of(self)):
                prediction = _into(sink, event)
            assert prediction is not None, "a stream ends with its prediction"
            return prediction
        if not watched(callbacks, "predictor"):
            return self.forward(**inputs)
        with start_run("predictor", type(self).__name__, inputs, callbacks=callbacks, metadata=self._meta()) as run:
            prediction = self.forward(**inputs)
            run.end(prediction)
        return prediction

    async def _atraced_predict(self, callbacks: tuple[Callback, ...], inputs: dict[str, Any]) -> Prediction:
        # The mirror of ``_traced_predict``: a thin shell that differs only in ``async for``/``await``.
        sink = find_sink(callbacks)
        if sink is not None:
            prediction: Prediction | None = None
            async for event in self._aevents(inputs, sink.name_of(self)):
                prediction = _into(sink, event)
            assert prediction is not None, "a stream ends with its prediction"
            return prediction
        if not watched(callbacks, "predictor"):
            return await self.aforward(**inputs)
        with start_run("predictor", type(self).__name__, inputs, callbacks=callbacks, metadata=self._meta()) as run:
            prediction = await self.aforward(**inputs)
            run.end(prediction)
        return prediction


def _into(sink: StreamSink, event: StreamEvent) -> Prediction | None:
    """Put a field event into ``sink``; the prediction when ``event`` is the stream's end."""
    if isinstance(event, StreamEnd):
        return event.prediction
    sink.put(event)
    return None


def _unconstrained(params: dict[str, Any]) -> dict[str, Any]:
    """The re-ask's parameters: its answer is only the missing part, so the whole-answer grammar goes."""
    return {k: v for k, v in params.items() if k != "grammar"} if "grammar" in params else params


class ChainOfThought(Module):
    """Predict with a ``reasoning`` output field put before the others; the reasoning comes back
    in the Prediction. Its one predictor is ``self.predict``."""

    def __init__(self, signature: SignatureLike, *, rationale_desc: str = "think it through step by step",
                 **predict_options: Any) -> None:
        base = ensure_signature(signature)
        extended = base.prepend("reasoning", OutputField(desc=rationale_desc), str)
        self.predict = Predict(extended, **predict_options)

    def forward(self, **inputs: Any) -> Prediction:
        return self.predict(**inputs)

    async def aforward(self, **inputs: Any) -> Prediction:
        return await self.predict.acall(**inputs)

    def __call__(self, **inputs: Any) -> Prediction:
        if current().callbacks:
            return super().__call__(**inputs)  # traced (when watched): a module run around the predictor run
        return self.predict(**inputs)

    async def acall(self, **inputs: Any) -> Prediction:
        if current().callbacks:
            return await super().acall(**inputs)
        return await self.predict.acall(**inputs)

    def stream(self, **inputs: Any) -> Iterator[StreamEvent]:
        """The reasoning's deltas first, then the answer's fields (see ``Predict.stream``)."""
        return self._as_run(inputs, self.predict._events(inputs, "predict"), traced_events)

    def astream(self, **inputs: Any) -> AsyncIterator[StreamEvent]:
        """The async twin of ``stream``."""
        return self._as_run(inputs, self.predict._aevents(inputs, "predict"), atraced_events)

    def _as_run(self, inputs: dict[str, Any], events: E, traced: Callable[[RunScope, E], E]) -> E:
        """``events`` as this module's run when callbacks are installed (around the predictor's run)."""
        callbacks = current().callbacks
        if not callbacks:
            return events
        return traced(start_run("module", type(self).__name__, inputs, callbacks=callbacks), events)
