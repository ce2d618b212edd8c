"""A ReAct program over LangChain tools: ``lmbridge.ReAct(..., tools=[langchain_tool, ...])``.

The tools are plain LangChain ``@tool`` functions, passed to ReAct as they are: their names,
descriptions and argument schemas reach the model, ``ToolException`` is handled as LangChain does
(``handle_tool_error``), and a ``return_direct`` tool would end the loop with its result. The
questions are GSM8K grade-school maths problems.

Runs offline on the embedded model (SmolLM2-135M through llama.cpp); a model that small rarely
solves them, so the example prints each trajectory and how the loop ended:

    python examples/langchain_react.py [--n 2] [--max-iters 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.tools import ToolException, tool

import lmbridge
from examples.data import load_jsonl


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and parentheses, such as (16 - 3 - 4) * 2."""
    if not expression or not set(expression) <= set("0123456789+-*/(). "):
        raise ToolException(f"not an arithmetic expression: {expression!r}; use digits and + - * / ( )")
    try:
        return str(eval(expression, {"__builtins__": {}}))
    except (SyntaxError, ZeroDivisionError) as exc:
        raise ToolException(f"cannot evaluate {expression!r}: {exc}") from exc


calculator.handle_tool_error = True  # the model sees the problem and may try again, as in a LangChain agent


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=2, help="GSM8K test questions")
    parser.add_argument("--max-iters", type=int, default=3)
    args = parser.parse_args(argv)

    agent = lmbridge.ReAct("question -> answer: float", tools=[calculator], max_iters=args.max_iters,
                         lm=lmbridge.LM(args.model, max_tokens=64))
    results = []
    for row in load_jsonl("gsm8k", "test")[:args.n]:
        try:
            pred = agent(question=row["question"])
        except (lmbridge.ParseError, lmbridge.TruncatedError) as error:  # unreadable or cut off: never read
            print(f"Q: {row['question'][:80]}...\n   no readable answer: {error}")
            results.append({"gold": row["answer"], "answer": None, "finish_reason": "parse_error", "steps": []})
            continue
        print(f"Q: {row['question'][:80]}...\n   gold {row['answer']}, answer {pred.answer} "
              f"({pred.finish_reason} after {len(pred.trajectory)} steps)")
        for step in pred.trajectory:
            print(f"   - {step['tool_name']}({step['tool_args']}) -> {str(step['observation'])[:60]}")
        results.append({"gold": row["answer"], "answer": pred.answer, "finish_reason": pred.finish_reason,
                        "steps": pred.trajectory})
    return results


if __name__ == "__main__":
    main()
