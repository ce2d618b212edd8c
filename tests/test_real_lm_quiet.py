"""The embedded runtime is quiet: a program's output is the program's, with no llama.cpp log line in it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import lmbridge
lm = lmbridge.LM("local/gemma3", max_tokens=2, temperature=0.0, cache=False)
try:
    print("answer:", lm("The capital of France is"))
except lmbridge.LMError as error:  # cut at 2 tokens: loud, and still the program's own output
    print("error:", type(error).__name__)
"""


@pytest.mark.real_model
@pytest.mark.parametrize("verbose", ["", "1"])
def test_a_local_completion_prints_no_runtime_log_unless_asked(verbose: str) -> None:
    env = {**os.environ, "LMBRIDGE_LOCAL_THREADS": "1", "LMBRIDGE_LOCAL_VERBOSE": verbose}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    runtime = [line for line in lines if line.startswith(("llama_", "llm_load", "ggml"))]
    assert any(line.startswith(("answer:", "error:")) for line in lines)
    if verbose:
        assert runtime  # the switch works, so the quiet run above is quiet for a reason
    else:
        assert runtime == [], runtime[:5]
