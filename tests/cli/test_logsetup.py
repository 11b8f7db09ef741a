"""The log of ``baton serve`` and ``baton worker`` (:mod:`baton.cli.logsetup`): time, level, logger and
message on every line, as text or as JSON lines (``BATON_LOG_FORMAT=json``), at ``BATON_LOG_LEVEL``;
uvicorn's and Celery's loggers (the worker's pool processes included) through the same handler; bad
values refused naming the setting."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.cli.logsetup import SERVER_LOGGERS, JsonFormatter, TextFormatter, setup_logging
from baton.errors import BadInput
from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.models import JobStatus
from baton.settings import Settings, load_settings
from baton.store import Store
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Workers,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import BATON, wait_for
from tests.service_fixtures import free_port, wait_http

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
CELERY_OWN = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: [A-Z]+/")  # Celery's format, not ours


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures the root logger as a command would: put it back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    servers = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in SERVER_LOGGERS
    }
    yield
    for name, (own, propagate) in servers.items():
        logging.getLogger(name).handlers[:] = own
        logging.getLogger(name).propagate = propagate
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def configured(level: str = "INFO", fmt: str = "text") -> io.StringIO:
    out = io.StringIO()
    setup_logging(level, fmt, out)
    return out


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as error:
            info = (type(error), error, error.__traceback__)
    return logging.LogRecord("baton.executor", logging.ERROR, __file__, 1, message, args, info)


def test_a_text_line_has_time_level_logger_and_message() -> None:
    out = configured()
    logging.getLogger("baton.executor").info("job %s: %s", "j1", "ran")
    assert re.fullmatch(rf"{TIME} INFO baton\.executor: job j1: ran\n", out.getvalue()), out.getvalue()


def test_a_json_line_is_one_object_with_the_traceback_as_text() -> None:
    line = JsonFormatter().format(record("job %s failed", "j1", exc=True))
    assert "\n" not in line
    data = json.loads(line)
    assert set(data) == {"time", "level", "logger", "message", "exc_info"}
    assert re.fullmatch(TIME, data["time"])
    assert (data["level"], data["logger"], data["message"]) == ("ERROR", "baton.executor", "job j1 failed")
    assert data["exc_info"].startswith("Traceback (most recent call last):")
    assert data["exc_info"].endswith("ValueError: boom")
    assert "exc_info" not in json.loads(JsonFormatter().format(record("fine")))


def test_a_text_traceback_follows_its_line() -> None:
    text = TextFormatter().format(record("job %s failed", "j1", exc=True))
    first, *rest = text.splitlines()
    assert re.fullmatch(rf"{TIME} ERROR baton\.executor: job j1 failed", first)
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_json_lines_through_the_root_logger_at_the_level_asked_for() -> None:
    out = configured("warning", "json")
    logging.getLogger("baton.worker").info("not shown")
    logging.getLogger("uvicorn.error").warning("shown: %d", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a Python warning", UserWarning, stacklevel=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["level"], d["logger"]) for d in lines] == [
        ("WARNING", "uvicorn.error"),
        ("WARNING", "py.warnings"),
    ]
    assert lines[0]["message"] == "shown: 1" and "a Python warning" in lines[1]["message"]


def test_configured_once_a_second_call_replaces_the_first() -> None:
    root = logging.getLogger()
    others = list(root.handlers)  # pytest's own capture stays
    first = configured("INFO", "text")
    second = configured("DEBUG", "json")
    assert len(root.handlers) == len(others) + 1 and root.level == logging.DEBUG
    logging.getLogger("baton").debug("once")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "once"


def test_bad_values_are_refused_naming_the_setting(tmp_path: Path) -> None:
    base = {"BATON_HOME": str(tmp_path)}
    settings = load_settings(environ={**base, "BATON_LOG_FORMAT": "json", "BATON_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("json", "debug")
    assert (Settings(home=tmp_path).log_format, Settings(home=tmp_path).log_level) == ("text", "INFO")
    with pytest.raises(BadInput, match=r"setting 'log_format' must be one of text, json, not 'JSON'"):
        load_settings(environ={**base, "BATON_LOG_FORMAT": "JSON"})
    with pytest.raises(BadInput, match=r"setting 'log_level' must be one of DEBUG, INFO, .*not 'loud'"):
        load_settings(environ={**base, "BATON_LOG_LEVEL": "loud"})
    (tmp_path / "config.toml").write_text("log_format = 1\n")
    with pytest.raises(BadInput, match=r"setting 'log_format' from .*config.toml must be a string"):
        load_settings(environ=base)
    with pytest.raises(BadInput, match="log_level"):
        setup_logging("verbose")
    with pytest.raises(BadInput, match="log_format"):
        setup_logging("INFO", "yaml")


def test_anything_shaped_like_a_token_is_redacted_in_every_encoding_and_nothing_else() -> None:
    from baton.cli.logsetup import redact_tokens

    spelled = "".join(f"%{ord(c):02X}" for c in "baton_") + BODY  # every character of the prefix encoded
    for line in (
        f"GET /v1/runs/{TOKEN} HTTP/1.1",
        f"GET /v1/runs?q=Bearer%20{TOKEN}",
        f"GET /v1/runs?q=Bearer+baton%5f{BODY}",
        f"GET /x?next=baton%255F{BODY}",
        f"GET /x/{spelled}",
        f"Authorization: Bearer {TOKEN[:30]}",  # a cut one too
        f"GET /v1/runs/x{TOKEN} HTTP/1.1",  # glued to a word
        f"run id=abc_{TOKEN}; token=9{TOKEN}",
        f"GET /v1/runs/x{spelled}",
        f"GET /v1/runs/ab{TOKEN_AB}",  # mixed case: a token's body, glued or not
    ):
        redacted = redact_tokens(line)
        assert BODY[:14] not in redacted and "baton_***" in redacted, (line, redacted)
    names = (
        "baton_home and baton_a_short_name",
        "BATON_AGENTS_EXTRA=fake",
        "100% done",
        "baton_***",
        "/tmp/pytest-7/test_baton_worker_logs_celery_0/home",  # a name with baton_ inside a word
        "test_baton_worker_logs_celery_and_the_rest_of_a_long_name",
        "MY_BATON_AGENTS_EXTRA_AND_MORE_WORDS=1 ANOTHERBATON_SETTING_THAT_IS_LONG",
    )
    for line in names:
        assert redact_tokens(line) == line


# -- the commands -------------------------------------------------------------------------------------


LEAKED = "baton_Wq3rT0kenInTheQueryStr1ng"
TOKEN = "baton_" + secrets.token_urlsafe(32)  # shaped as `baton tokens create` makes them
BODY = TOKEN.removeprefix("baton_")
TOKEN_AB = "baton_" + "aB" * 16  # in mixed case for sure (a random one is, but for a chance of 10^-10)


def serve_and_stop(baton_env: dict[str, str], fmt: str) -> tuple[str, str, str]:
    """``baton serve`` with the log format ``fmt``: a request, a webhook delivered twice (the second
    logs an INFO line of ``baton.webhooks``), then SIGINT; (stdout, stderr, the delivery id)."""
    port, delivery = free_port(), str(uuid.uuid4())
    secret = "s3cret-webhook-value"
    env = {**os.environ, **baton_env, "BATON_LOG_FORMAT": fmt, "BATON_WEBHOOK_SECRET": secret}
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    with subprocess.Popen(
        [*BATON, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    ) as proc:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/healthz")
            for _ in range(2):
                hook = httpx.post(f"{url}/webhooks/github", content=body, headers=headers, timeout=10)
                assert hook.status_code == 202, hook.text
            # a token in the URL is refused, and must not be written to the access log either
            leaky = {"token": LEAKED, "limit": "5", "api_key": "k3y-in-url", "thread": LEAKED}
            assert httpx.get(f"{url}/v1/runs", params=leaky, timeout=10).status_code == 401
            # anywhere else in the URL, as it is or percent-encoded (once, twice), under any name
            for target in (
                f"/v1/runs/{TOKEN}",
                f"/v1/runs?q=Bearer%20{TOKEN}",
                f"/v1/runs/baton%5F{BODY}",
                f"/v1/runs/x?next=%2Fv1%2Fruns%2Fbaton%255f{BODY}",
            ):
                assert httpx.get(f"{url}{target}", timeout=10).status_code in (401, 404), target
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    return out, err, delivery


def test_baton_serve_logs_baton_and_uvicorn_lines_as_text(baton_env: dict[str, str]) -> None:
    out, err, delivery = serve_and_stop(baton_env, "text")
    assert out == "", "the access log is on stderr with the rest, not on stdout"
    lines = err.splitlines()
    redelivery = (
        rf"{TIME} INFO baton\.webhooks: webhook github {delivery}: redelivery, answered from the first"
    )
    assert any(re.fullmatch(redelivery, line) for line in lines), err
    access = rf'{TIME} INFO uvicorn\.access: 127\.0\.0\.1:\d+ - "POST /webhooks/github HTTP/1\.1" 202'
    assert any(re.fullmatch(access, line) for line in lines), err
    assert any(re.fullmatch(rf"{TIME} INFO uvicorn\.error: Application startup complete\.", x) for x in lines)
    assert lines[0].startswith("baton serve: http://127.0.0.1:")  # the start-up line, for people
    assert LEAKED not in err and "k3y-in-url" not in err
    assert "GET /v1/runs?token=***&limit=5&api_key=***&thread=*** HTTP/1.1" in err, err
    assert BODY[:20] not in err and BODY[-20:] not in err
    for target in (
        "/v1/runs/baton_***",
        "/v1/runs?q=Bearer%20baton_***",
        "/v1/runs/x?next=%2Fv1%2Fruns%2Fbaton_***",
    ):
        assert f'"GET {target} HTTP/1.1"' in err, err


def test_baton_serve_logs_json_lines_only(baton_env: dict[str, str]) -> None:
    out, err, delivery = serve_and_stop(baton_env, "json")
    assert out == ""
    lines: list[dict[str, Any]] = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    assert lines[0]["logger"] == "baton.cli" and lines[0]["message"].startswith("baton serve: http://")
    mine = [d for d in lines if d["logger"] == "baton.webhooks" and d["level"] == "INFO"]
    assert [d["message"] for d in mine] == [f"webhook github {delivery}: redelivery, answered from the first"]
    assert any(d["logger"] == "uvicorn.access" and "POST /webhooks/github" in d["message"] for d in lines)
    assert LEAKED not in err and any("/v1/runs?token=***&limit=5" in d["message"] for d in lines)
    assert BODY[:20] not in err and any("GET /v1/runs/baton_*** " in d["message"] for d in lines)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_baton_worker_logs_celery_and_its_pool_processes_as_json(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path
) -> None:
    worker = workers.start("a", env={"BATON_LOG_FORMAT": "json"})  # prefork: the job runs in a child
    job = jobs.submit(
        shared_store, client, {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "hi"}, "test"
    )
    executor = CeleryExecutor(client, shared_store)
    executor.submit(job.id)
    executor.stop()
    wait_for(lambda: (found := shared_store.get_job(job.id)) is not None and found.status == JobStatus.DONE)
    wait_for(lambda: f"job {job.id}: ran" in worker.text(), 10)
    worker.stop()
    text = worker.text()  # stdout (Celery's banner, not a log) and stderr (the log) together
    assert not [line for line in text.splitlines() if CELERY_OWN.match(line)], text
    logged = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    said = {(d["logger"], d["message"]) for d in logged}
    assert ("baton.cli", f"baton worker: home {worker.home}") in said
    assert any(name == "celery.apps.worker" and message.endswith(" ready.") for name, message in said)
    assert ("baton.worker", f"job {job.id}: ran") in said, "the pool process logs through the same handler"


def test_uvicorn_configured_earlier_in_the_process_still_logs_in_our_format() -> None:
    """uvicorn's default config gives its loggers their own handler and stops their propagation (an
    earlier uvicorn in the same process does that): the set-up takes them back."""
    import logging.config

    import uvicorn.config

    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    out = io.StringIO()
    setup_logging("info", "json", out)
    logging.getLogger("uvicorn.error").warning("shown: %d", 1)
    (line,) = out.getvalue().splitlines()
    assert (json.loads(line)["logger"], json.loads(line)["message"]) == ("uvicorn.error", "shown: 1")
