"""Tools: plain Python callables that an agent (``lmbridge.ReAct``) may call.

``Tool(func)`` reads the name from the function, the description from its docstring, and the JSON
schema of the arguments from its type hints (through pydantic). Arguments are validated before the
call. Sync and async functions are both accepted, and each call has a timeout. Whatever goes wrong
in a call (bad arguments, an exception in the tool, a timeout) comes out as one ``ToolError``,
raised from the original exception, so that an agent can show it to the model and go on.

Tools of other frameworks are taken too: ``ensure_tool`` hands an object whose class comes from a
package with a registered converter (``register_tool_converter``) to that converter. The adapters
register theirs; a framework package listed in ``ADAPTER_MODULES`` has its adapter imported the first
time one of its tools is given, so ``ReAct(tools=[langchain_tool])`` works without importing it first.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import json
import re
import threading
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from lmbridge.errors import ToolError, describe
from lmbridge.tracing import start_run

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what OpenAI, Anthropic and Gemini accept as a function name


class Tool:
    """A callable with a name, a description and a JSON schema of its arguments.

    ``timeout`` is in seconds (None: no limit). A sync tool that times out keeps running in its
    worker thread, since Python cannot stop a thread; its result is then ignored. A tool made with
    ``return_direct=True`` ends a ReAct loop when it succeeds, its result being the answer. ``afunc``
    is an async implementation of a sync ``func``: ``acall`` awaits it, ``__call__`` runs ``func``.
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None, desc: str | None = None, *,
                 timeout: float | None = DEFAULT_TIMEOUT, return_direct: bool = False,
                 afunc: Callable[..., Awaitable[Any]] | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Tool needs a callable, got {type(func).__name__}")
        self.func = func
        self.name: str = name if name is not None else getattr(func, "__name__", None) or type(func).__name__
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ToolError(f"tool name {self.name!r} is not one that model providers accept (1 to 64 letters, "
                            "digits, '_' or '-'); pass Tool(func, name='a_name')")
        self.desc: str = desc if desc is not None else _first_paragraph(inspect.getdoc(func) or "")
        self.timeout = timeout
        self.return_direct = return_direct
        self.is_async: bool = _is_async(func)
        self.afunc = afunc if not self.is_async else None
        self._model, self._accepts_extra = _args_model(func, self.name)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, args={list(self.args)})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Tool:
        return self  # a tool is shared by every copy of a program, like an LM

    # -- description ---------------------------------------------------------------------------
    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments object (``{"type": "object", "properties": ...}``)."""
        schema = typing.cast(dict[str, Any], self._model.model_json_schema())
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    @property
    def args(self) -> dict[str, Any]:
        """The schema of each argument, by name."""
        return typing.cast(dict[str, Any], self.json_schema().get("properties", {}))

    def describe(self) -> str:
        """One line for a prompt: the name, what the tool does and the arguments it takes."""
        shown = ", ".join(f'"{n}": {_type_word(s)}' for n, s in self.args.items())
        text = f"{self.name}: {self.desc}" if self.desc else self.name
        return f"{text} Args: {{{shown}}}"

    def to_function_spec(self) -> dict[str, Any]:
        """The tool in the OpenAI function-calling shape, for models that call tools natively."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.desc, "parameters": self.json_schema()}}

    # -- calling -------------------------------------------------------------------------------
    def validate(self, args: Any) -> dict[str, Any]:
        """Check ``args`` against the schema and return them converted to the hinted types.

        A tool with exactly one required parameter also takes a bare value instead of an object.
        """
        if not isinstance(args, Mapping):
            names = [n for n, f in self._model.model_fields.items() if f.is_required()]
            if len(names) != 1:
                raise ToolError(f"tool {self.name!r} takes an object of arguments {names}, got {args!r}")
            args = {names[0]: args}
        try:
            validated = self._model.model_validate(dict(args))
        except Exception as exc:  # pydantic.ValidationError
            raise ToolError(f"tool {self.name!r}: invalid arguments: {_short_validation(exc)}") from exc
        values = {n: getattr(validated, n) for n in self._model.model_fields}
        if self._accepts_extra and validated.model_extra:
            values.update(validated.model_extra)
        return values

    def __call__(self, **kwargs: Any) -> Any:
        """Validate the arguments and run the tool (an async tool on an event loop of its own)."""
        return self.call_with(kwargs)

    async def acall(self, **kwargs: Any) -> Any:
        """Validate the arguments and run the tool: awaited when async, on a worker thread when sync."""
        return await self.acall_with(kwargs)

    def call_with(self, args: Any) -> Any:
        """``__call__`` with the arguments as one object (or a bare value, see ``validate``)."""
        with start_run("tool", self.name, _shown(args), metadata={"description": self.desc}) as run:
            result = self._call_with(args)
            run.end(result)
        return result

    async def acall_with(self, args: Any) -> Any:
        """``acall`` with the arguments as one object (or a bare value, see ``validate``)."""
        with start_run("tool", self.name, _shown(args), metadata={"description": self.desc}) as run:
            result = await self._acall_with(args)
            run.end(result)
        return result

    def _call_with(self, args: Any) -> Any:
        values = self.validate(args)
        if self.timeout is None and not self.is_async:
            return self._invoke(values)
        return run_in_thread(lambda: self._invoke_blocking(values), self.timeout, what=f"tool {self.name!r}")

    async def _acall_with(self, args: Any) -> Any:
        values = self.validate(args)
        if self.is_async or self.afunc is not None:
            work: Awaitable[Any] = self._ainvoke(values)
        else:
            work = asyncio.to_thread(self._invoke, values)
        try:
            return await asyncio.wait_for(work, self.timeout)
        except asyncio.TimeoutError as exc:
            raise ToolError(f"tool {self.name!r} timed out after {self.timeout} s") from exc

    def _invoke(self, values: dict[str, Any]) -> Any:
        try:
            return self.func(**values)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"tool {self.name!r} failed: {describe(exc)}") from exc

    def _invoke_blocking(self, values: dict[str, Any]) -> Any:
        if self.is_async:
            return asyncio.run(self._ainvoke(values))
        return self._invoke(values)

    async def _ainvoke(self, values: dict[str, Any]) -> Any:
        try:
            return await (self.afunc or self.func)(**values)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"tool {self.name!r} failed: {describe(exc)}") from exc


def _shown(args: Any) -> Mapping[str, Any]:
    """The arguments as the tool run's start event shows them."""
    return args if isinstance(args, Mapping) else {"input": args}


ToolConverter = Callable[[Any], Tool]
"""Turns a tool object of another framework into a ``Tool``."""

ADAPTER_MODULES: dict[str, str] = {
    "langchain_core": "lmbridge.adapters.langchain._tools",
    "llama_index": "lmbridge.adapters.llamaindex._tools",
}
"""Framework packages whose tools an adapter converts, and the adapter module that registers it."""

_converters: dict[str, ToolConverter] = {}


def register_tool_converter(package: str, convert: ToolConverter) -> None:
    """Convert the tools whose class comes from ``package`` (a top-level package name) with ``convert``."""
    _converters[package] = convert


def _converter_for(tool: Any) -> ToolConverter | None:
    for cls in type(tool).__mro__:
        package = cls.__module__.partition(".")[0]
        if package not in _converters and package in ADAPTER_MODULES:
            importlib.import_module(ADAPTER_MODULES[package])  # registers its converter
        if package in _converters:
            return _converters[package]
    return None


def ensure_tool(tool: Any) -> Tool:
    """A Tool as is; a tool of another framework converted (see ``register_tool_converter``); any
    other callable wrapped in a Tool."""
    if isinstance(tool, Tool):
        return tool
    convert = _converter_for(tool)
    return convert(tool) if convert is not None else Tool(tool)


def run_in_thread(work: Callable[[], T], timeout: float | None, *, what: str = "call") -> T:
    """Run ``work`` on a daemon thread that sees the caller's context; wait at most ``timeout`` s.

    On a timeout a ``ToolError`` is raised and the thread is left to finish on its own.
    """
    future: Future[T] = Future()
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(ctx.run(work))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=f"bridge-{what}", daemon=True).start()
    try:
        return future.result(timeout)
    except FutureTimeout as exc:  # the builtin TimeoutError only from Python 3.11 on
        raise ToolError(f"{what} timed out after {timeout} s") from exc


def run_sync(awaitable: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    return run_in_thread(lambda: asyncio.run(awaitable), None, what="coroutine")


def render_result(value: Any) -> str:
    """A tool's result as observation text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


# -- the pieces of Tool --------------------------------------------------------------------------

def _is_async(func: Callable[..., Any]) -> bool:
    call = getattr(func, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def _args_model(func: Callable[..., Any], name: str) -> tuple[Any, bool]:
    """The pydantic model of the arguments. Every parameter's hint must resolve and have a JSON
    schema: a ToolError here, when the tool is built, names the parameter that does not."""
    from pydantic import ConfigDict, create_model

    target = func if inspect.isfunction(func) or inspect.ismethod(func) else getattr(func, "__call__", func)  # noqa: B004
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"tool {name!r}: cannot read the parameters of {func!r}") from exc
    hints = _parameter_hints(target, list(sig.parameters), name)
    fields: dict[str, Any] = {}
    extra = False
    for pname, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = True
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    config = ConfigDict(extra="allow" if extra else "forbid")
    try:
        model = create_model(f"{name}_args", __config__=config, **fields)
        model.model_json_schema()
    except Exception as exc:  # pydantic's schema errors: a type with no JSON schema or no validator
        bad = [p for p, (a, _) in fields.items() if not _has_schema(a)]
        which = (f"argument {bad[0]!r} has type {hints.get(bad[0])!r}, which" if bad
                 else f"its arguments ({describe(exc)})")
        raise ToolError(f"tool {name!r}: {which} cannot be described to a model as JSON; use JSON types "
                        "(str, int, float, bool, list, dict, Literal, Enum, a pydantic model)") from exc
    return model, extra


def _parameter_hints(target: Any, params: list[str], name: str) -> dict[str, Any]:
    """The resolved type hints of the parameters. A hint that cannot be resolved (a name that is
    not importable where the function lives) is a ToolError: dropping it would let any value in."""
    try:
        return typing.get_type_hints(target)
    except Exception:  # a hint does not resolve: find which, below
        pass
    raw = dict(getattr(target, "__annotations__", None) or {})
    globalns = getattr(inspect.unwrap(target) if inspect.isfunction(target) else target, "__globals__", {})
    hints: dict[str, Any] = {}
    for pname in params:
        if pname not in raw:
            continue
        holder = types.SimpleNamespace(__annotations__={pname: raw[pname]})
        try:
            hints.update(typing.get_type_hints(holder, globalns=globalns))
        except Exception as exc:
            raise ToolError(f"tool {name!r}: the type hint of argument {pname!r} ({raw[pname]!r}) cannot be "
                            f"resolved: {describe(exc)}") from exc
    return hints


def _has_schema(annotation: Any) -> bool:
    from pydantic import TypeAdapter

    try:
        TypeAdapter(annotation).json_schema()
    except Exception:
        return False
    return True


def _type_word(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    options = schema.get("anyOf")
    if isinstance(options, list):
        return " | ".join(_type_word(o) for o in options if isinstance(o, Mapping))
    return "any"


def _short_validation(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return describe(exc)
    parts = []
    for err in errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


__all__ = ["ADAPTER_MODULES", "DEFAULT_TIMEOUT", "Tool", "ToolConverter", "ensure_tool", "register_tool_converter",
           "render_result", "run_in_thread", "run_sync"]
