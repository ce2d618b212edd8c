"""``ProviderFinetune``: a provider's fine-tuning API as a weight trainer.

Over the OpenAI-compatible API, in three steps: the examples go up as one chat JSONL file
(``POST /files``, purpose ``fine-tune``), a job is created on that file (``POST /fine_tuning/jobs``),
and the job is polled (``GET /fine_tuning/jobs/{id}``), the wait growing between polls, until it
ends. Success gives ``LM("openai/<fine-tuned model>", fine_tuned=True, ...)``. A failed or cancelled
job raises ``FineTuningError`` with the provider's reason, and so does a file or job the provider
refuses (HTTP 4xx).

The file id, then the job id, are saved through the ``TrainingCheckpoint`` the moment the provider
returns them, with a hash of the training data: a compile killed while the job runs resumes polling
the same job instead of paying for a second one. The API key is read from an environment variable
when training starts, sent in the ``Authorization`` header and written nowhere.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lmbridge.errors import AuthenticationError, ConfigurationError, FineTuningError, LMError, MissingDependencyError
from lmbridge.finetune._data import jsonl_text
from lmbridge.finetune._protocol import TrainingCheckpoint, TrainingExample, TrainingProgress
from lmbridge.lm import LM, BaseLM, header_wait

OPENAI_BASE = "https://api.openai.com/v1"
ENDED = ("succeeded", "failed", "cancelled")
MAX_POLL_WAIT = 60.0
"""The longest wait between two polls, whatever ``poll_interval`` has grown to."""


class ProviderFinetune:
    """Fine-tune through an OpenAI-compatible files and fine-tuning-jobs API.

    ``api_base``: the API root (default: OpenAI's). ``api_key_env``: the environment variable holding
    the key. ``hyperparameters`` go with the job as they are (``{"n_epochs": 3}``); ``suffix`` names
    the new model. The job is polled at once, then ``poll_interval`` seconds later; each wait is half
    again as long as the one before, up to a minute. After ``max_wait`` seconds the job is left running
    and ``FineTuningError`` says so: training again with the same checkpoint resumes polling it.
    """

    name = "provider"

    def __init__(self, *, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 hyperparameters: Mapping[str, Any] | None = None, suffix: str | None = None,
                 poll_interval: float = 10.0, max_wait: float = 24 * 3600.0, timeout: float = 120.0,
                 num_retries: int = 3) -> None:
        if poll_interval <= 0 or max_wait <= 0:
            raise ValueError("poll_interval and max_wait must be positive")
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.hyperparameters = dict(hyperparameters or {})
        self.suffix = suffix
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.timeout = timeout
        self.num_retries = num_retries
        self.sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"ProviderFinetune(api_base={self.api_base!r}, api_key_env={self.api_key_env!r})"

    # -- the protocol ------------------------------------------------------------------------------
    def check(self, lm: BaseLM) -> None:
        """Refuse, before any work, an LM this trainer cannot fine-tune or a missing key or client."""
        if not isinstance(lm, LM) or lm.is_local:
            raise ConfigurationError(
                f"ProviderFinetune fine-tunes a provider's model (an lmbridge.LM such as 'openai/gpt-4o-mini'), "
                f"not {lm!r}; an embedded model is fine-tuned by lmbridge.finetune.LocalLoRA")
        if not os.environ.get(self.api_key_env):
            raise ConfigurationError(f"ProviderFinetune reads the API key from ${self.api_key_env}, which is not "
                                     "set: export it, or pass api_key_env='<the variable holding it>'")
        try:
            import httpx  # noqa: F401  - the one HTTP client lmbridge's dependencies bring (through LiteLLM)
        except ImportError as exc:
            raise MissingDependencyError("httpx", "finetune", "pip install httpx") from exc

    def train(self, lm: BaseLM, examples: Sequence[TrainingExample], *, seed: int = 0,
              checkpoint: TrainingCheckpoint | None = None,
              on_progress: Callable[[TrainingProgress], None] | None = None) -> BaseLM:
        """Upload, create the job (or resume the one in ``checkpoint``), poll it; the fine-tuned LM."""
        self.check(lm)
        if not examples:
            raise ValueError("ProviderFinetune needs at least one training example")
        import httpx  # loaded on the first job, so importing the optimizers does not pay for it

        text = jsonl_text(examples)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        saved = checkpoint.load() if checkpoint is not None else None
        state: dict[str, Any] = dict(saved) if saved and saved.get("data") == digest else {"data": digest}
        report = on_progress or (lambda progress: None)
        base = (self.api_base or OPENAI_BASE).rstrip("/")
        headers = {"Authorization": f"Bearer {os.environ[self.api_key_env]}"}
        with httpx.Client(base_url=base, headers=headers, timeout=self.timeout) as client:
            session = _Session(self, client, lm.model)
            if "job_id" not in state:
                if "file_id" not in state:
                    report(TrainingProgress(0, 1, status="uploading"))
                    state["file_id"] = session.upload(text)
                    _save(checkpoint, state)
                state["job_id"] = session.create(provider_model(lm.model), state["file_id"], seed)
                _save(checkpoint, state)
            model = session.wait(state["job_id"], report)
        report(TrainingProgress(1, 1, status="succeeded"))
        return LM(f"openai/{model}", fine_tuned=True, api_base=self.api_base,
                  api_key=os.environ.get(self.api_key_env))


def provider_model(model: str) -> str:
    """The provider's own name of a LiteLLM model string: ``openai/gpt-4o-mini`` -> ``gpt-4o-mini``."""
    return model.split("/", 1)[1] if "/" in model else model


def _save(checkpoint: TrainingCheckpoint | None, state: dict[str, Any]) -> None:
    if checkpoint is not None:
        checkpoint.save(dict(state))


class _Session:
    """The HTTP calls of one training run, with their retries and error mapping."""

    def __init__(self, trainer: ProviderFinetune, client: Any, model: str) -> None:
        self.trainer = trainer
        self.client = client
        self.model = model

    def upload(self, text: str) -> str:
        body = self.call("POST", "/files", "the provider refused the training file", resend=True,
                         files={"file": ("train.jsonl", text.encode("utf-8"), "application/jsonl")},
                         data={"purpose": "fine-tune"})
        return _text(body, "id", "the file upload")

    def create(self, base_model: str, file_id: str, seed: int) -> str:
        job: dict[str, Any] = {"model": base_model, "training_file": file_id, "seed": seed}
        if self.trainer.hyperparameters:
            job["hyperparameters"] = self.trainer.hyperparameters
        if self.trainer.suffix:
            job["suffix"] = self.trainer.suffix
        # Not re-sent after a 5xx or a lost connection: the job may exist, and a second one is paid twice.
        body = self.call("POST", "/fine_tuning/jobs", f"the provider refused to fine-tune {base_model}",
                         resend=False, json=job)
        return _text(body, "id", "the job creation")

    def wait(self, job_id: str, report: Callable[[TrainingProgress], None]) -> str:
        """Poll ``job_id`` until it ends; the fine-tuned model's name."""
        started, wait = time.monotonic(), self.trainer.poll_interval
        while True:
            job = self.call("GET", f"/fine_tuning/jobs/{job_id}", "the job could not be read", resend=True)
            status = str(job.get("status", ""))
            if status == "succeeded":
                return _text(job, "fine_tuned_model", f"the finished job {job_id}")
            if status in ("failed", "cancelled"):
                raise FineTuningError(f"{self.model}: fine-tuning job {job_id} {status}: {_reason(job)}",
                                      model=self.model, job_id=job_id, status=status)
            report(TrainingProgress(0, 1, status=status or "running"))
            if time.monotonic() - started + wait > self.trainer.max_wait:
                raise FineTuningError(
                    f"{self.model}: fine-tuning job {job_id} is still {status or 'running'} after "
                    f"{self.trainer.max_wait:.0f} s; it was not cancelled: train again with the same checkpoint "
                    "to resume polling it (or raise max_wait)", model=self.model, job_id=job_id, status=status)
            self.trainer.sleep(wait)
            wait = min(wait * 1.5, max(MAX_POLL_WAIT, self.trainer.poll_interval))

    def call(self, method: str, path: str, refused: str, *, resend: bool, **kwargs: Any) -> dict[str, Any]:
        """One request, retried on 429 (always) and on 5xx or a lost connection (when ``resend``);
        a 4xx raises ``FineTuningError`` with ``refused`` and the provider's message."""
        import httpx  # already loaded by ``train``

        tries = self.trainer.num_retries + 1
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                if resend and not last:
                    self.trainer.sleep(2.0 ** attempt)
                    continue
                raise LMError(f"{self.model}: {method} {path} failed: {type(exc).__name__}: {exc}"
                              + ("" if resend else "; the job may have been created: look at the provider's "
                                                   "fine-tuning jobs before training again"), model=self.model) from exc
            status = response.status_code
            if status < 400:
                return _json(response, f"{method} {path}", self.model)
            if (status == 429 or (status >= 500 and resend)) and not last:
                self.trainer.sleep(header_wait(response.headers) or 2.0 ** attempt)
                continue
            raise _error(status, f"{self.model}: {refused} (HTTP {status}): {_message(response)}", self.model)
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _error(status: int, message: str, model: str) -> LMError:
    if status in (401, 403):
        return AuthenticationError(message, status_code=status, model=model)
    if 400 <= status < 500 and status != 429:
        return FineTuningError(message, status_code=status, model=model)
    return LMError(message, status_code=status, model=model)


def _json(response: Any, what: str, model: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise LMError(f"{model}: {what} answered with a body that is not JSON: {response.text[:200]!r}",
                      model=model) from exc
    if not isinstance(body, dict):
        raise LMError(f"{model}: {what} answered with {type(body).__name__}, not a JSON object", model=model)
    return body


def _text(body: Mapping[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise LMError(f"{what} answered without {key!r}: {str(dict(body))[:300]}")
    return value


def _message(response: Any) -> str:
    """The provider's error message: ``{"error": {"message": ...}}``, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(no message)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return str(body)[:300]


def _reason(job: Mapping[str, Any]) -> str:
    """Why a job ended badly, in the provider's words."""
    error = job.get("error")
    if isinstance(error, dict) and (error.get("message") or error.get("code")):
        return str(error.get("message") or error.get("code"))
    if isinstance(error, str) and error:
        return error
    return "the provider gave no reason"
