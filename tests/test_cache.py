"""The completion cache: memory and disk, keys without secrets, corruption, threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.lm._cache import Cache, cache_key, default_cache_dir, shared_cache
from lmbridge.testing import ScriptedLM

MESSAGES: list[lmbridge.Message] = [{"role": "user", "content": "hello"}]
SECRET = "sk-very-secret-key-123"


def record(text: str) -> dict[str, object]:
    return {"text": text, "prompt_tokens": 1, "completion_tokens": 1}


def test_tests_never_use_the_home_cache() -> None:
    assert default_cache_dir() != Path.home() / ".cache" / "lmbridge"
    assert os.environ["LMBRIDGE_CACHE_DIR"] == str(default_cache_dir())
    assert shared_cache().disk is not None
    assert shared_cache().disk.path.parent == default_cache_dir()


def test_memory_hit(tmp_path: Path) -> None:
    cache = Cache(tmp_path, disk=False)
    assert cache.get("k") is None
    cache.set("k", record("v"))
    assert cache.get("k") == record("v")
    assert not (tmp_path / "completions.sqlite").exists()


def test_disk_hit_survives_a_new_cache_object(tmp_path: Path) -> None:
    Cache(tmp_path).set("k", record("on disk"))
    fresh = Cache(tmp_path)
    assert fresh.get("k") == record("on disk")


def test_memory_is_bounded(tmp_path: Path) -> None:
    cache = Cache(tmp_path, memory_size=2, disk=False)
    for k in "abc":
        cache.set(k, record(k))
    assert cache.get("a") is None
    assert cache.get("c") == record("c")


def test_key_ignores_credentials_and_base_urls() -> None:
    base = cache_key("openai/x", MESSAGES, {"temperature": 0})
    with_secrets = cache_key("openai/x", MESSAGES, {"temperature": 0, "api_key": SECRET,
                                                    "api_base": "http://10.0.0.1/v1", "base_url": "http://h",
                                                    "extra_headers": {"Authorization": SECRET}})
    assert with_secrets == base
    assert SECRET not in with_secrets
    assert cache_key("openai/x", MESSAGES, {"temperature": 0, "api_key": "another"}) == base


def test_key_depends_on_model_messages_and_sampling() -> None:
    base = cache_key("m", MESSAGES, {"temperature": 0})
    assert cache_key("other", MESSAGES, {"temperature": 0}) != base
    assert cache_key("m", [{"role": "user", "content": "hello!"}], {"temperature": 0}) != base
    assert cache_key("m", MESSAGES, {"temperature": 0.5}) != base
    assert cache_key("m", MESSAGES, {"temperature": 0, "rollout_id": 1}) != base


def test_sqlite_file_holds_no_secret(tmp_path: Path) -> None:
    lm = lmbridge.LM("openai/fake", api_key=SECRET, api_base="http://127.0.0.1:9/v1", cache=Cache(tmp_path))
    key = cache_key(lm.model, MESSAGES, {**lm.params, "api_key": SECRET})
    lm._cache.set(key, record("answer"))  # type: ignore[union-attr]
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"answer" in data
    assert SECRET.encode() not in data
    assert b"127.0.0.1:9" not in data


def test_corrupted_entry_is_ignored_counted_and_replaced(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.set("k", record("good"))
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("UPDATE completions SET value = ? WHERE key = ?", ("{not json", "k"))
        conn.execute("INSERT INTO completions VALUES (?, ?, ?)", ("k2", '["a list"]', 0))
    fresh = Cache(tmp_path)
    assert fresh.disk is not None
    assert fresh.get("k") is None
    assert fresh.get("k2") is None
    assert fresh.disk.corrupt_entries == 2
    fresh.set("k", record("again"))
    assert Cache(tmp_path).get("k") == record("again")


def test_corrupted_entry_through_an_lm_calls_the_model_again(tmp_path: Path) -> None:
    lm = ScriptedLM(["first", "second"], cache=Cache(tmp_path))
    lm.complete(MESSAGES)
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("UPDATE completions SET value = 'garbage'")
    lm2 = ScriptedLM(["fresh"], cache=Cache(tmp_path))
    assert lm2.complete(MESSAGES).text == "fresh"
    assert ScriptedLM([], cache=Cache(tmp_path)).complete(MESSAGES).text == "fresh"


def test_corrupted_file_is_moved_aside_and_recreated(tmp_path: Path) -> None:
    path = tmp_path / "completions.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    cache = Cache(tmp_path)
    assert cache.get("k") is None
    cache.set("k", record("v"))
    assert cache.disk is not None and cache.disk.corrupt_files == 1
    assert Cache(tmp_path).get("k") == record("v")
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert aside and any(n.startswith("completions.sqlite.corrupt-") for n in aside)


def test_file_corrupted_while_open_is_not_fatal(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.set("a", record("a"))
    cache.clear_memory()
    path = tmp_path / "completions.sqlite"
    for p in tmp_path.iterdir():
        p.write_bytes(os.urandom(8192))
    cache.get("a")  # may or may not notice; must not raise
    cache.set("b", record("b"))
    assert path.exists()
    cache.clear_memory()
    Cache(tmp_path).set("c", record("c"))
    assert Cache(tmp_path).get("c") == record("c")


def test_threads_share_one_file(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                cache.set(f"{t}-{i}", record(f"{t}-{i}"))
                assert cache.get(f"{t}-{i}") == record(f"{t}-{i}")
                cache.get(f"{(t + 1) % 4}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fresh = Cache(tmp_path)
    assert all(fresh.get(f"{t}-{i}") == record(f"{t}-{i}") for t in range(4) for i in range(20))


def _process_worker(directory: str, worker: int, n: int) -> None:
    cache = Cache(Path(directory))
    for i in range(n):
        cache.set(f"{worker}-{i}", record(f"{worker}-{i}"))
        cache.set("shared", record(f"from {worker}"))
        cache.clear_memory()
        got = cache.get(f"{worker}-{i}")
        if got != record(f"{worker}-{i}"):
            raise SystemExit(f"worker {worker} read back {got!r}")
        if cache.get("shared") is None:
            raise SystemExit(f"worker {worker} lost the shared key")
    assert cache.disk is not None
    if cache.disk.corrupt_files or cache.disk.corrupt_entries:
        raise SystemExit(f"worker {worker} saw corruption")


def test_processes_share_one_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), w, 20)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    fresh = Cache(tmp_path)
    assert all(fresh.get(f"{w}-{i}") == record(f"{w}-{i}") for w in range(3) for i in range(20))
    shared = fresh.get("shared")
    assert shared is not None and shared["text"] in {"from 0", "from 1", "from 2"}


def test_a_locked_file_is_not_mistaken_for_a_corrupted_one(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the write lock past the busy timeout means a skipped write, never
    a healthy shared file moved aside."""
    Cache(tmp_path).set("k", record("kept"))
    real_connect = sqlite3.connect

    def impatient(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["timeout"] = 0.1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", impatient)
    holder = real_connect(tmp_path / "completions.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        cache = Cache(tmp_path)
        cache.set("other", record("not written"))  # must not raise
        assert cache.get("k") == record("kept")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert cache.disk is not None and cache.disk.corrupt_files == 0 and cache.disk.busy >= 1
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []
    assert Cache(tmp_path).get("k") == record("kept")


# -- failure modes: the cache is never fatal --------------------------------------------------------

def test_a_cache_directory_under_a_file_warns_once_and_runs_without_the_disk(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = Cache(blocker / "cache")
    lm = ScriptedLM(["one", "two", "three"], cache=cache)
    with pytest.warns(RuntimeWarning, match="without its disk cache") as warned:
        assert lm.complete(MESSAGES).text == "one"
        assert lm.complete([{"role": "user", "content": "again"}]).text == "two"
        assert lm.complete(MESSAGES).text == "one"  # the memory layer still answers
    assert len([w for w in warned if "disk cache" in str(w.message)]) == 1
    assert cache.disk is not None and cache.disk.unavailable is not None
    assert "cannot create the cache directory" in cache.disk.unavailable


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only directories")
def test_a_read_only_home_runs_without_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    try:
        monkeypatch.delenv("LMBRIDGE_CACHE_DIR")
        monkeypatch.setenv("HOME", str(home))
        cache = Cache()
        with pytest.warns(RuntimeWarning, match="without its disk cache"):
            assert ScriptedLM(["ok"], cache=cache).complete(MESSAGES).text == "ok"
    finally:
        home.chmod(0o700)


def test_no_home_directory_at_all_means_memory_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("LMBRIDGE_CACHE_DIR")
    monkeypatch.setattr(Path, "home", no_home)
    with pytest.warns(RuntimeWarning, match="without its disk cache"):
        cache = Cache()
    assert cache.disk is None
    cache.set("k", record("v"))
    assert cache.get("k") == record("v")


@pytest.mark.parametrize("tool_calls", [
    "not a list", [1, 2], [{"raw": "{}"}], [{"name": 5, "raw": "{}"}], [{"name": "add", "raw": {"a": 1}}],
    [{"name": "add", "raw": "{}", "id": ["x"]}], [None],
])
def test_a_corrupt_tool_calls_entry_is_a_counted_miss(tmp_path: Path, tool_calls: object) -> None:
    lm = ScriptedLM(["first"], cache=Cache(tmp_path))
    lm.complete(MESSAGES)
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("UPDATE completions SET value = ?", (json.dumps({"text": "x", "tool_calls": tool_calls}),))
    cache = Cache(tmp_path)
    again = ScriptedLM(["fresh"], cache=cache).complete(MESSAGES)
    assert (again.text, again.cached) == ("fresh", False)
    assert cache.disk is not None and cache.disk.corrupt_entries == 1


def test_tool_calls_with_deeply_nested_arguments_in_the_cache_are_not_an_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    cache = Cache(tmp_path)
    lm = ScriptedLM(["x"], cache=cache)
    key = cache_key(lm.model, MESSAGES, lm.params)
    cache.set(key, {"text": "", "tool_calls": [{"name": "add", "raw": deep, "id": None}]})
    completion = lm.complete(MESSAGES)  # read back; a call whose arguments cannot be read, not a crash
    assert completion.cached and completion.tool_calls[0].args is None and completion.tool_calls[0].error


@pytest.mark.parametrize("value", ["[" * 100_000 + "]" * 100_000,
                                   '{"text": "x", "deep": ' + "[" * 50_000 + "]" * 50_000 + "}",
                                   '{"text": "x", "prompt_tokens": "7"}', '{"text": "x", "prompt_tokens": -1}',
                                   '{"text": 1}', "null", "NaN"])
def test_unreadable_entries_are_counted_misses(tmp_path: Path, value: str) -> None:
    Cache(tmp_path).set("k", record("good"))
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("UPDATE completions SET value = ?", (value,))
    cache = Cache(tmp_path)
    assert cache.get("k") is None
    assert cache.disk is not None and cache.disk.corrupt_entries == 1
    assert cache.get("k") is None and cache.disk.corrupt_entries == 1  # dropped, not counted again


def test_a_table_with_other_columns_is_moved_aside_and_caching_works(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("CREATE TABLE completions (k TEXT, v BLOB)")
        conn.execute("INSERT INTO completions VALUES ('old', 'row')")
    cache = Cache(tmp_path)
    cache.set("k", record("v"))
    assert Cache(tmp_path).get("k") == record("v")
    assert cache.disk is not None and cache.disk.corrupt_files == 1 and cache.disk.busy == 0
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        aside = [t for t in tables if t.startswith("completions_corrupt_")]
        assert len(aside) == 1 and "completions" in tables
        assert conn.execute(f"SELECT * FROM {aside[0]}").fetchall() == [("old", "row")]  # kept, not lost


def test_a_table_changed_under_an_open_cache_is_repaired(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.set("a", record("a"))
    with sqlite3.connect(tmp_path / "completions.sqlite") as conn:
        conn.execute("DROP TABLE completions")
        conn.execute("CREATE TABLE completions (only_one TEXT)")
    cache.clear_memory()
    assert cache.get("a") is None  # noticed: the connection is dropped
    cache.set("b", record("b"))
    cache.clear_memory()
    assert cache.get("b") == record("b")
