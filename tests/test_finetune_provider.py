"""ProviderFinetune against a local fake of the OpenAI files and fine-tuning-jobs API (a real HTTP server
on 127.0.0.1), with the requests counted: success, resume after a kill without a second upload or job,
a failed or cancelled job, a rejected file, retries that never create a second job, and the checks
made before any request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_finetune_optimizer import always_right
from test_optimizers_support import SIG, metric, program_state, sentiment_rows

import lmbridge
from lmbridge import BootstrapFinetune
from lmbridge.finetune import FineTuningError, ProviderFinetune, TrainingProgress
from lmbridge.testing import ScriptedLM

KEY = "sk-test-not-a-real-key"
EXAMPLES = [[{"role": "user", "content": "Text: a good film\nLabel:"}, {"role": "assistant", "content": "positive"}],
            [{"role": "user", "content": "Text: a bad film\nLabel:"}, {"role": "assistant", "content": "negative"}]]


class FakeFineTuning:
    """``POST /v1/files``, ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``. Each GET
    answers with the next of ``statuses`` (the last repeats); ``replies`` maps "upload"/"create"/"get"
    to a list of HTTP error statuses sent, one per request, before the normal answers."""

    def __init__(self, statuses: list[str], *, reason: str = "", replies: dict[str, list[int]] | None = None,
                 message: str = "") -> None:
        self.statuses = list(statuses)
        self.reason, self.message = reason, message
        self.replies = {k: list(v) for k, v in (replies or {}).items()}
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def __enter__(self) -> FakeFineTuning:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path))
            if headers.get("Authorization") != f"Bearer {KEY}":
                return 401, {"error": {"message": "Incorrect API key provided"}}
            kind = "upload" if path == "/v1/files" else "create" if method == "POST" else "get"
            errors = self.replies.get(kind)
            if errors:
                status = errors.pop(0)
                return status, {"error": {"message": self.message or f"scripted {status}"}}
            if kind == "upload":
                message = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                         for p in message.iter_parts()}
                self.uploads.append({k: v.decode() for k, v in parts.items()})
                return 200, {"id": f"file-{len(self.uploads)}", "object": "file", "purpose": "fine-tune"}
            if kind == "create":
                self.jobs.append(json.loads(body))
                return 200, {"id": f"ftjob-{len(self.jobs)}", "status": "validating_files"}
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            job: dict[str, Any] = {"id": path.rsplit("/", 1)[-1], "status": status, "fine_tuned_model": None}
            if status == "succeeded":
                job["fine_tuned_model"] = "ft:gpt-4o-mini:acme::abc123"
            if status in ("failed", "cancelled") and self.reason:
                job["error"] = {"code": "invalid_training_file", "message": self.reason}
            return 200, job

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = fake.answer(self.command, self.path, self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                return None

        return Handler


class DictCheckpoint:
    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.state

    def save(self, state: dict[str, Any]) -> None:
        self.state = json.loads(json.dumps(state))  # what a file would hold


class Killed(BaseException):
    """The process dying mid-compile (like KeyboardInterrupt, it is no Exception)."""


def no_wait(seconds: float) -> None:
    return None


def trainer(server: FakeFineTuning, **options: Any) -> ProviderFinetune:
    found = ProviderFinetune(api_base=server.base_url, poll_interval=0.01, **options)
    found.sleep = no_wait
    return found


BASE = lmbridge.LM("openai/gpt-4o-mini")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield


def test_upload_create_poll_and_the_fine_tuned_lm() -> None:
    seen: list[TrainingProgress] = []
    checkpoint = DictCheckpoint()
    with FakeFineTuning(["queued", "running", "succeeded"]) as server:
        lm = trainer(server, hyperparameters={"n_epochs": 2}).train(
            BASE, EXAMPLES, seed=7, checkpoint=checkpoint, on_progress=seen.append)
    assert isinstance(lm, lmbridge.LM) and lm.model == "openai/ft:gpt-4o-mini:acme::abc123"
    assert (server.count("POST", "/v1/files"), server.count("POST", "/v1/fine_tuning"),
            server.count("GET", "/v1/fine_tuning/jobs/ftjob-1")) == (1, 1, 3)
    [upload] = server.uploads
    assert upload["purpose"] == "fine-tune"
    assert [json.loads(line) for line in upload["file"].splitlines()] == [{"messages": e} for e in EXAMPLES]
    assert server.jobs == [{"model": "gpt-4o-mini", "training_file": "file-1", "seed": 7,
                            "hyperparameters": {"n_epochs": 2}}]
    assert [p.status for p in seen] == ["uploading", "queued", "running", "succeeded"]
    assert checkpoint.state is not None and checkpoint.state["job_id"] == "ftjob-1"
    assert KEY not in json.dumps(checkpoint.state)  # the key is written nowhere


def test_a_killed_run_resumes_polling_the_same_job() -> None:
    checkpoint = DictCheckpoint()
    with FakeFineTuning(["running"]) as server:
        first = trainer(server)

        def die(seconds: float) -> None:
            raise Killed()

        first.sleep = die
        with pytest.raises(Killed):
            first.train(BASE, EXAMPLES, checkpoint=checkpoint)
        server.statuses = ["running", "succeeded"]
        lm = trainer(server).train(BASE, EXAMPLES, checkpoint=checkpoint)
    assert lm.model == "openai/ft:gpt-4o-mini:acme::abc123"
    assert server.count("POST", "/v1/files") == 1 and server.count("POST", "/v1/fine_tuning") == 1
    assert server.count("GET", "/v1/fine_tuning/jobs/ftjob-1") == 3


def test_other_training_data_does_not_resume_an_old_job() -> None:
    checkpoint = DictCheckpoint()
    with FakeFineTuning(["succeeded"]) as server:
        trainer(server).train(BASE, EXAMPLES, checkpoint=checkpoint)
        trainer(server).train(BASE, EXAMPLES[:1], checkpoint=checkpoint)
    assert server.count("POST", "/v1/fine_tuning") == 2


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_failed_or_cancelled_job_raises_with_the_providers_reason(status: str) -> None:
    reason = "Training file has 2 examples; at least 10 are required"
    with FakeFineTuning(["running", status], reason=reason) as server, pytest.raises(FineTuningError) as caught:
        trainer(server).train(BASE, EXAMPLES)
    assert isinstance(caught.value, lmbridge.LMError)
    assert reason in str(caught.value) and status in str(caught.value)
    assert caught.value.job_id == "ftjob-1" and caught.value.status == status


def test_a_rejected_file_is_a_clear_error_and_no_job_is_created() -> None:
    message = "Invalid file format. Line 1: missing 'messages'"
    with FakeFineTuning(["succeeded"], replies={"upload": [400]}, message=message) as server, \
            pytest.raises(FineTuningError, match=r"refused the training file.*HTTP 400.*missing 'messages'"):
        trainer(server).train(BASE, EXAMPLES)
    assert server.count("POST", "/v1/files") == 1 and server.count("POST", "/v1/fine_tuning") == 0


def test_busy_answers_are_retried_but_a_job_is_never_created_twice() -> None:
    with FakeFineTuning(["succeeded"], replies={"upload": [503], "create": [429], "get": [502]}) as server:
        trainer(server).train(BASE, EXAMPLES)
    assert server.count("POST", "/v1/files") == 2 and server.count("POST", "/v1/fine_tuning") == 2
    with FakeFineTuning(["succeeded"], replies={"create": [500]}) as server, \
            pytest.raises(lmbridge.LMError, match="HTTP 500"):
        trainer(server).train(BASE, EXAMPLES)
    assert server.count("POST", "/v1/fine_tuning") == 1  # a 5xx job creation may have made the job


def test_a_job_still_running_after_max_wait_is_left_running_to_resume() -> None:
    checkpoint = DictCheckpoint()
    with FakeFineTuning(["running"]) as server, pytest.raises(FineTuningError, match=r"not cancelled.*resume"):
        trainer(server, max_wait=0.001).train(BASE, EXAMPLES, checkpoint=checkpoint)
    assert checkpoint.state is not None and checkpoint.state["job_id"] == "ftjob-1"


def test_checks_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeFineTuning(["succeeded"]) as server:
        with pytest.raises(lmbridge.ConfigurationError, match="LocalLoRA"):
            trainer(server).check(lmbridge.LM("local/smollm2"))
        with pytest.raises(lmbridge.ConfigurationError, match="LocalLoRA"):
            trainer(server).check(ScriptedLM([]))
        monkeypatch.delenv("OPENAI_API_KEY")
        with pytest.raises(lmbridge.ConfigurationError, match=r"\$OPENAI_API_KEY"):
            trainer(server).train(BASE, EXAMPLES)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
        with pytest.raises(lmbridge.AuthenticationError):
            trainer(server).train(BASE, EXAMPLES)
    assert server.count("POST", "/v1/fine_tuning") == 0


# -- through BootstrapFinetune -----------------------------------------------------------------------

def test_a_killed_compile_resumes_the_providers_job_from_its_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "compile.json"
    student = lmbridge.Predict(SIG, lm=BASE)  # the model fine-tuned; never called here
    teacher = lmbridge.Predict(SIG, lm=ScriptedLM(always_right))
    before = program_state(student)
    with FakeFineTuning(["running"]) as server:
        dying = trainer(server)

        def die(seconds: float) -> None:
            raise Killed()

        dying.sleep = die
        with pytest.raises(Killed):
            BootstrapFinetune(metric, trainer=dying, display_progress=False).compile(
                student, trainset=sentiment_rows(4), teacher=teacher, checkpoint=ck)
        server.statuses = ["succeeded"]
        again = ScriptedLM([])  # the traces come from the checkpoint: no LM call
        compiled = BootstrapFinetune(metric, trainer=trainer(server), display_progress=False).compile(
            student, trainset=sentiment_rows(4), teacher=lmbridge.Predict(SIG, lm=again), checkpoint=ck)
    assert server.count("POST", "/v1/files") == 1 and server.count("POST", "/v1/fine_tuning") == 1
    assert compiled.lm is not None and compiled.lm.model == "openai/ft:gpt-4o-mini:acme::abc123"
    assert program_state(student) == before and student.lm is BASE
    assert KEY not in ck.read_text()


def test_a_rejected_file_leaves_the_student_unchanged() -> None:
    student = lmbridge.Predict(SIG, lm=BASE)
    before = program_state(student)
    with FakeFineTuning(["succeeded"], replies={"upload": [400]}, message="file too small") as server, \
            pytest.raises(FineTuningError, match="file too small"):
        BootstrapFinetune(metric, trainer=trainer(server), display_progress=False).compile(
            student, trainset=sentiment_rows(4), teacher=lmbridge.Predict(SIG, lm=ScriptedLM(always_right)))
    assert program_state(student) == before and student.lm is BASE


def test_the_report_names_the_providers_model_and_claims_no_steps() -> None:
    with FakeFineTuning(["succeeded"]) as server:
        compiled = BootstrapFinetune(metric, trainer=trainer(server), display_progress=False).compile(
            lmbridge.Predict(SIG, lm=BASE), trainset=sentiment_rows(4),
            teacher=lmbridge.Predict(SIG, lm=ScriptedLM(always_right)))
    assert compiled.report is not None
    [run] = compiled.report["finetune"]["training"]
    assert run["model"] == "openai/ft:gpt-4o-mini:acme::abc123" and run["base_model"] == "openai/gpt-4o-mini"
    assert run["trainer"] == "provider" and run["steps"] is None and run["examples"] == 4
