"""What running a bridge program as a LangChain Runnable costs, side by side with plain LCEL, in one run.

    .venv/bin/python benchmarks/langchain_overhead.py           # about 30 s
    .venv/bin/python benchmarks/langchain_overhead.py --quick   # a smoke run

Three measurements, each on the same fake LangChain chat model, so only framework time differs:

1. **Framework time per call**: ``to_runnable(Predict("question -> answer", lm=LangChainLM(chat)))``
   against the LCEL step a LangChain user would write, ``prompt | chat | StrOutputParser()``. The
   chat model answers at once; the cache is off. Median microseconds per ``invoke`` over rounds that
   alternate the two. Goal: no more framework time than LCEL (ratio <= 1.0).
2. **Batch**: 100 inputs with ``max_concurrency=16`` on a chat model that takes 20 ms per call,
   against the ideal ``ceil(100 / 16) * 20 ms``. Goal: within 1.2x of the ideal. LCEL's own batch
   is shown beside it.
3. **First chunk**: a chat model that streams 24 tokens, 10 ms apart (continuing after the prompt's
   ``Answer:`` cue, as ChatFormat asks); the time to the first chunk of
   ``stream`` against the time ``invoke`` takes. Goal: the first chunk arrives before the call ends.

Ratios are taken within this one run (the machine is shared, so absolute numbers drift). Output is
printed and saved to benchmarks/results/langchain_overhead.txt.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

import lmbridge  # noqa: E402
from lmbridge.adapters.langchain import LangChainLM, to_runnable  # noqa: E402

ANSWER = "Paris is the capital of France, on the Seine, with about two million inhabitants."


class FakeChat(BaseChatModel):
    """Answers ``ANSWER`` after ``latency`` seconds; streams it in ``tokens`` pieces ``gap`` s apart."""

    latency: float = 0.0
    gap: float = 0.0
    tokens: int = 24

    @property
    def _llm_type(self) -> str:
        return "fake-bench"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        if self.gap:
            time.sleep(self.gap * self.tokens)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=ANSWER))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        size = math.ceil(len(ANSWER) / self.tokens)
        for start in range(0, len(ANSWER), size):
            time.sleep(self.gap)
            yield ChatGenerationChunk(message=AIMessageChunk(content=ANSWER[start:start + size]))


def ours(chat: FakeChat) -> Any:
    return to_runnable(lmbridge.Predict("question -> answer", lm=LangChainLM(chat, cache=False)))


def lcel(chat: FakeChat) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Answer the question in a few words."),
                                               ("human", "Question: {question}\nAnswer:")])
    return prompt | chat | StrOutputParser()


def per_call(runnable: Any, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        runnable.invoke({"question": f"What is the capital of France? ({i})"})
    return (time.perf_counter() - start) / calls * 1e6


def framework_time(rounds: int, calls: int) -> tuple[float, float]:
    chat = FakeChat()
    a, b = ours(chat), lcel(chat)
    per_call(a, 50)
    per_call(b, 50)
    ours_us, lcel_us = [], []
    for _ in range(rounds):
        ours_us.append(per_call(a, calls))
        lcel_us.append(per_call(b, calls))
    return statistics.median(ours_us), statistics.median(lcel_us)


def batch(size: int, latency: float, concurrency: int) -> tuple[float, float, float]:
    chat = FakeChat(latency=latency)
    inputs = [{"question": f"q{i}"} for i in range(size)]
    config = {"max_concurrency": concurrency}
    start = time.perf_counter()
    ours(chat).batch(inputs, config)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    lcel(chat).batch(inputs, config)
    lcel_s = time.perf_counter() - start
    return ours_s, lcel_s, math.ceil(size / concurrency) * latency


def first_chunk(gap: float) -> tuple[float, float]:
    runnable = ours(FakeChat(gap=gap))
    start = time.perf_counter()
    stream = runnable.stream({"question": "What is the capital of France?"})
    next(iter(stream))
    first = time.perf_counter() - start
    for _ in stream:
        pass
    start = time.perf_counter()
    runnable.invoke({"question": "What is the capital of France?"})
    return first, time.perf_counter() - start


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds, calls = (3, 100) if args.quick else (7, 400)
    ours_us, lcel_us = framework_time(rounds, calls)
    ours_s, lcel_s, ideal = batch(100, 0.02, 16)
    first, whole = first_chunk(0.01)
    lines = [
        "LangChain overhead (same fake chat model; ratios within this run)",
        f"1. framework time per invoke: lmbridge Runnable {ours_us:.0f} us, LCEL prompt|model|parser "
        f"{lcel_us:.0f} us -> ratio {ours_us / lcel_us:.2f} (goal <= 1.0)",
        f"2. batch 100 @ 20 ms, max_concurrency=16: lmbridge {ours_s * 1000:.0f} ms, LCEL {lcel_s * 1000:.0f} ms, "
        f"ideal {ideal * 1000:.0f} ms -> lmbridge / ideal {ours_s / ideal:.2f} (goal <= 1.2)",
        f"3. stream first chunk {first * 1000:.0f} ms vs invoke {whole * 1000:.0f} ms -> "
        f"{first / whole:.2f} of the call (goal < 1.0)",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        out = ROOT / "benchmarks" / "results" / "langchain_overhead.txt"
        out.write_text(report + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
