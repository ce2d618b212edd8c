"""The DSPy half of benchmarks/compile_quality.py. Run with the DSPy virtual environment's python.

Reads the splits written by the lmbridge half, compiles the same program with DSPy's optimizer of
the same name and the same arguments, and scores it on the same test rows. The model is the same
model (SmolLM2-135M or Gemma 3 270M), served by ../shared/local-lm over its OpenAI-compatible API and reached with
``dspy.LM("openai/<model>", engine="litellm", max_tokens=64)`` (the local-lm README's DSPy notes).
LM calls are counted at ``litellm.completion``, below DSPy's cache, so they are the requests that
reached the model. Each configuration gets a fresh DSPy cache.

Prints one JSON object per configuration on stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from typing import Any, Literal

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--configs", required=True)
    args = parser.parse_args()

    import dspy
    import litellm

    with open(args.splits, encoding="utf-8") as fh:
        splits = json.loads(fh.read())
    labels = tuple(splits["labels"])
    calls = {"n": 0}
    real_completion = litellm.completion

    def counted(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        return real_completion(*a, **k)

    litellm.completion = counted

    label_type: Any = Literal[labels]  # type: ignore[valid-type]
    Task = dspy.Signature({"text": (str, dspy.InputField()), "label": (label_type, dspy.OutputField())},
                          splits["instructions"])

    def rows(name: str) -> list[Any]:
        return [dspy.Example(text=r["text"], label=r["label"]).with_inputs("text") for r in splits[name]]

    train, val, test = rows("train"), rows("val"), rows("test")

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> float:
        return float(str(getattr(pred, "label", "")).strip().lower() == gold.label)

    def lm(**extra: Any) -> Any:
        options = {"max_tokens": 64, "temperature": 0.0, **extra}
        return dspy.LM(f"openai/{splits.get('model', 'smollm2')}", api_base=args.api_base, api_key="none",
                       engine="litellm", **options)

    size = splits["sizes"]
    for config in args.configs.split(","):
        dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True,
                             disk_cache_dir=tempfile.mkdtemp(prefix="dspy-quality-cache-"))
        task_lm = lm()
        dspy.configure(lm=task_lm)
        student = dspy.Predict(Task)
        calls["n"] = 0
        start = time.perf_counter()
        error = None
        program = student
        try:
            if config == "labeled":
                program = dspy.LabeledFewShot(k=size["k"]).compile(student, trainset=train)
            elif config == "bootstrap":
                program = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=size["k"],
                                                max_errors=len(train) + 1).compile(student, trainset=train)
            elif config == "mipro":
                opt = dspy.MIPROv2(metric=metric, auto="light", seed=splits["seed"], num_threads=1,
                                   max_errors=10 ** 6)
                program = opt.compile(student, trainset=train, valset=val)
            elif config == "gepa":
                opt = dspy.GEPA(metric=metric, max_metric_calls=size["gepa_metric_calls"], num_threads=1,
                                reflection_lm=lm(max_tokens=256), seed=splits["seed"])
                program = opt.compile(student, trainset=train, valset=val)
        except Exception as exc:  # recorded as a result, as the local-lm README asks
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        compile_calls, compile_time = calls["n"], time.perf_counter() - start
        calls["n"] = 0
        start = time.perf_counter()
        evaluate = dspy.Evaluate(devset=test, metric=metric, num_threads=1, display_progress=False,
                                 max_errors=10 ** 6, provide_traceback=False)
        result = evaluate(program)
        score = float(getattr(result, "score", result))
        print(json.dumps({"system": "dspy", "task": splits["task"], "optimizer": config, "test_accuracy": score,
                          "compile_lm_calls": compile_calls, "compile_seconds": round(compile_time, 1),
                          "eval_lm_calls": calls["n"], "eval_seconds": round(time.perf_counter() - start, 1),
                          "error": error}), flush=True)


if __name__ == "__main__":
    main()
