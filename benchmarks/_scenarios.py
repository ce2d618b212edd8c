"""What both halves of benchmarks/overhead.py share: the inputs and canned output values of each
scenario, the stand-in for ``litellm.completion``, and the timing and memory helpers. Standard
library only (the stand-in is handed the ``litellm`` module): the DSPy half imports this from its
own virtual environment, where lmbridge is not installed.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

QA_INPUTS: dict[str, Any] = {"question": "What is the capital of France?"}
QA_OUTPUTS: dict[str, Any] = {"answer": "Paris"}
COT_OUTPUTS: dict[str, Any] = {"reasoning": "France's capital and largest city is Paris.", "answer": "Paris"}
TYPED_INPUTS: dict[str, Any] = {"count": 3, "price": 2.5, "category": "food"}
TYPED_OUTPUTS: dict[str, Any] = {"total": 7.5, "verdict": "cheap", "tags": ["fresh", "small"]}


class CannedCompletion:
    """Stands in for ``litellm.completion`` on both sides: answers every request with the response
    prepared for the text set last, each response built once, so that the "model" costs neither
    framework anything and what is timed is the framework alone."""

    def __init__(self, litellm: Any) -> None:
        self._litellm = litellm
        self._responses: dict[str, Any] = {}
        self._text = ""

    def answer(self, text: str) -> None:
        """Make ``text`` the completion of every request from now on."""
        if text not in self._responses:
            self._responses[text] = self._litellm.ModelResponse(
                model="x", choices=[{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60})
        self._text = text

    def __call__(self, *_: Any, **__: Any) -> Any:
        return self._responses[self._text]


def time_calls(call: Callable[[], Any], n: int, repeats: int, warmup: int) -> list[float]:
    """Microseconds per call, one number per repeat of ``n`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            call()
        out.append((time.perf_counter_ns() - t0) / n / 1000)
    return out


def checked_timing(name: str, call: Callable[[], Any], expected: dict[str, Any], n: int, repeats: int,
                   warmup: int) -> list[float]:
    """``time_calls`` of ``call``, after one call (which also fills a cache) that must answer ``expected``:
    both halves time only a framework that reads the canned answer right."""
    got = call()
    for key, value in expected.items():
        assert got[key] == value, (name, key, got[key], value)
    return time_calls(call, n, repeats, warmup)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(call: Callable[[], Any], calls: int) -> dict[str, Any]:
    """Memory retained over ``calls`` calls after a 200-call warm-up: the traced heap growth
    (tracemalloc, after a full collection) sampled five times along the run, and the RSS growth over
    the same run (which also holds tracemalloc's own bookkeeping)."""
    for _ in range(200):
        call()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rss0 = rss_bytes()
    curve = []
    step = max(calls // 5, 1)
    for i in range(1, calls + 1):
        call()
        if i % step == 0:
            gc.collect()
            curve.append(tracemalloc.get_traced_memory()[0] - base)
    rss_growth = rss_bytes() - rss0
    tracemalloc.stop()
    return {"calls": calls, "rss_growth": rss_growth, "traced_growth_curve": curve}


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternate(direct: Callable[[int], Any], wrapped: Callable[[int], Any], calls: int,
              warmup: int = 50) -> tuple[float, float]:
    """Median seconds per call of ``direct`` and ``wrapped`` (each given the call's index), called one
    after the other ``calls`` times after ``warmup`` rounds, so that a busy machine slows both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + calls):
        t0 = time.perf_counter()
        direct(i)
        t1 = time.perf_counter()
        wrapped(i)
        t2 = time.perf_counter()
        if i >= warmup:
            times[0].append(t1 - t0)
            times[1].append(t2 - t1)
    return statistics.median(times[0]), statistics.median(times[1])


def print_ratio(direct_name: str, wrapped_name: str, times: tuple[float, float], goal: float) -> float:
    """Print both per-call times and their ratio against ``goal``; the ratio."""
    ratio = times[1] / times[0]
    print(f"{direct_name}: {times[0] * 1e6:.0f} us/call   {wrapped_name}: {times[1] * 1e6:.0f} us/call   "
          f"ratio {ratio:.2f} (goal <= {goal:.2f})")
    return ratio
