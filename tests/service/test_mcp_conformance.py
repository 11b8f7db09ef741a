"""``/mcp`` of ``baton serve`` against the official MCP conformance suite
(``@modelcontextprotocol/conformance``, pinned in package.json and installed by ``make setup``): the
server scenarios that apply to baton's tools — the handshake, ping, listing tools, resources and prompts,
an unknown tool's error, several event streams at once, and DNS-rebinding protection (a foreign
``Host``/``Origin`` refused, the loopback names accepted). The suite sends no token, so each request is
given one on the way in (an ASGI wrapper); the scenarios that need the suite's own test tools, prompts
and resources do not apply. A missing suite fails the test: ``make setup`` installs it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import open_store
from tests.service_fixtures import run_service

pytestmark = pytest.mark.slow  # a Node process per scenario (~1-2 s each)
SUITE = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "conformance"
EXPECTED = Path(__file__).with_name("mcp_conformance_expected.yml")  # the suite's baseline, and why
SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
]


def with_token(token: str) -> Callable[[ASGIApp], ASGIApp]:
    """An ASGI wrapper giving each request without an ``Authorization`` header this bearer token."""

    class WithToken:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and not any(k == b"authorization" for k, _ in scope["headers"]):
                scope = {
                    **scope,
                    "headers": [*scope["headers"], (b"authorization", f"Bearer {token}".encode())],
                }
            await self.app(scope, receive, send)

    return WithToken


@pytest.fixture(scope="module")
def suite() -> Path:
    assert SUITE.exists(), f"{SUITE} is missing: `make setup` installs it (package.json pins it)"
    return SUITE


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_conformance_scenario_passes(
    scenario: str, suite: Path, settings: Settings, tmp_path: Path
) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    token = create_token(store, "conformance", TokenScope.READ)
    store.close()
    with run_service(settings, with_token(token)) as service:
        port = service.url.rsplit(":", 1)[1]
        url = f"http://localhost:{port}/mcp"
        baseline = ["--expected-failures", str(EXPECTED), "--output-dir", str(tmp_path)]
        done = subprocess.run(
            [str(suite), "server", "--url", url, "--scenario", scenario, *baseline],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if scenario in EXPECTED.read_text():
            streams_at_once(service.url, token)
    [checks] = [json.loads(p.read_text()) for p in tmp_path.glob("*/checks.json")]
    said = f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, said
    missed = {c["id"] for c in checks if c["status"] != "SUCCESS"}
    assert missed == ({f"{scenario}-session"} if scenario in EXPECTED.read_text() else set()), said


def streams_at_once(url: str, token: str, count: int = 3) -> None:
    """What ``server-sse-multiple-streams`` would check with a session: several requests at once, each
    answered on its own event stream."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    hello = {"jsonrpc": "2.0", "method": "tools/list", "params": {}}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http, ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda i: http.post("/mcp", json={**hello, "id": i}), range(count)))
    assert [a.status_code for a in answers] == [200] * count
    assert all(a.headers["content-type"].startswith("text/event-stream") for a in answers)
    assert all(f'"id":{i},' in a.text and '"tools"' in a.text for i, a in enumerate(answers)), answers[0].text
