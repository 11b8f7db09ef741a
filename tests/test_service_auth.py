"""Auth over a real uvicorn: the matrix of every ``/v1`` route x {no token, unknown, revoked, read, run,
admin}, and API tokens — created, listed, revoked and audited over HTTP and with ``baton tokens``.

The matrix enumerates ``app.routes``, so a route added later is covered without editing this file.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from baton.models import TokenScope
from baton.service.app import create_app
from baton.settings import Settings, load_settings
from tests.conftest import FAST
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
READ, RUN, ADMIN = TokenScope.READ, TokenScope.RUN, TokenScope.ADMIN
ADMIN_WORDS = ("/tokens", "/audit", "/sweep", "/reset")


def needed(method: str, path: str) -> TokenScope:
    """The scope issue 8 asks for: admin for reset, sweep, tokens and audit; read for other GETs; run
    for the rest (submitting and cancelling runs)."""
    if any(word in path for word in ADMIN_WORDS):
        return ADMIN
    return READ if method == "GET" else RUN


def v1_operations() -> list[tuple[str, str]]:
    """(method, path) of every /v1 operation of the app as built now (FastAPI ≥ 0.165 includes
    routers lazily: ``iter_route_contexts`` flattens them)."""
    app = create_app(load_settings(overrides={"home": "/nonexistent/baton-home"}, environ={}))
    return sorted(
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)
        if str(route.path).startswith("/v1/")
        for method in route.methods or ()
    )


OPERATIONS = v1_operations()


def fill(path: str) -> str:
    """Path parameters with dummy values (``{x:path}`` gets a value with a slash)."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: "a/b" if m.group(2) else "dummy", path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server for the whole matrix (it only reads, or refuses)."""
    home = tmp_path_factory.mktemp("matrix") / "home"
    with run_service(load_settings(overrides={"home": str(home), **FAST}, environ={})) as running:
        yield running


@pytest.fixture(scope="module")
def credentials(served: Service) -> dict[str, str | None]:
    return {
        "none": None,
        "unknown": "baton_" + "x" * 43,
        "revoked": served.revoked_token(ADMIN),
        **{scope.value: served.token(scope) for scope in TokenScope},
    }


def status(served: Service, token: str | None, method: str, path: str) -> httpx.Response:
    """The response's status and headers only (a stream, closed at once: an SSE route never ends)."""
    body: dict[str, object] | None = None if method in ("GET", "HEAD") else {}
    with served.client(token, timeout=10) as http, http.stream(method, fill(path), json=body) as response:
        return response


def test_the_matrix_sees_the_routes_of_every_group() -> None:
    paths = {path for _method, path in OPERATIONS}
    assert {"/v1/sessions", "/v1/session", "/v1/sessions/reset", "/v1/tokens", "/v1/audit"} <= paths
    assert ("DELETE", "/v1/tokens/{name}") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_auth_matrix(served: Service, credentials: dict[str, str | None], method: str, path: str) -> None:
    need = needed(method, path)
    for who in ("none", "unknown", "revoked"):
        response = status(served, credentials[who], method, path)
        assert response.status_code == 401, (who, method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    for scope in TokenScope:
        code = status(served, credentials[scope.value], method, path).status_code
        if scope.allows(need):
            assert code not in (401, 403) and code < 500, (scope, method, path, code)
        else:
            assert code == 403, (scope, method, path, code)


def test_a_malformed_authorization_header_is_401(service: Service) -> None:
    for header in ("Basic dXNlcjpwdw==", "Bearer", "baton_abc", "Token baton_abc"):
        response = httpx.get(service.url + "/v1/sessions", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_tokens_over_http_secret_once_listed_without_it_revoked_and_audited(service: Service) -> None:
    with service.client(service.token(ADMIN, "ops")) as admin:
        created = admin.post("/v1/tokens", json={"name": "ci", "scope": "run"})
        assert created.status_code == 201
        secret = created.json()["token"]
        assert created.json() == {"name": "ci", "scope": "run", "token": secret}
        with service.client(secret) as ci:
            assert ci.get("/v1/sessions").status_code == 200  # run ⊃ read
            assert ci.get("/v1/tokens").status_code == 403  # not admin
        listed = admin.get("/v1/tokens").json()
        assert {"name": "ci", "scope": "run", "revoked_at": None}.items() <= listed[0].items()
        assert secret not in json.dumps(listed) and "digest" not in listed[0]
        assert admin.post("/v1/tokens", json={"name": "ci", "scope": "read"}).status_code == 422
        assert admin.post("/v1/tokens", json={"name": "../x", "scope": "read"}).status_code == 422
        assert admin.delete("/v1/tokens/ci").json()["revoked_at"] is not None
        assert admin.delete("/v1/tokens/nope").status_code == 404
        with service.client(secret) as ci:
            assert ci.get("/v1/sessions").status_code == 401
        audit = admin.get("/v1/audit", params={"limit": 2}).json()
    assert [(e["action"], e["key"], e["actor"]) for e in audit] == [
        ("token-revoke", "ci", "ops"),
        ("token-create", "ci", "ops"),
    ]
    assert secret not in json.dumps(audit)


def test_audit_limit_is_validated(service: Service) -> None:
    with service.client("admin") as admin:
        assert admin.get("/v1/audit", params={"limit": 0}).status_code == 422
        assert admin.get("/v1/audit", params={"limit": "many"}).status_code == 422


def test_cli_tokens_create_ls_revoke_and_audit(service: Service, cli: Cli, settings: Settings) -> None:
    made = cli("tokens", "create", "--name", "bot", "--scope", "read", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert (data["name"], data["scope"]) == ("bot", "read") and data["token"].startswith("baton_")
    with service.client(data["token"]) as bot:
        assert bot.get("/v1/sessions").status_code == 200
        assert bot.post("/v1/sessions/reset", json={}).status_code == 403
    listed = cli("tokens", "ls", "--json")
    assert json.loads(listed.stdout)[0]["name"] == "bot" and data["token"] not in listed.stdout
    assert "bot" in cli("tokens", "ls").stdout
    assert cli("tokens", "revoke", "bot").returncode == 0
    with service.client(data["token"]) as bot:
        assert bot.get("/v1/sessions").status_code == 401
    unknown = cli("tokens", "revoke", "nobody")
    assert unknown.returncode == 2 and "no token named 'nobody'" in unknown.stderr
    audit = json.loads(cli("audit", "--json", "--limit", "2").stdout)
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("token-revoke", getpass.getuser()),
        ("token-create", getpass.getuser()),
    ]
    assert "token-create" in cli("audit").stdout


def test_cli_token_printed_once_plain(cli: Cli, home: Path) -> None:
    made = cli("tokens", "create", "--name", "plain", "--scope", "admin")
    assert made.returncode == 0
    assert re.fullmatch(r"baton_[A-Za-z0-9_-]{43}\n", made.stdout)
    assert "shown only this once" in made.stderr
    again = cli("tokens", "create", "--name", "plain", "--scope", "read")
    assert again.returncode == 2 and "exists" in again.stderr
    bad = cli("tokens", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
