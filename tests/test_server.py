"""LiteLLM against a real OpenAI-compatible server: ../shared/local-lm/serve.sh runs SmolLM2 under
llama-cpp-python's server on 127.0.0.1, and lmbridge.LM("openai/...", api_base=...) talks to it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

import lmbridge

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LMBRIDGE_LOCAL_LM", ROOT.parent / "shared" / "local-lm"))
PORT = int(os.environ.get("LMBRIDGE_TEST_PORT", "8018"))

pytestmark = [pytest.mark.server, pytest.mark.real_model]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    serve = SHARED / "serve.sh"
    if not serve.is_file():
        pytest.skip(f"{serve} not found (the shared local-lm kit is beside the repository in CI)")
    env = {**os.environ, "LM_VENV": str(ROOT / ".venv-lm"), "LM_RUN_DIR": str(ROOT / ".local-lm")}
    out = subprocess.run([str(serve), "--port", str(PORT)], env=env, capture_output=True, text=True,
                         timeout=1500, check=False)
    if out.returncode != 0:
        pytest.fail(f"serve.sh failed: {out.stderr[-2000:]}")
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    try:
        yield values
    finally:
        subprocess.run([str(SHARED / "stop.sh"), "--port", str(PORT)], env=env, capture_output=True, check=False)


def test_predict_through_litellm_against_a_real_openai_compatible_server(
        server: dict[str, str], tmp_path: Path) -> None:
    class Sentiment(lmbridge.Signature):
        """Classify the sentiment of the movie review as negative or positive."""

        text: str = lmbridge.InputField(prefix="Review")
        label: Literal["negative", "positive"] = lmbridge.OutputField(prefix="Sentiment")

    lm = lmbridge.LM(f"openai/{server.get('LOCAL_LM_MODEL', 'smollm2')}", api_base=server["LOCAL_LM_API_BASE"],
                   api_key="none", max_tokens=16, cache=lmbridge.lm._cache.Cache(tmp_path), timeout=120)
    program = lmbridge.Predict(Sentiment, lm=lm)
    prediction = program(text="I loved this movie, it was wonderful from start to finish.")
    assert prediction.label in ("negative", "positive")
    assert prediction.usage.calls == 1 and prediction.usage.prompt_tokens > 0
    again = program(text="I loved this movie, it was wonderful from start to finish.")
    assert again.usage.cache_hits == 1 and again.label == prediction.label
