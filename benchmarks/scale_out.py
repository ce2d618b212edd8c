"""Scale out: one MIPROv2 study run by 1, 2 and 4 worker processes on PostgreSQL, the LM cache in Redis.

    . .ci/services.sh                                  # PostgreSQL on :55432, Redis on :56379
    .venv/bin/python benchmarks/scale_out.py           # about 8 minutes on 2 busy cores
    .venv/bin/python benchmarks/scale_out.py --quick   # a smoke run

The model is a ``lmbridge.testing.ScriptedLM`` that sleeps 200 ms per call (a provider's latency) and
answers SST-2 rows (real data, ../shared/datasets/sst2) right only under an instruction that
says "carefully", so the search has something to find. Trials use MIPROv2's default minibatch
(35). Each worker runs one thread: the speed-up comes from processes alone. For each worker count
the study is new (a fresh PostgreSQL database) and so is the Redis cache (a fresh key prefix); all
workers start at once.

Measured per worker count, side by side in one run:

* **wall**: from starting the workers to the last one exiting (setup included: the demo bootstrap
  and the instruction proposals run once, in whichever worker gets there first, while the others
  wait, so they do not scale);
* **trials phase** and **trials/min**: from the first trial's start to the last trial's end, as the
  study records them; this is the part that scales, and the goal is about it;
* **cache**: LM requests answered from Redis with an entry another worker wrote (a process's own
  entries are answered from its memory layer first), and all hits over all requests;
* **run twice**: trial numbers started by more than one worker (goal: 0), and complete trials.

Goals: near-linear speed-up of the trials phase while the LM is the bottleneck; 4 workers at least
3x one worker; no trial run twice. Output is printed and saved to benchmarks/results/scale_out.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from examples.data import datasets_dir  # noqa: E402  (the one way to find the datasets folder)

DATA = datasets_dir() / "sst2"
LATENCY = 0.2
SIG = "text -> label: Literal['negative', 'positive']"


def rows(split: str, n: int, offset: int = 0) -> list[dict[str, str]]:
    lines = (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[offset:offset + n]
    return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, lines)]


# -- one worker ----------------------------------------------------------------------------------------

def worker(url: str, redis_url: str, prefix: str, log_path: str, options: dict[str, Any]) -> None:
    import lmbridge
    import lmbridge.optimizers._support.mipro_search as mipro
    from lmbridge.lm._cache import Cache
    from lmbridge.lm._cache_redis import RedisCache
    from lmbridge.testing import ScriptedLM

    class CountingCache(RedisCache):
        """Counts the hits Redis answered: this process's own entries are in its memory layer."""

        redis_hits = 0

        def get(self, key: str) -> dict[str, Any] | None:
            if Cache.get(self, key) is not None:
                return Cache.get(self, key)
            record = super().get(key)
            if record is not None:
                self.redis_hits += 1
            return record

    log = open(log_path, "a")  # noqa: SIM115 - the worker's lifetime
    claim = mipro.claim_trial

    def logged_claim(*args: Any) -> Any:
        trial = claim(*args)
        if trial is not None:
            log.write(f"{trial.number} {os.getpid()}\n")
            log.flush()
        return trial

    mipro.claim_trial = logged_claim  # type: ignore[assignment]
    gold = {r["text"]: r["label"] for r in rows("train", 200) + rows("dev", 200)}

    def model(messages: list[dict[str, str]]) -> Any:
        time.sleep(LATENCY)
        first = messages[0]["content"]
        if "Write a better" in first or "Look at these" in first:
            return {"summary": "Movie reviews."} if "Look at these" in first else {
                "instruction": "Read the review carefully, then give its sentiment."}
        text = messages[-1]["content"].rsplit("Text:", 1)[-1].strip().splitlines()[0].strip()
        careful = any("carefully" in m["content"] for m in messages if m["role"] in ("system", "user"))
        return {"label": gold.get(text, "positive") if careful else "positive"}

    cache = CountingCache(redis_url, prefix=prefix)
    lm = ScriptedLM(model, cache=cache)  # type: ignore[arg-type]
    student = lmbridge.Predict(SIG, lm=lm)
    train = [lmbridge.Example(**r).with_inputs("text") for r in rows("train", options["train"])]
    val = [lmbridge.Example(**r).with_inputs("text") for r in rows("dev", options["val"])]
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("label"), auto=None, num_candidates=3,
                         max_bootstrapped_demos=1, max_labeled_demos=1, num_threads=1, display_progress=False)
    opt.compile(student, trainset=train, valset=val, num_trials=options["trials"],
                minibatch_size=options["batch"], minibatch_full_eval_steps=options["full_every"], checkpoint=url)
    print(json.dumps({"calls": len(lm.calls), "hits": lm.usage.cache_hits, "redis_hits": cache.redis_hits}))


# -- the driver ----------------------------------------------------------------------------------------

def fresh_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"lmb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    p = urlsplit(admin_url)
    return name, urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, p.fragment))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(n: int, admin_url: str, redis_url: str, options: dict[str, Any], tmp: Path) -> dict[str, Any]:
    import optuna

    name, url = fresh_database(admin_url)
    prefix = f"lmbridge-bench:{uuid.uuid4().hex[:10]}:"
    log = tmp / f"workers-{n}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, redis_url, prefix, str(log),
                               json.dumps(options)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed:\n{err[-3000:]}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    try:
        storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://", 1))
        study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        first = min(t.datetime_start for t in complete if t.datetime_start is not None)
        last = max(t.datetime_complete for t in complete if t.datetime_complete is not None)
        phase = (last - first).total_seconds()
        best = max(v["score"] for k, v in study.user_attrs.items() if k.startswith("full:"))
    finally:
        drop_database(admin_url, name)
    started = [int(line.split()[0]) for line in log.read_text().splitlines()]
    calls = sum(o["calls"] for o in outs)
    hits = sum(o["hits"] for o in outs)
    return {"workers": n, "wall_s": round(wall, 2), "trials_phase_s": round(phase, 2),
            "trials": len(complete), "trials_per_min": round(len(complete) / phase * 60, 1),
            "run_twice": len(started) - len(set(started)), "lm_calls": calls, "cache_hits": hits,
            "hit_rate": round(hits / max(1, hits + calls), 3),
            "cross_worker_hits": sum(o["redis_hits"] for o in outs), "best_full_score": best}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    admin = os.environ.get("LMBRIDGE_TEST_POSTGRES_URL")
    redis_url = os.environ.get("LMBRIDGE_TEST_REDIS_URL")
    if not admin or not redis_url:
        raise SystemExit("start the servers first: . .ci/services.sh (sets LMBRIDGE_TEST_POSTGRES_URL and "
                         "LMBRIDGE_TEST_REDIS_URL)")
    options = ({"train": 6, "val": 6, "trials": 8, "batch": 3, "full_every": 4} if args.quick else
               {"train": 8, "val": 40, "trials": 32, "batch": 35, "full_every": 8})
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.workers.split(",")):
            results.append(run(n, admin, redis_url, options, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]
    lines = [f"scale_out: MIPROv2 on ScriptedLM ({LATENCY * 1000:.0f} ms per call), SST-2 train {options['train']} / "
             f"val {options['val']}, {options['trials']} trials of minibatch {options['batch']}, "
             f"one PostgreSQL study, Redis cache; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "",
             "| workers | wall s | trials phase s | trials/min | speed-up (trials) | speed-up (wall) | run twice | "
             "hit rate | cross-worker hits | best full score |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['workers']} | {r['wall_s']} | {r['trials_phase_s']} | {r['trials_per_min']} | "
            f"{r['trials_per_min'] / base['trials_per_min']:.2f}x | {base['wall_s'] / r['wall_s']:.2f}x | "
            f"{r['run_twice']} | {r['hit_rate']:.1%} | {r['cross_worker_hits']} | {r['best_full_score']:.2f} |")
    four = next((r for r in results if r["workers"] == 4), None)
    if four is not None and base["workers"] == 1:
        ratio = four["trials_per_min"] / base["trials_per_min"]
        lines += ["", f"goal 4 workers >= 3x one worker (trials/min): {ratio:.2f}x -> "
                      f"{'met' if ratio >= 3 else 'NOT met'}",
                  f"goal no trial run twice: {'met' if all(r['run_twice'] == 0 for r in results) else 'NOT met'}"]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "scale_out.txt").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
