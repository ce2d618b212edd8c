"""The LM cache shared through a real Redis server (.ci/services.sh starts one; see conftest)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import lmbridge
from lmbridge.lm._cache_redis import CacheUnavailableWarning, RedisCache, default_cache
from lmbridge.testing import ScriptedLM

if os.environ.get("LMBRIDGE_REQUIRE_SERVERS") == "1":
    import redis  # CI: a missing client is a failure, not a skip
else:
    redis = pytest.importorskip("redis", reason="needs the redis client: pip install 'lmbridge[redis]'")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPTS = [f"What is {i} + {i}?" for i in range(5)]


def answer(messages: list[dict[str, str]]) -> str:
    return "answer to " + messages[-1]["content"]


def ask_all(lm: lmbridge.LM | ScriptedLM) -> list[str]:
    return [lm.complete([{"role": "user", "content": p}]).text for p in PROMPTS]


# -- several processes share entries --------------------------------------------------------------

WORKER = textwrap.dedent("""
    import json, os, sys
    from lmbridge.lm._cache_redis import RedisCache
    from lmbridge.testing import ScriptedLM
    from test_scale_out_redis import PROMPTS, answer

    how, url, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    if how == "env":   # LMBRIDGE_CACHE_URL is set by the parent: cache=True picks Redis
        lm = ScriptedLM(answer, cache=True)
    else:
        lm = ScriptedLM(answer, cache=RedisCache(url, prefix=prefix))
    texts = [lm.complete([{"role": "user", "content": p}]).text for p in PROMPTS]
    print(json.dumps({"texts": texts, "model_calls": len(lm.calls), "hits": lm.usage.cache_hits}))
""")


def run_worker(tmp_path: Path, how: str, url: str, prefix: str) -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    if how == "env":
        env["LMBRIDGE_CACHE_URL"] = url
    return subprocess.Popen([sys.executable, str(script), how, url, prefix], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    data: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return data


@pytest.mark.services
def test_processes_hit_each_others_entries_through_redis(tmp_path: Path, redis_url: str) -> None:
    prefix = "lmbridge:completion:"  # the default prefix, which LMBRIDGE_CACHE_URL uses too
    client = redis.Redis.from_url(redis_url)
    for p in PROMPTS:  # a clean slate for these prompts only: the server may be shared with other tests
        lm = ScriptedLM(answer)
        key = lmbridge.lm._cache.cache_key(lm.model, [{"role": "user", "content": p}], lm.params)
        client.delete(prefix + key)

    first = result(run_worker(tmp_path, "explicit", redis_url, prefix))
    assert first["model_calls"] == len(PROMPTS) and first["hits"] == 0

    others = [run_worker(tmp_path, how, redis_url, prefix) for how in ("explicit", "env", "explicit")]
    for proc in others:
        data = result(proc)
        assert data["model_calls"] == 0, "another process's entries must be hits"
        assert data["hits"] == len(PROMPTS)
        assert data["texts"] == first["texts"] == [answer([{"content": p}]) for p in PROMPTS]


@pytest.mark.services
def test_no_secret_reaches_redis(redis_url: str) -> None:
    prefix = f"lmbridge-test:{uuid.uuid4().hex}:"
    cache = RedisCache(redis_url, prefix=prefix)
    lm = ScriptedLM(answer, cache=cache, api_key="sk-very-secret", api_base="https://proxy.example/v1")  # type: ignore[arg-type]
    ask_all(lm)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    assert len(keys) == len(PROMPTS)
    for k in keys:
        blob = k + (client.get(k) or b"")
        assert b"sk-very-secret" not in blob and b"proxy.example" not in blob
    client.delete(*keys)


# -- outages and restarts -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnRedis:
    """A redis-server of this test's own, so stopping it disturbs no other test."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.dir = free_port(), tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path, redis_url: str) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("LMBRIDGE_TEST_REDIS_URL is set but redis-server is not on PATH")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.services
def test_a_redis_restart_mid_run_loses_nothing_but_hits(own_redis: OwnRedis) -> None:
    cache = RedisCache(own_redis.url, timeout=0.5, retry_after=0.2)
    lm = ScriptedLM(answer, cache=cache)  # type: ignore[arg-type]
    expected = [answer([{"content": p}]) for p in PROMPTS]

    assert ask_all(lm) == expected and len(lm.calls) == 5  # misses, stored in Redis
    cache.clear_memory()
    assert ask_all(lm) == expected and len(lm.calls) == 5  # all hits from Redis

    own_redis.stop()
    cache.clear_memory()
    with pytest.warns(CacheUnavailableWarning, match="unavailable"):
        assert ask_all(lm) == expected  # Redis is down: the calls still answer, uncached
    assert len(lm.calls) == 10 and cache.errors >= 1

    own_redis.start()  # no persistence: the restarted server is empty
    time.sleep(0.3)
    cache.clear_memory()
    assert ask_all(lm) == expected and len(lm.calls) == 15  # the entries were lost: misses, stored again
    cache.clear_memory()
    assert ask_all(lm) == expected and len(lm.calls) == 15  # and hits again
    assert lm.usage.cache_hits == 10


def test_an_unreachable_redis_warns_and_never_fails_a_call() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, retry_after=60)
    lm = ScriptedLM(answer, cache=cache)  # type: ignore[arg-type]
    with pytest.warns(CacheUnavailableWarning) as caught:
        texts = ask_all(lm)
    assert texts == [answer([{"content": p}]) for p in PROMPTS]
    assert len([w for w in caught if w.category is CacheUnavailableWarning]) == 1, "one warning per outage"
    assert cache.errors == 1, "after a failure Redis is left alone for retry_after seconds"


def test_the_cache_url_selects_redis_and_hides_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMBRIDGE_CACHE_URL", "redis://:hunter2@127.0.0.1:1/0")
    cache = default_cache()
    assert isinstance(cache, RedisCache)
    assert "hunter2" not in repr(cache)
    monkeypatch.delenv("LMBRIDGE_CACHE_URL")
    assert not isinstance(default_cache(), RedisCache)
    with pytest.raises(ValueError, match="redis://"):
        RedisCache("http://127.0.0.1:6379")


# -- the embedded model ---------------------------------------------------------------------------------

REAL_WORKER = textwrap.dedent("""
    import json, sys
    import lmbridge

    url, prefix = sys.argv[1], sys.argv[2]
    lm = lmbridge.LM("local/smollm2", max_tokens=8, cache=lmbridge.RedisCache(url, prefix=prefix))
    done = lm.complete([{"role": "user", "content": "Name one colour."}])
    print(json.dumps({"text": done.text, "cached": done.cached}))
""")


@pytest.mark.real_model
@pytest.mark.services
def test_a_second_process_reuses_the_embedded_models_answer_through_redis(tmp_path: Path, redis_url: str) -> None:
    script = tmp_path / "real_worker.py"
    script.write_text(REAL_WORKER)
    prefix = f"lmbridge-test:{uuid.uuid4().hex}:"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMBRIDGE_LOCAL_THREADS": "1"}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script), redis_url, prefix], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["cached"] is False and runs[1]["cached"] is True
    assert runs[1]["text"] == runs[0]["text"], "the hit is the first process's completion"
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.scan_iter(match=prefix + "*"))
