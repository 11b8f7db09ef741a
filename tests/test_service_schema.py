"""The service as a whole: ``baton serve`` (and its install hint), ``/healthz`` and ``/readyz``, the
OpenAPI document and docs, and Schemathesis against ``/openapi.json`` of a real uvicorn with an admin
token — no 5xx, every response as documented.

Schemathesis is bounded (a few examples per operation) and leaves out the SSE stream (it never ends);
``POST /v1/runs`` is fuzzed with its ``agent`` and ``repo`` pointed at the fake agent and a local
repository, so whatever else it generates (threads, modes, prompts, timeouts) runs no real agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from baton.errors import BadInput, BatonError, Busy, DiskFull, GitError, NotFound, RemoteError, StoreError
from baton.install import extra_hint
from baton.service.app import create_app
from baton.service.errors import baton_error_handler
from baton.service.health import check_ready
from baton.settings import Settings, load_settings
from tests.conftest import BATON, FAST, make_repo
from tests.service_fixtures import Service, free_port, run_service, service_fixture, wait_http  # noqa: F401

Cli = Callable[..., subprocess.CompletedProcess[str]]
WEBHOOK_SECRET = "s3cret-webhook-value"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """One server (with a webhook secret, so webhooks answer 401 rather than 503) and an admin token."""
    home = tmp_path_factory.mktemp("schema") / "home"
    make_repo(home.parent / "src-repo")
    saved = os.environ.get("BATON_WEBHOOK_SECRET")
    os.environ["BATON_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        with run_service(load_settings(overrides={"home": str(home), **FAST}, environ={})) as running:
            yield running, running.token("admin", "schemathesis")
    finally:
        if saved is None:
            os.environ.pop("BATON_WEBHOOK_SECRET", None)
        else:
            os.environ["BATON_WEBHOOK_SECRET"] = saved


@pytest.fixture(scope="module")
def api_schema(api: tuple[Service, str]) -> Any:
    service, _token = api
    return schemathesis.openapi.from_url(service.url + "/openapi.json")


def operations() -> list[tuple[GenerationMode, str, str]]:
    """(mode, method, path) for every documented operation but the excluded ones, from the app itself
    (the server is not up at collection time); invalid inputs only where there are inputs."""
    app = create_app(load_settings(overrides={"home": "/nonexistent/baton-home"}, environ={}))
    cases = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) in EXCLUDED:
                continue
            cases.append((GenerationMode.POSITIVE, method.upper(), path))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((GenerationMode.NEGATIVE, method.upper(), path))
    return cases


EXCLUDED = {("GET", "/v1/runs/{run_id}/events")}
# What the service must do: no 5xx, and every response as documented (status code, content type,
# headers, body). Not Schemathesis' acceptance heuristics: a schema-valid key can still be
# refused (an unknown agent is 422, as on the CLI), and unknown query parameters are ignored, as HTTP
# servers do.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# schemathesis.pytest's decorators read pytest internals that pytest 9 renamed (`_nodeid`), so each
# operation is driven here with Hypothesis directly: valid and invalid inputs, every default check.
@pytest.mark.parametrize(("mode", "method", "path"), operations())
def test_api_matches_its_schema(
    api: tuple[Service, str], api_schema: Any, mode: GenerationMode, method: str, path: str
) -> None:
    service, token = api
    operation = api_schema[path][method]
    fake_repo = str(service.settings.home.parent / "src-repo")

    @hypothesis.settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def check(case: Case[Any]) -> None:
        if (method, path) == ("POST", "/v1/runs") and isinstance(case.body, dict):
            case.body.update(agent="fake", repo=fake_repo)
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=30)

    check()


def test_openapi_and_docs(service: Service) -> None:
    document = httpx.get(service.url + "/openapi.json").json()
    assert document["info"]["title"] == "baton"
    assert {"/v1/sessions", "/v1/session", "/v1/sessions/reset", "/healthz", "/readyz"} <= set(
        document["paths"]
    )
    reset = document["paths"]["/v1/sessions/reset"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(reset["responses"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "swagger-ui" in httpx.get(service.url + "/docs").text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound, 404),
        (BadInput, 422),
        (Busy, 409),
        (DiskFull, 507),
        (RemoteError, 502),
        (GitError, 500),
        (StoreError, 500),
        (BatonError, 500),
    ],
)
def test_every_baton_error_maps_to_one_http_status(error: type[BatonError], code: int) -> None:
    """One handler for every route: the status by the error's class, the CLI's message as detail."""
    response = asyncio.run(baton_error_handler(None, error("what went wrong")))  # type: ignore[arg-type]
    assert response.status_code == code
    assert json.loads(bytes(response.body)) == {"detail": "what went wrong"}


def test_healthz_and_readyz_need_no_token(service: Service) -> None:
    assert httpx.get(service.url + "/healthz").json() == {"ok": True}
    ready = httpx.get(service.url + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["free_bytes"] >= body["min_free_bytes"] > 0


def test_readyz_is_503_with_the_reason_when_free_disk_is_below_min_free(settings: Settings) -> None:
    with run_service(settings.with_(min_free="1000000T")) as running:
        response = httpx.get(running.url + "/readyz")
        assert httpx.get(running.url + "/healthz").status_code == 200  # up, but not ready
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and "below BATON_MIN_FREE" in body["reason"]


def test_readyz_reports_an_unreachable_store(settings: Settings) -> None:
    class Down:
        def list_sessions(self, **kw: object) -> None:
            raise OSError("connection refused")

    readiness = check_ready(settings, Down())  # type: ignore[arg-type]
    assert not readiness.ready and readiness.reason == "store unreachable: connection refused"


def test_baton_serve_serves_and_never_prints_secrets(cli: Cli, baton_env: dict[str, str]) -> None:
    token = cli("tokens", "create", "--name", "ops", "--scope", "admin", "--json")
    secret = token.stdout.split('"token": "')[1].split('"')[0]
    port = free_port()
    env = {**os.environ, **baton_env, "BATON_WEBHOOK_SECRET": WEBHOOK_SECRET}
    with subprocess.Popen(
        [*BATON, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    ) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            headers = {"Authorization": f"Bearer {secret}"}
            assert httpx.get(f"http://127.0.0.1:{port}/v1/tokens", headers=headers).status_code == 200
            hook = httpx.post(f"http://127.0.0.1:{port}/webhooks/github", content=b"{}")
            assert hook.status_code == 401
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    assert f"baton serve: http://127.0.0.1:{port}" in err
    assert "GET /v1/tokens" in out + err  # the access log is on...
    assert secret not in out + err and WEBHOOK_SECRET not in out + err  # ...and shows no secret


def test_baton_serve_on_a_busy_port_says_so_with_its_own_exit_code(cli: Cli) -> None:
    """Bound before the banner: no "serving at" line, no uvicorn error, and exit 6 (3 is a busy key)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("serve", "--port", str(port))
    assert busy.returncode == 6 and busy.stdout == "", busy.stderr
    assert busy.stderr == f"error: port {port} on 127.0.0.1 is in use (another `baton serve`?): " + (
        "stop it, or pass another --port\n"
    )


def test_baton_serve_without_the_server_extra_says_how_to_install_it(baton_env: dict[str, str]) -> None:
    code = "import sys; sys.modules['uvicorn'] = None; from baton.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "serve"],
        env={**os.environ, **baton_env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert extra_hint("server") in done.stderr and "uvicorn" in done.stderr


def test_serve_help_is_listed(cli: Cli, home: Path) -> None:
    listed = cli("--help").stdout
    assert all(name in listed for name in ("serve", "tokens", "audit"))
    assert "--port" in cli("serve", "--help").stdout


def test_a_refused_body_or_query_is_said_in_batons_words(service: Service, src_repo: Path) -> None:
    """The API's 422 names the field and what it takes, one string as every other error, never
    pydantic's list of ``Input should be ...``."""
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t", "prompt": "p"}
    with service.client("admin") as http:
        bad_number = http.post("/v1/runs", json={**body, "timeout": "abc"})
        assert bad_number.status_code == 422
        assert bad_number.json() == {"detail": "timeout takes a number, not 'abc'"}
        unknown = http.post("/v1/runs", json={**body, "colour": "red"}).json()["detail"]
        assert unknown == "colour is not an option of this request"
        not_json = http.post("/v1/runs", content=b"{", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and "is not valid JSON" in not_json.json()["detail"]
        limit = http.get("/v1/audit", params={"limit": "many"}).json()["detail"]
        assert limit == "limit takes a whole number, not 'many'"
