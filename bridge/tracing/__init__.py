"""Tracing: the callback hook every run reports to, per-run usage and traces, OpenTelemetry spans, progress display."""

from lmbridge._hooks import Callback, CallbackSet, LMEnd, Run, RunScore
from lmbridge.tracing._callbacks import NO_RUN, RunScope, current_run_id, start_run, watched
from lmbridge.tracing._otel import OpenTelemetryCallback
from lmbridge.tracing._progress import Progress
from lmbridge.tracing._tracking import UsageTracker, current_trace, record_step, record_usage, trace, track_usage

__all__ = [
    "NO_RUN",
    "Callback",
    "CallbackSet",
    "LMEnd",
    "OpenTelemetryCallback",
    "Progress",
    "Run",
    "RunScope",
    "RunScore",
    "UsageTracker",
    "current_run_id",
    "current_trace",
    "record_step",
    "record_usage",
    "start_run",
    "trace",
    "track_usage",
    "watched",
]
