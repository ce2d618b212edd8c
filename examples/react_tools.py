"""A ReAct agent with two real Python tools: a calculator and a search over the SQuAD paragraphs.

The embedded model (SmolLM2-135M) is tiny, so each predictor gets a few hand-written
demonstrations, set as ordinary Predict demos (an optimizer such as LabeledFewShot or
BootstrapFewShot would set them the same way). Prints each question's trajectory and answer:

    python examples/react_tools.py [--n 2] [--max-iters 3]
"""

from __future__ import annotations

import argparse
import ast
import operator
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmbridge
from examples.rag_squad import load_corpus

QUESTIONS = [
    "What is 17 * 23?",
    "Which NFL team won Super Bowl 50?",
    "What is 1200 divided by 16?",
    "Where did Super Bowl 50 take place?",
]

_OPERATORS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                               ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
                               ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 12*(3+4) or 2**10."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"not an arithmetic expression: {expression!r}")

    result = value(ast.parse(expression.replace("^", "**"), mode="eval").body)
    return str(int(result) if isinstance(result, float) and result.is_integer() else result)


def make_search(retriever: lmbridge.BM25Retriever, chars: int = 300) -> lmbridge.Tool:
    """A tool over the SQuAD paragraphs: the best paragraph for a query, cut to ``chars``."""

    def search(query: str) -> str:
        """Search Wikipedia paragraphs; returns the best matching paragraph."""
        found = retriever(query, 1)
        return found[0].text[:chars] if found else "nothing found"

    return lmbridge.Tool(search, timeout=10)


def _step(question: str, trajectory: str, thought: str, tool: str, args: dict[str, Any]) -> lmbridge.Example:
    return lmbridge.Example(question=question, trajectory=trajectory, next_thought=thought, next_tool_name=tool,
                          next_tool_args=args)


def demos() -> tuple[list[lmbridge.Example], list[lmbridge.Example]]:
    """Hand-written demonstrations: one arithmetic run and one look-up run."""
    calc = ("\nThought: I need to multiply 12 by 7.\nTool: calculator\nArgs: {\"expression\": \"12*7\"}\n"
            "Observation: 84")
    look = ("\nThought: I should search for who wrote Hamlet.\nTool: search\nArgs: {\"query\": \"Hamlet play "
            "author\"}\nObservation: Hamlet is a tragedy written by William Shakespeare around 1600.")
    react = [
        _step("What is 12 times 7?", "(no steps yet)", "I need to multiply 12 by 7.", "calculator",
              {"expression": "12*7"}),
        _step("What is 12 times 7?", calc, "The calculator says 84, so I can answer.", "finish", {}),
        _step("Who wrote Hamlet?", "(no steps yet)", "I should search for who wrote Hamlet.", "search",
              {"query": "Hamlet play author"}),
        _step("Who wrote Hamlet?", look, "The search says William Shakespeare wrote it.", "finish", {}),
    ]
    extract = [
        lmbridge.Example(question="What is 12 times 7?", trajectory=calc, reasoning="The calculator gave 84.",
                       answer="84"),
        lmbridge.Example(question="Who wrote Hamlet?", trajectory=look,
                       reasoning="The paragraph says Hamlet was written by William Shakespeare.",
                       answer="William Shakespeare"),
    ]
    return react, extract


def build_agent(retriever: lmbridge.BM25Retriever, max_iters: int = 3, **predict_options: Any) -> lmbridge.ReAct:
    agent = lmbridge.ReAct("question -> answer", tools=[calculator, make_search(retriever)], max_iters=max_iters,
                         **predict_options)
    agent.react.demos, agent.extract.predict.demos = demos()
    return agent


def show(question: str, pred: lmbridge.Prediction) -> None:
    print(f"Q: {question}")
    for i, s in enumerate(pred.trajectory, 1):
        observation = str(s["observation"]).replace("\n", " ")
        print(f"  {i}. thought: {s['thought']}\n     tool: {s['tool_name']} {s['tool_args']}\n"
              f"     observation: {observation[:120]}")
    print(f"  finish_reason: {pred.finish_reason}; answer: {pred.answer!r}; LM calls: {pred.usage.calls}\n")


def main(argv: list[str] | None = None) -> list[lmbridge.Prediction]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=2, help="questions to ask")
    parser.add_argument("--max-iters", type=int, default=3)
    args = parser.parse_args(argv)

    agent = build_agent(load_corpus(), max_iters=args.max_iters, lm=lmbridge.LM(args.model), max_tokens=96)
    predictions = []
    for question in QUESTIONS[:args.n]:
        pred = agent(question=question)
        show(question, pred)
        predictions.append(pred)
    return predictions


if __name__ == "__main__":
    main()
