"""A bridge program as a LangChain Runnable: ``to_runnable(program)``.

``ProgramRunnable`` is a ``RunnableSerializable``, so everything LangChain builds on a Runnable
works on it: ``invoke`` / ``ainvoke`` / ``batch`` / ``abatch`` (``max_concurrency`` honoured),
``stream`` / ``astream`` / ``astream_events``, ``|`` on either side, ``with_config``,
``with_retry``, ``with_fallbacks``, ``configurable_fields`` (its ``lm`` and ``temperature``) and
``as_tool``. Its input and output schemas are pydantic models of the signature's fields, and an
input is validated against them before any model is called.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.output_parsers import BaseOutputParser, JsonOutputParser
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSequence, RunnableSerializable
from langchain_core.runnables.base import coerce_to_runnable
from pydantic import ConfigDict, PrivateAttr

from lmbridge import BaseLM, InputError, Module, Prediction, Signature
from lmbridge.adapters.langchain._schema import (
    DocumentFormatter,
    default_document_text,
    input_model,
    output_model,
    program_signature,
    read_inputs,
)

OutputShape = Literal["dict", "text", "json"]


@dataclass(frozen=True)
class _Known:
    signature: type[Signature] | None
    fields: dict[str, Any] | None
    """The input fields' types, when known."""
    input_model: type[Any] | None
    output_model: type[Any] | None
    label: str
    """How errors name the program: its class and signature."""


def to_runnable(program: Module, *, input_key: str | None = None, output_key: str | None = None,
                name: str | None = None, signature: type[Signature] | None = None, include_usage: bool = False,
                document_text: DocumentFormatter | None = None) -> Runnable[Any, Any]:
    """The program as a LangChain ``Runnable`` (a ``ProgramRunnable``), for LCEL chains.

    It takes a dict of the program's input fields and returns a dict of its output fields. A bare
    value (a string, a prompt value, a message, a Document or a list of Documents) is taken as
    ``input_key``, or as the only input field of a one-input signature. Documents become passage
    texts (``document_text``, default: the content, then short metadata in parentheses).
    ``output_key`` returns that one output's value; ``include_usage`` adds a ``usage`` entry.
    ``signature`` names the program's signature when it cannot be read from the program.
    Piped straight into an output parser (``to_runnable(p) | StrOutputParser()``), it hands the
    parser its main output as text, or all outputs as JSON for a JSON parser.
    """
    if not isinstance(program, Module):
        raise TypeError(f"to_runnable needs a bridge Module, got {type(program).__name__}")
    return ProgramRunnable(program=program, input_key=input_key, output_key=output_key, name=name,
                           signature=signature, include_usage=include_usage, document_text=document_text)


class ProgramRunnable(RunnableSerializable[Any, Any]):
    """A bridge program as a LangChain Runnable (see ``to_runnable``)."""

    program: Any
    """The bridge Module that runs."""
    input_key: str | None = None
    output_key: str | None = None
    signature: Any = None
    include_usage: bool = False
    document_text: Any = None
    lm: Any = None
    """An LM for every predictor of the program (a bridge LM or a LangChain chat model);
    None keeps each predictor's own. Configurable: ``configurable_fields(lm=...)``."""
    temperature: float | None = None
    """A sampling temperature for every predictor; None keeps theirs. Configurable."""
    shape: OutputShape = "dict"
    """What ``invoke`` returns: the output dict, the main output's text, or all outputs as JSON."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _configured: Module | None = PrivateAttr(default=None)
    _known: _Known | None = PrivateAttr(default=None)

    # -- what it is ---------------------------------------------------------------------------
    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        base = name or self.name or f"lmbridge.{type(self.program).__name__}"
        return f"{base}{suffix}" if suffix else base

    def _facts(self) -> _Known:
        """What the runnable knows of its program, worked out once (the program's fields do not change)."""
        if self._known is None:
            sig = program_signature(self.program, self.signature)
            name = self._schema_name
            model = input_model(self.program, sig, name)
            fields = {n: f.annotation for n, f in sig.input_fields.items()} if sig is not None else \
                {n: f.annotation for n, f in model.model_fields.items()} if model is not None else None
            label = f"{type(self.program).__name__} ({sig.spec()})" if sig is not None else type(self.program).__name__
            self._known = _Known(sig, fields, model, output_model(sig, name, usage=self.include_usage), label)
        return self._known

    @property
    def _signature(self) -> type[Signature] | None:
        return self._facts().signature

    @property
    def _label(self) -> str:
        return self._facts().label

    @property
    def _schema_name(self) -> str:
        return "".join(ch for ch in self.get_name().title() if ch.isalnum()) or "Program"

    @property
    def InputType(self) -> Any:
        model = self._facts().input_model
        return model if model is not None else dict[str, Any]

    @property
    def OutputType(self) -> Any:
        if self.shape != "dict":
            return str
        sig = self._signature
        if self.output_key is not None:
            return sig.output_fields[self.output_key].annotation if sig is not None and \
                self.output_key in sig.output_fields else Any
        model = self._facts().output_model
        return model if model is not None else dict[str, Any]

    # -- one call ---------------------------------------------------------------------------
    def _module(self) -> Module:
        if self.lm is None and self.temperature is None:
            return self.program  # type: ignore[no-any-return]
        if self._configured is None:
            self._configured = _configure(self.program, self.lm, self.temperature)
        return self._configured

    def _inputs(self, value: Any) -> dict[str, Any]:
        facts = self._facts()
        return read_inputs(value, where=facts.label, fields=facts.fields, model=facts.input_model,
                           input_key=self.input_key,
                           write_document=self.document_text or default_document_text)

    def _outputs(self, prediction: Any) -> Any:
        values = prediction.to_dict() if isinstance(prediction, Prediction) else prediction
        if not isinstance(values, Mapping):
            return values
        if self.shape == "json":
            from lmbridge.signatures import to_jsonable

            return json.dumps(to_jsonable(dict(values)), ensure_ascii=False)
        if self.shape == "text":
            return _as_text(values[self._main_output(values)])
        if self.output_key is not None:
            if self.output_key not in values:
                raise InputError(f"{self._label} returned no output field {self.output_key!r}; "
                                 f"it returned {sorted(values)}")
            return values[self.output_key]
        out = dict(values)
        if self.include_usage and isinstance(prediction, Prediction):
            out["usage"] = prediction.usage.to_dict()
        return out

    def _main_output(self, values: Mapping[str, Any]) -> str:
        if self.output_key is not None:
            return self.output_key
        sig = self._signature
        names = list(sig.output_fields) if sig is not None else list(values)
        main = [n for n in names if n != "reasoning"]
        if len(main) != 1:
            raise InputError(f"{self._label} has several outputs {main}: pass output_key= to to_runnable "
                             "to say which one an output parser reads")
        return main[0]

    def _invoke(self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        from lmbridge.adapters.langchain._trace import traced

        inputs = self._inputs(value)
        with traced(run_manager, self.program):
            return self._outputs(self._module()(**inputs))

    async def _ainvoke(self, value: Any, run_manager: AsyncCallbackManagerForChainRun,
                       config: RunnableConfig) -> Any:
        from lmbridge.adapters.langchain._trace import traced

        inputs = self._inputs(value)
        with traced(run_manager, self.program):
            return self._outputs(await self._module().acall(**inputs))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    # -- streaming ----------------------------------------------------------------------------
    def _transform(self, chunks: Iterator[Any], run_manager: CallbackManagerForChainRun,
                   config: RunnableConfig) -> Iterator[Any]:
        from lmbridge.adapters.langchain._stream import stream_program
        from lmbridge.adapters.langchain._trace import traced

        inputs = self._inputs(_last(chunks))
        with traced(run_manager, self.program):
            yield from stream_program(self, self._module(), inputs)

    async def _atransform(self, chunks: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun,
                          config: RunnableConfig) -> AsyncIterator[Any]:
        from lmbridge.adapters.langchain._stream import astream_program
        from lmbridge.adapters.langchain._trace import traced

        value = None
        async for value in chunks:  # noqa: B007 - the last chunk is the input
            pass
        inputs = self._inputs(value)
        with traced(run_manager, self.program):
            async for item in astream_program(self, self._module(), inputs):
                yield item

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def atransform(self, input: AsyncIterator[Any], config: RunnableConfig | None = None,
                         **kwargs: Any) -> AsyncIterator[Any]:
        async for item in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield item

    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for item in self.atransform(one(), config, **kwargs):
            yield item

    # -- composition ----------------------------------------------------------------------
    def _for_parser(self, parser: Any) -> ProgramRunnable:
        """This runnable shaped for ``parser`` after it: the main output's text, or JSON for a JSON parser."""
        if self.shape != "dict" or self.output_key is not None:
            return self
        return self.model_copy(update={"shape": "json" if isinstance(parser, JsonOutputParser) else "text"})

    def __or__(self, other: Any) -> Any:
        if isinstance(other, BaseOutputParser):
            return Runnable.__or__(self._for_parser(other), other)
        return super().__or__(other)

    def __ror__(self, other: Any) -> Any:
        return ProgramSequence(coerce_to_runnable(other), self)  # type: ignore[call-arg]

    def as_tool(self, args_schema: Any = None, *, name: str | None = None, description: str | None = None,
                arg_types: dict[str, type] | None = None) -> Any:
        """LangChain's ``as_tool`` (a beta API there), named and described from the signature."""
        import warnings

        from langchain_core._api import LangChainBetaWarning

        sig = self._signature
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangChainBetaWarning)
            return super().as_tool(args_schema, name=name or tool_name(self.get_name()),
                                   description=description or (sig.instructions if sig is not None else None),
                                   arg_types=arg_types)



class ProgramSequence(RunnableSequence):  # type: ignore[type-arg]
    """``step | program``: a sequence that shapes the program's output for an output parser piped
    after it (``{...} | program | StrOutputParser()``), as ``program | parser`` does."""

    def __or__(self, other: Any) -> Any:
        if isinstance(self.last, ProgramRunnable) and isinstance(other, BaseOutputParser):
            return RunnableSequence(self.first, *self.middle, self.last._for_parser(other), other)
        return super().__or__(other)


def tool_name(name: str) -> str:
    """``name`` with every character a provider refuses in a tool name replaced by ``_``."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)
    return cleaned[:64] or "program"


def _as_text(value: Any) -> str:
    from lmbridge.signatures import render

    return render(value)


def _last(chunks: Iterator[Any]) -> Any:
    value = None
    for value in chunks:  # noqa: B007 - the last chunk is the input
        pass
    return value


def _configure(program: Module, lm: Any, temperature: float | None) -> Module:
    """A copy of ``program`` whose predictors all use ``lm`` and ``temperature`` where given."""
    copy = program.deepcopy()
    resolved = as_bridge_lm(lm) if lm is not None else None
    for predictor in copy.predictors():
        if resolved is not None:
            predictor.lm = resolved
        if temperature is not None:
            predictor.lm_params = {**predictor.lm_params, "temperature": temperature}
    return copy


def as_bridge_lm(lm: Any) -> BaseLM:
    """A bridge LM as is; a LangChain chat or text model (or a wrapped one) as a ``LangChainLM``."""
    if isinstance(lm, BaseLM):
        return lm
    from lmbridge.adapters.langchain._lm import LangChainLM

    return LangChainLM(lm)


__all__ = ["as_bridge_lm", "to_runnable", "tool_name"]
