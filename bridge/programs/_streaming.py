"""Streaming a program's outputs as typed events, field by field, while the model writes them.

``Predict.stream(**inputs)`` (and ``astream``) yield, in order:

* ``FieldDelta(predictor, field, delta)``: new text of an output field, as it is written;
* ``FieldValue(predictor, field, value)``: a field's typed value, as soon as its text is complete
  (the next field has begun, or the answer ended);
* ``ParseRetry(predictor, error)``: the answer did not parse and is re-asked; the fields of that
  predictor start over, and the re-asked answer streams the same way;
* ``StreamEnd(prediction)``: last, the ``Prediction`` the call returns.

The text is read incrementally by the prompt format (``PromptFormat.partial``): ChatFormat by its
field labels, JSONFormat by partial JSON. A value is read the way ``parse`` reads the whole answer;
the ``StreamEnd`` prediction is the authority, and a field whose early value differs from it (a
chatty model wrote a preamble before the label) gets a second ``FieldValue``.

``lmbridge.streamify(program)`` turns any module into an async generator of these events: each
predictor the program runs streams under its name in the program (``"generate.predict"``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union
from weakref import WeakKeyDictionary

from lmbridge.errors import ParseError
from lmbridge.settings import context, current
from lmbridge.tracing import Callback, RunScope

if TYPE_CHECKING:
    from lmbridge.formats import PromptFormat
    from lmbridge.programs._module import Module
    from lmbridge.signatures import Signature
    from lmbridge.types import Prediction


@dataclass(frozen=True, slots=True)
class FieldDelta:
    """New text of an output field, in the order written."""

    predictor: str
    """The predictor's name in the program (``"self"`` for a Predict streamed on its own)."""
    field: str
    delta: str


@dataclass(frozen=True, slots=True)
class FieldValue:
    """The typed value of an output field, sent as soon as its text is complete."""

    predictor: str
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class ParseRetry:
    """The predictor's answer did not parse: it is re-asked, and its fields stream again."""

    predictor: str
    error: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event: the ``Prediction`` the call returns."""

    prediction: Prediction


StreamEvent = Union[FieldDelta, FieldValue, ParseRetry, StreamEnd]


class FieldParser:
    """Turns the text of one answer, fed in deltas, into field events (the pure core of streaming).

    ``prefix`` is text that goes before the answer (the first answer, when a re-ask asks only for
    a missing field and the two are read together).
    """

    def __init__(self, fmt: PromptFormat, signature: type[Signature], predictor: str, prefix: str = "") -> None:
        self.fmt = fmt
        self.signature = signature
        self.predictor = predictor
        self.text = prefix
        self._shown: dict[str, str] = {}
        self._stuck: set[str] = set()
        self._values: dict[str, Any] = {}
        self._complete = 0

    def feed(self, delta: str) -> list[StreamEvent]:
        """Events for ``delta``, the next piece of the answer."""
        self.text += delta
        partial = self.fmt.partial(self.signature, self.text)
        events: list[StreamEvent] = []
        for name, text in partial.texts.items():
            shown = self._shown.get(name, "")
            if name in self._stuck or len(text) <= len(shown):
                continue
            if not text.startswith(shown):
                self._stuck.add(name)  # the text was read differently (a label after a preamble)
                continue
            self._shown[name] = text
            events.append(FieldDelta(self.predictor, name, text[len(shown):]))
        if len(partial.complete) > self._complete:
            self._complete = len(partial.complete)
            events += self._early_values(partial.complete, partial.complete_text)
        return events

    def _early_values(self, names: tuple[str, ...], text: str) -> list[StreamEvent]:
        try:
            values = self.fmt.parse(only_outputs(self.signature, names), text)
        except ParseError:
            return []  # read at the end, with the whole answer
        events: list[StreamEvent] = []
        for name in names:
            if name in values and name not in self._values:
                self._values[name] = values[name]
                events.append(FieldValue(self.predictor, name, values[name]))
        return events

    def close(self, values: Mapping[str, Any]) -> list[StreamEvent]:
        """The remaining ``FieldValue`` events, from the values of the whole answer."""
        events: list[StreamEvent] = []
        for name in self.signature.output_fields:
            if name in values and (name not in self._values or self._values[name] != values[name]):
                self._values[name] = values[name]
                events.append(FieldValue(self.predictor, name, values[name]))
        return events


_subsets: WeakKeyDictionary[type[Signature], dict[tuple[str, ...], type[Signature]]] = WeakKeyDictionary()


def only_outputs(signature: type[Signature], names: tuple[str, ...]) -> type[Signature]:
    """``signature`` with only the output fields ``names`` (kept in the signature's order); cached."""
    wanted = tuple(n for n in signature.output_fields if n in names)
    cache = _subsets.setdefault(signature, {})
    subset = cache.get(wanted)
    if subset is None:
        subset = signature
        for name in signature.output_fields:
            if name not in wanted:
                subset = subset.delete(name)
        cache[wanted] = subset
    return subset


# -- streaming a whole program ------------------------------------------------------------------------
class StreamSink(Callback):
    """Installed (as a callback) by ``streamify``: a Predict that finds it streams its answer and
    hands the events here, under its name in the program. Thread-safe."""

    def __init__(self, names: Mapping[int, str], put: Callable[[StreamEvent], None]) -> None:
        self.names = names
        self.put = put

    def name_of(self, predictor: object) -> str:
        return self.names.get(id(predictor), type(predictor).__name__)


def find_sink(callbacks: tuple[Callback, ...]) -> StreamSink | None:
    """The ``StreamSink`` among the installed callbacks, if a program is being streamified."""
    for callback in callbacks:
        if isinstance(callback, StreamSink):
            return callback
    return None


def streamify(program: Module) -> Callable[..., AsyncIterator[StreamEvent]]:
    """Turn ``program`` into an async generator function: ``streamify(program)(**inputs)`` yields the
    field events of each predictor as it runs, then ``StreamEnd`` with the program's Prediction.

    Works for any module, sync or async: a sync ``forward`` runs on a worker thread that sees the
    caller's settings. Errors of the program are raised from the generator.
    """
    names = {id(p): name for name, p in program.named_predictors()}

    async def run(**inputs: Any) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

        def put(event: StreamEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        sink = StreamSink(names, put)

        async def call() -> Prediction:
            try:
                with context(callbacks=[*current().callbacks, sink]):
                    return await program.acall(**inputs)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.ensure_future(call())
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                yield event
            yield StreamEnd(await task)
        finally:
            if not task.done():
                task.cancel()

    return run


# -- tracing a stream ---------------------------------------------------------------------------------
def traced_events(scope: RunScope, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    """``events`` as the run ``scope``: its parent while each event is made, ended with the prediction."""
    try:
        for event in scope.each(events):
            if isinstance(event, StreamEnd):
                scope.end(event.prediction)
            yield event
    except BaseException as error:
        scope.error(error)
        raise


async def atraced_events(scope: RunScope, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """The async twin of ``traced_events``."""
    try:
        async for event in scope.aeach(events):
            if isinstance(event, StreamEnd):
                scope.end(event.prediction)
            yield event
    except BaseException as error:
        scope.error(error)
        raise
