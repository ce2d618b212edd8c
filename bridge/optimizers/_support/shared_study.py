"""One optuna study run by several worker processes, on one machine or many.

MIPROv2 given ``checkpoint="postgresql://..."`` (or an SQLite path) keeps its study in a database.
Every worker that opens the same checkpoint runs trials of that one study:

* ``claim_trial`` hands each worker the next trial. A trial is claimed once (optuna's ``ask``
  takes a queued trial under a row lock), and no more than ``num_trials`` trials are ever live: a
  worker that loses the race for the last slot gives its fresh trial back as FAIL with the user
  attribute ``surplus`` before it runs anything, and waits for the others.
* ``heartbeat`` beats optuna's trial heartbeat while a trial runs. A worker that dies (SIGKILL, a
  lost machine) stops beating; after ``GRACE_PERIOD`` seconds any other worker fails its trial
  (``optuna.storages.fail_stale_trials``) and optuna's retry callback queues the same point again
  as a WAITING trial, which the next free worker runs. A dead process on the same machine is
  noticed at once, without waiting for the grace period.
* ``StudyCounter`` counts LM calls and cost in a table next to optuna's, so a budget
  (``max_lm_calls``, ``max_cost``) can hold for the whole study rather than per worker.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HEARTBEAT_INTERVAL = 5
"""Seconds between two heartbeats of a running trial."""
GRACE_PERIOD = 30
"""Seconds without a heartbeat after which a running trial counts as dead and is retried."""
MAX_RETRY = 3
"""How many times one point is retried after its workers died."""
POLL = 0.5
"""Seconds a worker waits before looking again when the last trials are running elsewhere."""

_HOST = socket.gethostname()


def storage_options(optuna: Any) -> dict[str, Any]:
    """``RDBStorage`` keyword arguments that turn on the heartbeat and the retry of dead trials
    (the callback and its keyword were renamed in optuna 5)."""
    callback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if callback is None:
        callback = optuna.storages.RetryFailedTrialCallback
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks the retry callback experimental
        retry = callback(max_retry=MAX_RETRY)
    return {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD, name: retry}


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _fail(study: Any, trial: Any, optuna: Any) -> None:
    """Fail a running trial whose worker is gone, and queue its retry as optuna would."""
    storage = study._storage
    try:
        failed = storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker failed it first
    if not failed:
        return
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None) or storage.get_failed_trial_callback
    callback = getter()
    if callback is not None:
        callback(study, storage.get_trial(trial._trial_id))


UNCLAIMED_GRACE = 60.0
"""Seconds after which a running trial that no worker has claimed is taken for a dead worker's."""


def _unclaimed_for(trial: Any) -> float:
    """Seconds since ``trial`` started (0 when the storage does not say)."""
    started = getattr(trial, "datetime_start", None)
    if started is None:
        return 0.0
    now = datetime.datetime.now(started.tzinfo) if started.tzinfo is not None else datetime.datetime.now()
    return float((now - started).total_seconds())


def reap(study: Any, optuna: Any, trials: list[Any] | None = None) -> bool:
    """Fail (and so queue again) the running trials whose worker is dead: no heartbeat for the grace
    period, or a process on this machine that no longer exists. ``trials`` is a fresh snapshot of the
    study's trials, when the caller has one. Returns whether it failed a trial itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental in optuna 3 and 4
        optuna.storages.fail_stale_trials(study)
    running = optuna.trial.TrialState.RUNNING
    reaped = False
    for t in study.get_trials(deepcopy=False, states=(running,)) if trials is None else trials:
        if t.state != running:
            continue
        claim = t.user_attrs.get("claim")
        if not isinstance(claim, dict) or claim.get("number") != t.number:
            # Not claimed yet (a queued retry still carries the dead claim of its original). A worker claims
            # a trial right after asking for it, so one left unclaimed for a minute belongs to a dead worker.
            if _unclaimed_for(t) > UNCLAIMED_GRACE:
                _fail(study, t, optuna)
                reaped = True
            continue
        if claim.get("host") == _HOST and not process_alive(int(claim.get("pid", 0))):
            _fail(study, t, optuna)
            reaped = True
    return reaped


def claim_trial(study: Any, num_trials: int, optuna: Any) -> Any | None:
    """The next trial for this worker, or None once ``num_trials`` trials are complete. Waits while
    the last trials run in other workers, since any of them may die and need a retry."""
    states = optuna.trial.TrialState
    while True:
        trials = study.get_trials(deepcopy=False)
        if reap(study, optuna, trials):
            trials = study.get_trials(deepcopy=False)
        if sum(t.state == states.COMPLETE for t in trials) >= num_trials:
            return None
        waiting = any(t.state == states.WAITING for t in trials)
        live = sum(t.state in (states.COMPLETE, states.RUNNING, states.WAITING) for t in trials)
        if live >= num_trials and not waiting:
            time.sleep(POLL)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with Study.optimize": we beat it
            trial = study.ask()
        beat_now(study, trial)  # a trial never runs without a heartbeat, so its death is always noticed
        # A retry carries the user attributes of the trial it retries, its claim and origin among them.
        origin = trial.user_attrs.get("origin")
        trial.set_user_attr("claim", {"host": _HOST, "pid": os.getpid(), "number": trial.number})
        if origin is not None:
            return trial  # a retry of a dead worker's trial always runs
        trial.set_user_attr("origin", trial.number)
        frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
        rank = sum(1 for n, t in frozen.items() if n < trial.number and t.state != states.FAIL) + 1
        if rank <= num_trials:
            return trial
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=states.FAIL)


def beat_now(study: Any, trial: Any) -> None:
    """Record one heartbeat of ``trial`` (when the storage has heartbeats on). optuna never calls a
    trial stale before its first beat, so the beat comes right after the trial is taken."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", None)
    if interval is not None and interval():
        storage.record_heartbeat(trial._trial_id)


@contextmanager
def heartbeat(study: Any, trial: Any) -> Iterator[None]:
    """Beat ``trial``'s heartbeat in a background thread while the block runs."""
    storage = study._storage
    enabled = getattr(storage, "get_heartbeat_interval", None)
    interval = enabled() if enabled is not None else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception:  # a database blip: the next beat tries again
                pass
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"lmbridge-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
