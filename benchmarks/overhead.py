"""Framework overhead of lmbridge against DSPy 3.4.1, side by side in one run.

    .venv/bin/python benchmarks/overhead.py            # about 3-4 minutes on 2 busy cores
    .venv/bin/python benchmarks/overhead.py --quick    # a smoke run

What is measured, and how it is kept fair:

* **Per-call cost** (microseconds per call, model excluded) of Predict "question -> answer", Predict
  with a typed 3-in/3-out signature, ChainOfThought, and a cache hit. Both frameworks go through
  their real LM class (``bridge.LM("openai/x")``, ``dspy.LM("openai/x", engine="litellm")``); in
  both processes ``litellm.completion`` is replaced by a function that returns a prebuilt
  ``litellm.ModelResponse`` whose text is a valid answer in that framework's own format (ChatFormat
  for lmbridge, ChatAdapter for DSPy). Caches are off for the per-call numbers; for the cache hit
  they are on, with the answer cached by one call before timing.
* **Cold import**: ``import bridge`` against ``import dspy``, each in a fresh interpreter.
* **Evaluate over a large devset**: ``bridge.Evaluate`` of Predict "question -> answer" on a
  ``ScriptedLM`` over 10,000 and 100,000 rows (one thread, no progress display), as microseconds per
  row. The goal is linear time: the per-row cost at 100,000 rows within 1.5x of that at 10,000
  (``--evaluate-only`` runs this part alone; DSPy is not involved).
* **Memory retained per call**: heap growth (tracemalloc) over 10,000 calls after a warm-up. The
  goal ("flat") is judged on the last four fifths of the run: the first fifth also holds bounded
  one-time growth (lmbridge's LM history keeps the last 100 calls, and tracemalloc sees the entries
  that replace ones allocated before tracing began).

Each framework runs in its own subprocess (DSPy with the DSPy virtual environment's python), the
two alternate over several rounds, and every ratio is taken within this one run: the machine is
shared, so absolute numbers drift between runs while the ratios hold. Output is printed and saved
to benchmarks/results/overhead.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _scenarios import (  # noqa: E402 - the shared scenario data sits beside this file
    COT_OUTPUTS,
    QA_INPUTS,
    QA_OUTPUTS,
    TYPED_INPUTS,
    TYPED_OUTPUTS,
    CannedCompletion,
    measure_memory,
    median,
    time_calls,
)

DSPY_VERSION = "3.4.1"
DSPY_VENV = ROOT / ".venv-dspy"
SCENARIOS = {
    "predict_qa": 'Predict("question -> answer")',
    "predict_typed": "Predict(typed 3-in/3-out)",
    "chain_of_thought": 'ChainOfThought("question -> answer")',
    "cache_hit": "cache hit (Predict qa)",
}
PER_CALL_GOAL = 0.10  # lmbridge at most about 1/10 of DSPy's per-call cost
IMPORT_GOAL = 0.25  # cold import at most 1/4 of DSPy's
MEMORY_GOAL_BYTES = 16  # "flat": under 16 bytes retained per call


# -- the lmbridge half (runs in its own subprocess: overhead.py --worker) -----------------------------
def bridge_worker(args: argparse.Namespace) -> None:
    import bridge
    from bridge.lm import _litellm

    litellm = _litellm()

    class Typed(bridge.Signature):
        """Price an order and tag it."""

        count: int = bridge.InputField(desc="number of items")
        price: float = bridge.InputField(desc="unit price in dollars")
        category: Literal["food", "tools", "toys"] = bridge.InputField()
        total: float = bridge.OutputField(desc="count times price")
        verdict: Literal["cheap", "expensive"] = bridge.OutputField()
        tags: list[str] = bridge.OutputField(desc="two or three short tags")

    canned = CannedCompletion(litellm)
    litellm.completion = canned
    fmt = bridge.ChatFormat()

    def lm(cache: bool) -> bridge.LM:
        return bridge.LM("openai/x", api_key="none", cache=cache, num_retries=0)

    qa = bridge.Predict("question -> answer", lm=lm(False), format=fmt)
    typed = bridge.Predict(Typed, lm=lm(False), format=fmt)
    cot = bridge.ChainOfThought("question -> answer", lm=lm(False), format=fmt)
    cached_qa = bridge.Predict("question -> answer", lm=lm(True), format=fmt)
    scenarios = {
        "predict_qa": (lambda: qa(**QA_INPUTS), qa.signature, QA_OUTPUTS),
        "predict_typed": (lambda: typed(**TYPED_INPUTS), typed.signature, TYPED_OUTPUTS),
        "chain_of_thought": (lambda: cot(**QA_INPUTS), cot.predict.signature, COT_OUTPUTS),
        "cache_hit": (lambda: cached_qa(**QA_INPUTS), cached_qa.signature, QA_OUTPUTS),
    }
    result: dict[str, Any] = {"per_call": {}, "memory": {}}
    for name, (call, sig, expected) in scenarios.items():
        canned.answer(fmt.render_outputs(sig, expected))
        got = call()  # also warms the cache in the cache_hit scenario
        for key, value in expected.items():
            assert got[key] == value, (name, key, got[key], value)
        result["per_call"][name] = time_calls(call, args.n, args.repeats, args.warmup)
    if args.mem_calls:
        canned.answer(fmt.render_outputs(qa.signature, QA_OUTPUTS))
        result["memory"] = measure_memory(lambda: qa(**QA_INPUTS), args.mem_calls)
    json.dump(result, sys.stdout)


# -- the driver ---------------------------------------------------------------------------------------
def ensure_dspy() -> Path:
    python = DSPY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {DSPY_VENV} with dspy=={DSPY_VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DSPY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"dspy=={DSPY_VERSION}"], check=True)
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('dspy'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != DSPY_VERSION:
        raise SystemExit(f"{DSPY_VENV} has dspy {version}, expected {DSPY_VERSION}")
    return python


def child_env() -> dict[str, str]:
    scratch = tempfile.mkdtemp(prefix="overhead-bench-")
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LMBRIDGE_CACHE_DIR": scratch,
            "DSPY_CACHEDIR": scratch, "PYTHONWARNINGS": "ignore"}


def run_json(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t0
print(json.dumps({{"seconds": elapsed, "litellm": "litellm" in sys.modules,
                  "modules": len(sys.modules)}}))
"""


def measure_imports(dspy_python: Path, repeats: int, env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {"bridge": [], "dspy": []}
    for _ in range(repeats):  # alternate, so that load on the machine hits both alike
        runs["bridge"].append(run_json([sys.executable, "-c", IMPORT_PROBE.format(module="bridge")], env))
        runs["dspy"].append(run_json([str(dspy_python), "-c", IMPORT_PROBE.format(module="dspy")], env))
    return runs


def _row(label: str, *cells: str) -> str:
    return f"{label:<38}" + "".join(f"{c:>10}" for c in cells)


def _goal(ratio: float, goal: float, met: bool) -> str:
    return f"{ratio:>8.3f}   <= {goal:.2f} {'met' if met else 'MISSED'}  (1/{1 / ratio:.1f})"


def report(per_call: dict[str, dict[str, list[float]]], memory: dict[str, dict[str, Any]],
           imports: dict[str, list[dict[str, Any]]], settings: str) -> tuple[str, bool]:
    rule = "-" * 80
    lines = [f"lmbridge vs DSPy {DSPY_VERSION}: framework overhead ({settings})",
             f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}",
             "", "Per-call cost, model excluded (median of all repeats, microseconds per call)",
             _row("scenario", "lmbridge", "DSPy") + f"{'ratio':>8}   goal", rule]
    ok = True
    for name, title in SCENARIOS.items():
        b, d = median(per_call["bridge"][name]), median(per_call["dspy"][name])
        met = b / d <= PER_CALL_GOAL
        ok &= met
        lines.append(_row(title, f"{b:.1f}", f"{d:.1f}") + _goal(b / d, PER_CALL_GOAL, met))

    bi = median([r["seconds"] for r in imports["bridge"]]) * 1000
    di = median([r["seconds"] for r in imports["dspy"]]) * 1000
    leaked = any(r["litellm"] for r in imports["bridge"])
    met = bi / di <= IMPORT_GOAL and not leaked
    ok &= met
    modules = (str(imports["bridge"][0]["modules"]), str(imports["dspy"][0]["modules"]))
    lines += ["", f"Cold import (fresh interpreter, median of {len(imports['bridge'])}, milliseconds)",
              _row("import", "lmbridge", "DSPy") + f"{'ratio':>8}   goal", rule,
              _row("import bridge / import dspy", f"{bi:.1f}", f"{di:.1f}")
              + _goal(bi / di, IMPORT_GOAL, met),
              _row("modules in sys.modules after", *modules),
              f"import bridge imports litellm: {'YES (goal MISSED)' if leaked else 'no'}; "
              f"import dspy imports litellm: {'yes' if imports['dspy'][0]['litellm'] else 'no'}"]

    if memory.get("bridge") and memory.get("dspy"):
        calls = memory["bridge"]["calls"]
        step = calls // 5
        curves = {k: memory[k]["traced_growth_curve"] for k in ("bridge", "dspy")}
        total = {k: c[-1] / calls for k, c in curves.items()}
        slope = {k: (c[-1] - c[0]) / (calls - step) for k, c in curves.items()}
        rss = {k: memory[k]["rss_growth"] / 2**20 for k in ("bridge", "dspy")}
        met = slope["bridge"] < MEMORY_GOAL_BYTES
        ok &= met
        lines += ["", f'Memory retained by Predict("question -> answer") over {calls:,} calls after warm-up',
                  _row("", "lmbridge", "DSPy") + "   goal", rule,
                  _row("heap growth, bytes/call, whole run", f"{total['bridge']:.1f}",
                       f"{total['dspy']:.1f}"),
                  _row("heap growth, bytes/call, last 4/5", f"{slope['bridge']:.1f}", f"{slope['dspy']:.1f}")
                  + f"   flat (< {MEMORY_GOAL_BYTES} B/call) {'met' if met else 'MISSED'}",
                  _row("RSS growth, MiB", f"{rss['bridge']:.1f}", f"{rss['dspy']:.1f}")]
        for k, label in (("bridge", "lmbridge"), ("dspy", "DSPy")):
            curve = ", ".join(f"{v / 1024:.0f}" for v in curves[k])
            lines.append(f"  {label} heap growth along the run (KiB, every {step:,} calls): {curve}")
    lines += ["", "ratio = lmbridge / DSPy (lower is better); the goals are the ones set for lmbridge.",
              f"all goals {'met' if ok else 'NOT met'}"]
    return "\n".join(lines), ok


EVALUATE_ROWS = (10_000, 100_000)
EVALUATE_GOAL = 1.5
"""Per-row time at the largest devset over per-row time at the smallest: linear time keeps it near 1."""


def measure_evaluate(sizes: tuple[int, ...]) -> dict[int, float]:
    """Microseconds per row of Evaluate on a ScriptedLM, for each devset size."""
    import bridge
    from bridge.testing import ScriptedLM

    out: dict[int, float] = {}
    for n in sizes:
        devset = [bridge.Example(question=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("question")
                  for i in range(n)]
        program = bridge.Predict("question -> answer", lm=ScriptedLM(lambda m: {"answer": "4"}))
        evaluate = bridge.Evaluate(devset=devset, metric=bridge.metrics.answer_exact_match, num_threads=1,
                                   display_progress=False)
        start = time.perf_counter()
        result = evaluate(program)
        elapsed = time.perf_counter() - start
        assert len(result.results) == n and result.errors == 0
        out[n] = elapsed / n * 1e6
        print(f"Evaluate, {n:,} rows: {elapsed:.1f} s, {out[n]:.1f} us/row", flush=True)
    return out


def evaluate_report(per_row: dict[int, float]) -> tuple[str, bool]:
    small, large = min(per_row), max(per_row)
    ratio = per_row[large] / per_row[small]
    met = ratio <= EVALUATE_GOAL
    lines = ["", "Evaluate over a devset (ScriptedLM, one thread, microseconds per row)",
             _row("rows", "us/row"), "-" * 80]
    lines += [_row(f"{n:,}", f"{per_row[n]:.1f}") for n in sorted(per_row)]
    lines.append(f"per-row time at {large:,} / at {small:,}: {ratio:.2f}   linear (<= {EVALUATE_GOAL}) "
                 f"{'met' if met else 'MISSED'}")
    return "\n".join(lines), met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per scenario and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating lmbridge/DSPy rounds")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--mem-calls", type=int, default=10_000)
    parser.add_argument("--import-repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run with small counts")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "overhead.txt")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only the Evaluate devset-size case (no DSPy)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = EVALUATE_ROWS
    if args.quick:
        args.n, args.repeats, args.rounds, args.warmup = 200, 2, 1, 20
        args.mem_calls, args.import_repeats = 1000, 3
        sizes = (2_000, 20_000)
    if args.worker:
        bridge_worker(args)
        return
    if args.evaluate_only:
        text, ok = evaluate_report(measure_evaluate(sizes))
        print(text)
        if not ok:
            raise SystemExit("FAILED: Evaluate time is not linear in the devset size")
        return
    dspy_python = ensure_dspy()
    env = child_env()
    per_call: dict[str, dict[str, list[float]]] = {"bridge": {}, "dspy": {}}
    memory: dict[str, dict[str, Any]] = {}
    commands = {"bridge": [sys.executable, str(Path(__file__).resolve()), "--worker"],
                "dspy": [str(dspy_python), str(HERE / "_dspy_overhead.py")]}
    for round_no in range(args.rounds):
        for side, cmd in commands.items():
            mem = args.mem_calls if round_no == 0 else 0
            print(f"round {round_no + 1}/{args.rounds}: {side} ...", flush=True)
            out = run_json([*cmd, "--n", str(args.n), "--repeats", str(args.repeats),
                            "--warmup", str(args.warmup), "--mem-calls", str(mem)], env)
            for name, values in out["per_call"].items():
                per_call[side].setdefault(name, []).extend(values)
            if out["memory"]:
                memory[side] = out["memory"]
    print("cold imports ...", flush=True)
    imports = measure_imports(dspy_python, args.import_repeats, env)
    settings = (f"{args.rounds} rounds x {args.repeats} repeats x {args.n} calls per scenario; "
                f"{args.mem_calls} calls for memory")
    text, _ = report(per_call, memory, imports, settings)
    print("Evaluate over a large devset ...", flush=True)
    text += "\n" + evaluate_report(measure_evaluate(sizes))[0]
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nsaved to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if any(r["litellm"] for r in imports["bridge"]):
        raise SystemExit("FAILED: import bridge imported litellm")


if __name__ == "__main__":
    main()
