"""Bridge programs out, into LlamaIndex: as a query engine and as an agent tool.

* ``to_query_engine(program)``: a LlamaIndex ``BaseQueryEngine``. ``query`` / ``aquery`` run the
  program on the query text and return a ``Response`` whose text is the answer field, whose
  ``source_nodes`` are the nodes the program retrieved (with their scores), and whose
  ``metadata["outputs"]`` holds every output field as the program typed it.
* ``to_llamaindex_tool(program)``: a ``FunctionTool`` whose argument schema is the program's input
  fields (types and descriptions), for ``FunctionAgent`` and ``ReActAgent``.

A program in a LlamaIndex ``Workflow`` step needs no wrapper: ``await program.acall(...)`` in an
async step never blocks the event loop (see docs/llamaindex.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from lmbridge import (
    Callback,
    FieldDelta,
    Module,
    Passage,
    Prediction,
    Run,
    Signature,
    StreamEnd,
    context,
    current,
    streamify,
)
from lmbridge.adapters.llamaindex._nodes import collect_nodes, require_llamaindex, to_node

T = TypeVar("T")

if TYPE_CHECKING:
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.schema import NodeWithScore
    from llama_index.core.tools import FunctionTool

SKIPPED_OUTPUTS = ("reasoning",)
"""Output fields never chosen as the answer text by default (ChainOfThought's reasoning)."""


# -- what a program takes and gives ---------------------------------------------------------------

def program_signature(program: Module) -> type[Signature] | None:
    """The signature that describes the program's inputs and outputs: its own ``signature``
    (Predict, ReAct), else that of its only predictor (ChainOfThought), else None."""
    own = getattr(program, "signature", None)
    if isinstance(own, type) and issubclass(own, Signature):
        return own
    predictors = program.predictors()
    return predictors[0].signature if len(predictors) == 1 else None


def program_inputs(program: Module) -> dict[str, tuple[Any, str]]:
    """The program's inputs as ``{name: (type, description)}``: the named parameters of its
    ``forward`` when it declares them, else its signature's input fields."""
    params = [p for p in inspect.signature(program.forward).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if params:
        try:
            hints = typing.get_type_hints(program.forward)
        except Exception:
            hints = {}
        return {p.name: (hints.get(p.name, Any), "") for p in params}
    signature = program_signature(program)
    if signature is None:
        raise TypeError(f"cannot tell the inputs of {type(program).__name__}: give its forward named parameters")
    return {n: (f.annotation, f.desc) for n, f in signature.input_fields.items()}


def _answer_key(program: Module, prediction: Prediction, output_key: str | None) -> str:
    if output_key is not None:
        if output_key not in prediction:
            raise KeyError(f"{type(program).__name__} returned no output field {output_key!r}")
        return output_key
    signature = program_signature(program)
    names = list(signature.output_fields) if signature is not None else list(prediction)
    names = [n for n in names if n in prediction and n not in SKIPPED_OUTPUTS] or list(prediction)
    if not names:
        raise KeyError(f"{type(program).__name__} returned no output field")
    return "answer" if "answer" in names else names[0]


def outputs_of(prediction: Prediction) -> dict[str, Any]:
    """The prediction's values, without the Passage objects a Retrieve adds."""
    return {k: v for k, v in prediction.items() if k != "passage_objects"}


# -- the query engine --------------------------------------------------------------------------------

def to_query_engine(program: Module, *, input_key: str | None = None, output_key: str | None = None,
                    inputs: Mapping[str, Any] | None = None, streaming: bool = False) -> BaseQueryEngine:
    """The program as a LlamaIndex query engine (a ``BaseQueryEngine``).

    The query text goes to ``input_key`` (default: the program's only input, with ``inputs`` giving
    fixed values for the others). The response text is ``output_key`` (default: ``answer`` when
    there is one, else the first output other than ``reasoning``).

    With ``streaming=True``, ``query`` returns a ``StreamingResponse`` (``aquery`` an
    ``AsyncStreamingResponse``) whose ``response_gen`` yields the answer field's text as the model
    writes it (``lmbridge.streamify``); its ``source_nodes`` are filled as the program retrieves, and
    its ``metadata`` (outputs, usage) when the program ends.
    """
    require_llamaindex()
    if not isinstance(program, Module):
        raise TypeError(f"to_query_engine needs a bridge Module, got {type(program).__name__}")
    fixed = dict(inputs or {})
    free = [n for n in program_inputs(program) if n not in fixed]
    if input_key is None:
        if len(free) != 1:
            raise TypeError(f"{type(program).__name__} takes inputs {free}: pass input_key= (and inputs= for the "
                            "others) to to_query_engine")
        input_key = free[0]
    engine: BaseQueryEngine = _engine_class()(program, input_key, output_key, fixed, streaming)
    return engine


_ENGINE: Any = None


def _engine_class() -> Any:
    """The query-engine class, made once llama-index-core is imported.

    Longer than 50 lines on purpose: the function is the class body, defined here so that the module
    imports llama-index-core only when a query engine is first made."""
    global _ENGINE
    if _ENGINE is not None:
        return _ENGINE
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
    from llama_index.core.callbacks import CallbackManager

    class ProgramQueryEngine(BaseQueryEngine):  # type: ignore[misc, unused-ignore]
        """A bridge program answering LlamaIndex queries (built by ``to_query_engine``)."""

        def __init__(self, program: Module, input_key: str, output_key: str | None,
                     fixed: dict[str, Any], streaming: bool) -> None:
            super().__init__(callback_manager=CallbackManager([]))
            self.program = program
            self.input_key = input_key
            self.output_key = output_key
            self.fixed = fixed
            self.streaming = streaming

        def __repr__(self) -> str:
            return f"ProgramQueryEngine({type(self.program).__name__})"

        def _get_prompt_modules(self) -> dict[str, Any]:
            return {}

        def _inputs(self, query_bundle: Any) -> dict[str, Any]:
            return {**self.fixed, self.input_key: query_bundle.query_str}

        def _response(self, prediction: Prediction, found: Sources) -> Any:
            key = _answer_key(self.program, prediction, self.output_key)
            return Response(response=str(prediction[key]), source_nodes=found.nodes(),
                            metadata=self._metadata(prediction))

        def _metadata(self, prediction: Prediction) -> dict[str, Any]:
            key = _answer_key(self.program, prediction, self.output_key)
            return {"outputs": outputs_of(prediction), "answer_field": key, "usage": prediction.usage.to_dict()}

        def _streamed(self, query_bundle: Any, nodes: list[NodeWithScore],
                      metadata: dict[str, Any]) -> AsyncGenerator[str, None]:
            """The answer field's deltas; fills ``nodes`` and ``metadata`` as the program runs."""
            events = streamify(self.program)(**self._inputs(query_bundle))
            key = self.output_key or _stream_key(self.program)

            async def deltas() -> AsyncGenerator[str, None]:
                with sources(nodes) as found:
                    async for event in events:
                        if isinstance(event, FieldDelta) and event.field == key:
                            yield event.delta
                        elif isinstance(event, StreamEnd):
                            metadata.update(self._metadata(event.prediction))
                nodes[:] = found.nodes()

            return deltas()

        def _query(self, query_bundle: Any) -> Any:
            if self.streaming:
                nodes: list[NodeWithScore] = []
                metadata: dict[str, Any] = {}
                gen = sync_iter(self._streamed(query_bundle, nodes, metadata))
                return StreamingResponse(response_gen=gen, source_nodes=nodes, metadata=metadata)
            with sources() as found:
                prediction = self.program(**self._inputs(query_bundle))
            return self._response(prediction, found)

        async def _aquery(self, query_bundle: Any) -> Any:
            if self.streaming:
                filled: list[NodeWithScore] = []
                metadata: dict[str, Any] = {}
                agen = self._streamed(query_bundle, filled, metadata)
                return AsyncStreamingResponse(response_gen=agen, source_nodes=filled, metadata=metadata)
            with sources() as found:
                prediction = await self.program.acall(**self._inputs(query_bundle))
            return self._response(prediction, found)

    _ENGINE = ProgramQueryEngine
    return _ENGINE


class Sources(Callback):
    """What a program run retrieved: the LlamaIndex nodes (with their original objects) and the
    passages of every ``Retrieve`` call (bridge retrievers included), in order."""

    def __init__(self, nodes: list[NodeWithScore]) -> None:
        self.llamaindex_nodes = nodes
        self.passages: list[Passage] = []
        self._lock = threading.Lock()

    def on_retriever_end(self, run: Run, passages: Sequence[Passage]) -> None:
        with self._lock:
            self.passages.extend(passages)

    def nodes(self) -> list[NodeWithScore]:
        """The retrieved nodes, each once: LlamaIndex's own where the passage came from one, else a
        node made from the passage."""
        if not self.passages:
            return unique_nodes(self.llamaindex_nodes)
        by_id = {n.node.node_id: n for n in self.llamaindex_nodes}
        return unique_nodes([by_id.get(str(p.metadata.get("node_id"))) or to_node(p) for p in self.passages])


@contextmanager
def sources(nodes: list[NodeWithScore] | None = None) -> Iterator[Sources]:
    """Collect what the program retrieves inside the block (see ``Sources``)."""
    found = Sources([] if nodes is None else nodes)
    with collect_nodes(found.llamaindex_nodes), context(callbacks=[*current().callbacks, found]):
        yield found


def _stream_key(program: Module) -> str:
    signature = program_signature(program)
    names = [n for n in (signature.output_fields if signature is not None else {}) if n not in SKIPPED_OUTPUTS]
    return "answer" if "answer" in names or not names else names[0]


def sync_iter(agen: AsyncIterator[T]) -> Generator[T, None, None]:
    """Iterate an async generator from sync code: it runs on an event loop of its own, on a worker
    thread that sees the caller's context (settings, callbacks), and hands items over a queue."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    ctx = contextvars.copy_context()

    async def pump() -> None:
        try:
            async for item in agen:
                items.put(("item", item))
        except BaseException as exc:
            items.put(("error", exc))
        else:
            items.put(("done", None))

    threading.Thread(target=lambda: ctx.run(asyncio.run, pump()), name="lmbridge-stream", daemon=True).start()
    while True:
        kind, value = items.get()
        if kind == "done":
            return
        if kind == "error":
            raise value
        yield value


def unique_nodes(nodes: list[NodeWithScore]) -> list[NodeWithScore]:
    """``nodes`` in order, each node id once (a multi-hop program may retrieve a node twice)."""
    seen: set[str] = set()
    kept = []
    for n in nodes:
        if n.node.node_id not in seen:
            seen.add(n.node.node_id)
            kept.append(n)
    return kept


# -- the tool -------------------------------------------------------------------------------------

def to_llamaindex_tool(program: Module, *, name: str | None = None, description: str | None = None,
                       output_key: str | None = None, return_direct: bool = False) -> FunctionTool:
    """The program as a LlamaIndex ``FunctionTool`` for agents (``FunctionAgent``, ``ReActAgent``).

    The argument schema is a pydantic model of the program's input fields, with their types and
    descriptions. The tool returns the answer field (``output_key``, chosen as in
    ``to_query_engine``) when the program has one answer, else a dict of the outputs. Sync calls run
    ``program(...)``, async calls ``program.acall(...)``.
    """
    require_llamaindex()
    from llama_index.core.tools import FunctionTool, ToolMetadata
    from pydantic import Field, create_model

    if not isinstance(program, Module):
        raise TypeError(f"to_llamaindex_tool needs a bridge Module, got {type(program).__name__}")
    tool_name = name or _snake(type(program).__name__)
    signature = program_signature(program)
    desc = description or (signature.instructions if signature is not None else "") or \
        (inspect.getdoc(program) or f"Run the {tool_name} program.")
    fields: dict[str, Any] = {n: (kind, Field(description=d or None))
                              for n, (kind, d) in program_inputs(program).items()}
    schema = create_model(f"{tool_name}_args", **fields)

    def result(prediction: Prediction) -> Any:
        if output_key is not None or signature is None or len(
                [n for n in signature.output_fields if n not in SKIPPED_OUTPUTS]) == 1:
            return prediction[_answer_key(program, prediction, output_key)]
        return {k: v for k, v in outputs_of(prediction).items() if k not in SKIPPED_OUTPUTS}

    def run(**kwargs: Any) -> Any:
        return result(program(**kwargs))

    async def arun(**kwargs: Any) -> Any:
        return result(await program.acall(**kwargs))

    metadata = ToolMetadata(name=tool_name, description=desc, fn_schema=schema, return_direct=return_direct)
    tool: FunctionTool = FunctionTool(fn=run, async_fn=arun, metadata=metadata)
    return tool


def _snake(name: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out or "program"


__all__ = ["SKIPPED_OUTPUTS", "Sources", "outputs_of", "program_inputs", "program_signature", "sources", "sync_iter",
           "to_llamaindex_tool", "to_query_engine", "unique_nodes"]
