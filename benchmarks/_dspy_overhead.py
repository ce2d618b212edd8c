"""The DSPy half of benchmarks/overhead.py. Run with the DSPy virtual environment's python.

It mirrors the lmbridge half (``overhead.py --worker``) scenario for scenario: the same
signatures, the same inputs and the same output values. The model is replaced at the same
boundary as on the lmbridge side: ``litellm.completion`` returns a prebuilt
``litellm.ModelResponse`` whose text is a valid answer in DSPy's ChatAdapter format. The LM is
``dspy.LM("openai/x", engine="litellm")``, so each call goes through DSPy's real LM class,
adapter, callbacks, history and (when enabled) cache.

Prints one JSON object on stdout: {"per_call": {scenario: [us/call per repeat]}, "memory": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import (
    COT_OUTPUTS,
    QA_INPUTS,
    QA_OUTPUTS,
    TYPED_INPUTS,
    TYPED_OUTPUTS,
    CannedCompletion,
    checked_timing,
    measure_memory,
)

warnings.filterwarnings("ignore")


def chat_adapter_text(values: dict[str, Any]) -> str:
    """A completion in DSPy's ChatAdapter format: one ``[[ ## name ## ]]`` block per field."""
    blocks = [f"[[ ## {name} ## ]]\n{json.dumps(v) if isinstance(v, list) else v}"
              for name, v in values.items()]
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--mem-calls", type=int, default=10_000)
    args = parser.parse_args()

    import dspy
    import litellm

    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True,
                         disk_cache_dir=tempfile.mkdtemp(prefix="dspy-bench-cache-"))

    class Typed(dspy.Signature):
        """Price an order and tag it."""

        count: int = dspy.InputField(desc="number of items")
        price: float = dspy.InputField(desc="unit price in dollars")
        category: Literal["food", "tools", "toys"] = dspy.InputField()
        total: float = dspy.OutputField(desc="count times price")
        verdict: Literal["cheap", "expensive"] = dspy.OutputField()
        tags: list[str] = dspy.OutputField(desc="two or three short tags")

    canned = CannedCompletion(litellm)
    litellm.completion = canned

    def lm(cache: bool) -> Any:
        return dspy.LM("openai/x", api_key="none", cache=cache, engine="litellm", num_retries=0)

    qa = dspy.Predict("question -> answer")
    typed = dspy.Predict(Typed)
    cot = dspy.ChainOfThought("question -> answer")
    scenarios: dict[str, tuple[Callable[[], Any], str, Any, dict[str, Any]]] = {
        "predict_qa": (lambda: qa(**QA_INPUTS), chat_adapter_text(QA_OUTPUTS), lm(False), QA_OUTPUTS),
        "predict_typed": (lambda: typed(**TYPED_INPUTS), chat_adapter_text(TYPED_OUTPUTS), lm(False),
                          TYPED_OUTPUTS),
        "chain_of_thought": (lambda: cot(**QA_INPUTS), chat_adapter_text(COT_OUTPUTS), lm(False),
                             COT_OUTPUTS),
        "cache_hit": (lambda: qa(**QA_INPUTS), chat_adapter_text(QA_OUTPUTS), lm(True), QA_OUTPUTS),
    }

    result: dict[str, Any] = {"per_call": {}, "memory": {}}
    for name, (call, text, model, expected) in scenarios.items():
        canned.answer(text)
        with dspy.context(lm=model):
            result["per_call"][name] = checked_timing(name, call, expected, args.n, args.repeats, args.warmup)

    if args.mem_calls:
        canned.answer(chat_adapter_text(QA_OUTPUTS))
        with dspy.context(lm=lm(False)):
            result["memory"] = measure_memory(lambda: qa(**QA_INPUTS), args.mem_calls)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
