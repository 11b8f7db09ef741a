"""Auth over a real uvicorn: the matrix of every ``/v1`` route x {no token, unknown, revoked, read, run,
admin}, and API tokens — created, listed, revoked and audited over HTTP and with ``baton tokens``.

The matrix enumerates ``app.routes``, so a route added later is covered without editing this file.
"""

from __future__ import annotations

import getpass
import itertools
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from baton.service.app import create_app
from baton.service.records import TokenScope
from baton.settings import Settings, load_settings
from tests.conftest import FAST, make_repo, wait_for
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
READ, RUN, ADMIN = TokenScope.READ, TokenScope.RUN, TokenScope.ADMIN
ADMIN_WORDS = ("/tokens", "/audit", "/sweep", "/reset", "/quotas/clear")


def needed(method: str, path: str) -> TokenScope:
    """The scope each route needs: admin for reset, sweep, tokens, audit, clearing a quota breaker and
    raising a spending cap; read for other GETs and for an MCP call's audit row (every scope's calls
    are audited); run for the rest (submitting and cancelling runs)."""
    if (method, path) == ("POST", "/v1/mcp/calls"):
        return READ
    if any(word in path for word in ADMIN_WORDS) or (method == "POST" and path.startswith("/v1/budget")):
        return ADMIN  # (raising a spending cap lets money be spent)
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


@dataclass
class World:
    """A server with one finished run (fake agent) on the key (fake, repo, t1), for valid requests."""

    service: Service
    repo: str
    run_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One server for the whole matrix."""
    root = tmp_path_factory.mktemp("matrix")
    repo = str(make_repo(root / "src-repo"))
    with run_service(load_settings(overrides={"home": str(root / "home"), **FAST}, environ={})) as running:
        with running.client("run") as http:
            run_id = http.post("/v1/runs", json={**key_of(repo), "prompt": "hello"}).json()["run_id"]
            wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "done")
        yield World(running, repo, run_id)


def key_of(repo: str) -> dict[str, str]:
    return {"agent": "fake", "repo": repo, "thread": "t1"}


@pytest.fixture(scope="module")
def credentials(world: World) -> dict[str, str | None]:
    return {
        "none": None,
        "unknown": "baton_" + "x" * 43,
        "revoked": world.service.revoked_token(ADMIN),
        **{scope.value: world.service.token(scope) for scope in TokenScope},
    }


Request = tuple[str, dict[str, object] | None, set[int]]  # URL, JSON body, the codes that mean success


def valid_request(world: World, method: str, path: str) -> Request | None:
    """A request to the operation that succeeds, for the operations known here (None: unknown)."""
    n, key = next(_unique), key_of(world.repo)
    run = f"/v1/runs/{world.run_id}"
    if (method, path) == ("DELETE", "/v1/tokens/{name}"):
        world.service.token(READ, f"doomed{n}")
        return f"/v1/tokens/doomed{n}", None, {200}
    known: dict[tuple[str, str], Request] = {
        ("GET", "/v1/runs"): ("/v1/runs", None, {200}),
        ("POST", "/v1/runs"): ("/v1/runs", {**key, "thread": f"submit-{n}", "prompt": "hi"}, {202}),
        ("GET", "/v1/runs/{run_id}"): (run, None, {200}),
        ("GET", "/v1/runs/{run_id}/events"): (run + "/events", None, {200}),
        # the run has ended, so a cancel is refused with 409: still past auth, which is the point here
        ("POST", "/v1/runs/{run_id}/cancel"): (run + "/cancel", None, {202, 409}),
        ("GET", "/v1/sessions"): ("/v1/sessions", None, {200}),
        ("GET", "/v1/session"): ("/v1/session?" + urlencode(key), None, {200}),
        # the key's worktree is on this service: its diff (empty)
        ("GET", "/v1/session/diff"): ("/v1/session/diff?" + urlencode(key), None, {200}),
        ("POST", "/v1/mcp/calls"): ("/v1/mcp/calls", {"tool": "list_threads", "outcome": "ok"}, {201}),
        ("POST", "/v1/sessions/reset"): ("/v1/sessions/reset", {**key, "scope": "conversation"}, {200}),
        ("GET", "/v1/tokens"): ("/v1/tokens", None, {200}),
        ("POST", "/v1/tokens"): ("/v1/tokens", {"name": f"made{n}", "scope": "read"}, {201}),
        ("GET", "/v1/audit"): ("/v1/audit", None, {200}),
        ("GET", "/v1/disk"): ("/v1/disk", None, {200}),
        ("GET", "/v1/disk/fleet"): ("/v1/disk/fleet", None, {200}),
        ("POST", "/v1/sweep"): ("/v1/sweep?dry_run=true", None, {200}),
        ("GET", "/v1/webhooks/deliveries"): ("/v1/webhooks/deliveries", None, {200}),
        ("GET", "/v1/quotas"): ("/v1/quotas", None, {200}),
        # no breaker in this store: 404, past auth, which is the point here
        ("POST", "/v1/quotas/clear"): ("/v1/quotas/clear", {"credential": "nobody"}, {404}),
        ("GET", "/v1/budget"): ("/v1/budget?" + urlencode(key), None, {200}),
        ("POST", "/v1/budget"): ("/v1/budget", {**key, "turns": 1}, {200}),
        ("GET", "/v1/budget/repo"): ("/v1/budget/repo?" + urlencode({"repo": world.repo}), None, {200}),
        ("POST", "/v1/budget/repo"): ("/v1/budget/repo", {"repo": world.repo, "usd": 1}, {200}),
        # no such token: 404, past auth, which is the point here
        ("GET", "/v1/budget/token"): ("/v1/budget/token?token=nobody", None, {404}),
        ("POST", "/v1/budget/token"): ("/v1/budget/token", {"token": "nobody", "usd": 1}, {404}),
    }
    return known.get((method, path))


_unique = itertools.count(1)


def call(world: World, token: str | None, method: str, url: str, body: object) -> httpx.Response:
    """Status and headers only (a stream, closed at once: an SSE stream may not have ended)."""
    with world.service.client(token, timeout=10) as http, http.stream(method, url, json=body) as response:
        return response


def test_the_matrix_sees_the_routes_of_every_group() -> None:
    paths = {path for _method, path in OPERATIONS}
    assert {"/v1/sessions", "/v1/session", "/v1/sessions/reset", "/v1/tokens", "/v1/audit"} <= paths
    assert ("DELETE", "/v1/tokens/{name}") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_auth_matrix(world: World, credentials: dict[str, str | None], method: str, path: str) -> None:
    """No, unknown or revoked token: 401. Too small a scope: 403. Enough: the valid request succeeds
    (an operation this file does not know yet, called with dummy values, must at least pass auth)."""
    need = needed(method, path)
    dummy: Request = (fill(path), None if method == "GET" else {}, set())
    for who in ("none", "unknown", "revoked"):
        response = call(world, credentials[who], method, *dummy[:2])
        assert response.status_code == 401, (who, method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    for scope in TokenScope:
        url, body, ok = valid_request(world, method, path) or dummy
        code = call(world, credentials[scope.value], method, url, body).status_code
        if not scope.allows(need):
            assert code == 403, (scope, method, path, code)
        elif ok:
            assert code in ok, (scope, method, path, code)
        else:
            assert code not in (401, 403) and code < 500, (scope, method, path, code)


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
        taken = admin.post("/v1/tokens", json={"name": "ci", "scope": "read"})  # a conflict, not bad input
        assert taken.status_code == 409
        assert taken.json() == {"detail": "a token named 'ci' exists; revoke it or choose another name"}
        bad = admin.post("/v1/tokens", json={"name": "../x", "scope": "read"})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("token name '../x': 1-64 of")
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


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_cli_tokens_create_ls_revoke_and_audit(service: Service, cli_here: Cli, settings: Settings) -> None:
    made = cli_here("tokens", "create", "--name", "bot", "--scope", "read", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert (data["name"], data["scope"]) == ("bot", "read") and data["token"].startswith("baton_")
    with service.client(data["token"]) as bot:
        assert bot.get("/v1/sessions").status_code == 200
        assert bot.post("/v1/sessions/reset", json={}).status_code == 403
    listed = cli_here("tokens", "ls", "--json")
    assert json.loads(listed.stdout)[0]["name"] == "bot" and data["token"] not in listed.stdout
    assert "bot" in cli_here("tokens", "ls").stdout
    assert cli_here("tokens", "revoke", "bot").returncode == 0
    with service.client(data["token"]) as bot:
        assert bot.get("/v1/sessions").status_code == 401
    unknown = cli_here("tokens", "revoke", "nobody")
    assert unknown.returncode == 2 and "no token named 'nobody'" in unknown.stderr
    audit = json.loads(cli_here("audit", "--json", "--limit", "2").stdout)
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("token-revoke", getpass.getuser()),
        ("token-create", getpass.getuser()),
    ]
    assert "token-create" in cli_here("audit").stdout


def test_cli_token_printed_once_plain(cli_here: Cli, home: Path) -> None:
    made = cli_here("tokens", "create", "--name", "plain", "--scope", "admin")
    assert made.returncode == 0
    assert re.fullmatch(r"baton_[A-Za-z0-9_-]{43}\n", made.stdout)
    assert "shown only this once" in made.stderr
    again = cli_here("tokens", "create", "--name", "plain", "--scope", "read")
    assert again.returncode == 2 and "exists" in again.stderr
    bad = cli_here("tokens", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
