"""lmbridge.Tool: schema from type hints, validation before the call, errors as ToolError, timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Literal

import pytest

import lmbridge
from lmbridge.agents._tools import render_result, run_sync

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


def add(a: int, b: int = 2) -> int:
    """Add two integers.

    This second paragraph is not part of the description.
    """
    return a + b


async def shout(text: str, times: int = 1) -> str:
    """Upper-case the text."""
    await asyncio.sleep(0)
    return " ".join([text.upper()] * times)


def test_name_description_and_schema_come_from_the_function() -> None:
    tool = lmbridge.Tool(add)
    assert tool.name == "add"
    assert tool.desc == "Add two integers."
    schema = tool.json_schema()
    assert schema["type"] == "object"
    assert schema["required"] == ["a"]
    assert schema["properties"]["a"] == {"type": "integer"}
    assert schema["properties"]["b"]["default"] == 2
    assert list(tool.args) == ["a", "b"]
    assert '"a": integer' in tool.describe() and tool.describe().startswith("add: Add two integers.")


def test_name_and_description_can_be_given() -> None:
    tool = lmbridge.Tool(add, name="plus", desc="Sum.")
    assert (tool.name, tool.desc) == ("plus", "Sum.")
    spec = tool.to_function_spec()
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "plus"
    assert spec["function"]["parameters"]["properties"]["a"]["type"] == "integer"


def test_literal_arguments_show_their_options() -> None:
    def pick(color: Literal["red", "blue"]) -> str:
        return color

    tool = lmbridge.Tool(pick)
    assert tool.args["color"]["enum"] == ["red", "blue"]
    assert '"red" | "blue"' in tool.describe()
    with pytest.raises(lmbridge.ToolError, match="color"):
        tool(color="green")


def test_arguments_are_validated_and_converted_before_the_call() -> None:
    calls: list[tuple[int, int]] = []

    def record(a: int, b: int) -> int:
        calls.append((a, b))
        return a * b

    tool = lmbridge.Tool(record)
    assert tool(a="3", b=4) == 12
    assert calls == [(3, 4)]
    with pytest.raises(lmbridge.ToolError, match="invalid arguments: a"):
        tool(a="three", b=4)
    with pytest.raises(lmbridge.ToolError, match="b: Field required"):
        tool(a=1)
    with pytest.raises(lmbridge.ToolError, match="c: Extra inputs"):
        tool(a=1, b=2, c=3)
    assert calls == [(3, 4)], "a call with invalid arguments must not reach the function"


def test_a_single_required_parameter_takes_a_bare_value() -> None:
    tool = lmbridge.Tool(add)
    assert tool.call_with(5) == 7
    assert tool.call_with({"a": 5, "b": 5}) == 10

    def two(a: int, b: int) -> int:
        return a + b

    with pytest.raises(lmbridge.ToolError, match="takes an object"):
        lmbridge.Tool(two).call_with(5)


def test_an_exception_in_the_tool_becomes_a_tool_error_from_it() -> None:
    def broken(x: int) -> int:
        raise KeyError("no such row")

    with pytest.raises(lmbridge.ToolError, match="tool 'broken' failed: KeyError") as info:
        lmbridge.Tool(broken)(x=1)
    assert isinstance(info.value.__cause__, KeyError)


def test_kwargs_functions_accept_extra_arguments() -> None:
    def anything(**options: int) -> int:
        return sum(options.values())

    assert lmbridge.Tool(anything)(a=1, b=2) == 3


def test_callable_objects_are_tools() -> None:
    class Lookup:
        """Find a value by key."""

        def __call__(self, key: str) -> str:
            return {"a": "alpha"}.get(key, "unknown")

    tool = lmbridge.Tool(Lookup(), name="lookup")
    assert tool.desc == "Find a value by key."
    assert tool(key="a") == "alpha"
    assert tool.args == {"key": {"type": "string"}}


def test_async_tools_run_from_sync_and_async_code() -> None:
    tool = lmbridge.Tool(shout)
    assert tool.is_async
    assert tool(text="hi", times="2") == "HI HI"
    assert asyncio.run(tool.acall(text="yo")) == "YO"
    with pytest.raises(lmbridge.ToolError, match="times"):
        asyncio.run(tool.acall(text="yo", times="many"))


def test_async_tool_is_awaited_on_the_callers_loop() -> None:
    seen: list[bool] = []

    async def probe() -> str:
        seen.append(asyncio.current_task() is not None)
        return "ok"

    async def main() -> str:
        result: str = await lmbridge.Tool(probe).acall()
        return result

    assert asyncio.run(main()) == "ok"
    assert seen == [True]


def test_sync_tool_times_out() -> None:
    release = threading.Event()

    def slow() -> str:
        release.wait(5)
        return "late"

    tool = lmbridge.Tool(slow, timeout=0.05)
    try:
        with pytest.raises(lmbridge.ToolError, match=r"timed out after 0\.05"):
            tool()
    finally:
        release.set()


def test_async_tool_times_out() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    tool = lmbridge.Tool(slow, timeout=0.05)
    with pytest.raises(lmbridge.ToolError, match="timed out"):
        asyncio.run(tool.acall())
    with pytest.raises(lmbridge.ToolError, match="timed out"):
        tool()


def test_tool_threads_see_the_callers_context() -> None:
    def read() -> str:
        return f"{marker.get()} {lmbridge.current().num_threads}"

    token = marker.set("caller")
    try:
        with lmbridge.context(num_threads=3):
            assert lmbridge.Tool(read, timeout=5)() == "caller 3"
            assert asyncio.run(lmbridge.Tool(read).acall()) == "caller 3"
    finally:
        marker.reset(token)


def test_render_result_and_run_sync() -> None:
    assert render_result("text") == "text"
    assert render_result({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert render_result(3.5) == "3.5"

    async def value() -> int:
        return 4

    assert run_sync(value()) == 4

    async def inside_a_loop() -> int:
        return run_sync(value())  # a running loop in this thread: runs on a helper thread

    assert asyncio.run(inside_a_loop()) == 4


def test_a_tool_needs_a_callable() -> None:
    with pytest.raises(TypeError):
        lmbridge.Tool("not callable")  # type: ignore[arg-type]


def test_no_timeout_runs_in_the_calling_thread() -> None:
    ident: list[int] = []

    def where() -> None:
        ident.append(threading.get_ident())

    lmbridge.Tool(where, timeout=None)()
    assert ident == [threading.get_ident()]


def test_copies_of_an_agent_share_their_tools() -> None:
    agent = lmbridge.ReAct("question -> answer", tools=[add])
    copy = agent.deepcopy()
    assert isinstance(copy, lmbridge.ReAct)
    assert copy.tools["add"] is agent.tools["add"]
    assert copy.react is not agent.react


# -- issue 9: a tool the provider or the validator cannot take is a ToolError when built ------------------

def test_an_unresolvable_hint_is_an_error_when_built_not_a_silent_loss_of_validation() -> None:
    def f(a: int, b: Undefined) -> int:  # type: ignore[name-defined]  # noqa: F821
        return a

    # Was: every hint dropped, so `a: int` received the string '12'.
    with pytest.raises(lmbridge.ToolError, match=r"'b'.*Undefined"):
        lmbridge.Tool(f)


def test_an_unresolvable_return_hint_does_not_drop_argument_validation() -> None:
    seen: list[object] = []

    def f(a: int) -> Undefined:  # type: ignore[name-defined]  # noqa: F821
        seen.append(a)

    tool = lmbridge.Tool(f)
    tool(a="12")
    assert seen == [12]
    with pytest.raises(lmbridge.ToolError, match="a"):
        tool(a="twelve")


@pytest.mark.parametrize("name", ["<lambda>", "my tool!", "", "x" * 65, "naïve"])
def test_names_providers_reject_are_an_error_when_built(name: str) -> None:
    with pytest.raises(lmbridge.ToolError, match="name"):
        lmbridge.Tool(add, name=name)


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(lmbridge.ToolError, match="name="):
        lmbridge.Tool(lambda x: x)
    assert lmbridge.Tool(lambda x: x, name="echo")(x=3) == 3


def test_an_argument_of_an_arbitrary_class_is_an_error_when_built() -> None:
    class Connection:
        pass

    def query(conn: Connection, sql: str) -> str:
        return sql

    # Was: built, and then json_schema() raised a pydantic error on the first prompt.
    with pytest.raises(lmbridge.ToolError, match=r"'conn'.*Connection"):
        lmbridge.Tool(query)
