"""LangChain's own standard test suites (``langchain-tests``) on what lmbridge exports:
``ToolsUnitTests`` and ``ToolsIntegrationTests`` on ``to_langchain_tool(program)``, for a Predict
with typed inputs and for a ChainOfThought. The programs answer through bridge ScriptedLMs."""

from __future__ import annotations

from typing import Any

import pytest

import lmbridge
from lmbridge.testing import ScriptedLM

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")
pytest.importorskip("pytest_asyncio")  # runs the suites' async tests (asyncio_mode = "auto" in pyproject.toml)

from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from lmbridge.adapters.langchain import to_langchain_tool


class Forecast(lmbridge.Signature):
    """Forecast tomorrow's weather for a city."""

    city: str = lmbridge.InputField(desc="the city name")
    days: int = lmbridge.InputField(desc="how many days ahead")
    unit: str = lmbridge.InputField(desc="C or F")
    summary: str = lmbridge.OutputField()
    high: int = lmbridge.OutputField()


def forecast_tool() -> BaseTool:
    lm = ScriptedLM(lambda messages: {"summary": "Sunny and mild.", "high": 21})
    return to_langchain_tool(lmbridge.Predict(Forecast, lm=lm))


def cot_tool() -> BaseTool:
    lm = ScriptedLM(lambda messages: {"reasoning": "It is the capital.", "answer": "Lima"})
    return to_langchain_tool(lmbridge.ChainOfThought("country -> answer", lm=lm), name="capital_of")


class ForecastTool:
    """The forecast tool and its example call, for both standard suites."""

    @property
    def tool_constructor(self) -> BaseTool:
        return forecast_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"city": "Oslo", "days": 1, "unit": "C"}


class ChainOfThoughtTool:
    """A ChainOfThought program as a tool, and its example call, for both standard suites."""

    @property
    def tool_constructor(self) -> BaseTool:
        return cot_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"country": "Peru"}


class TestForecastToolUnit(ForecastTool, ToolsUnitTests):
    pass


class TestForecastToolIntegration(ForecastTool, ToolsIntegrationTests):
    pass


class TestChainOfThoughtToolUnit(ChainOfThoughtTool, ToolsUnitTests):
    pass


class TestChainOfThoughtToolIntegration(ChainOfThoughtTool, ToolsIntegrationTests):
    pass
