"""``/mcp`` of ``baton serve``: the same tools over MCP's streamable HTTP (the SDK's own client), behind
the API's bearer tokens: no token or a revoked one is 401 before MCP is spoken; a ``run`` token starts a
turn of the fake agent and follows it to its end, stored under the token's name; a ``read`` token
lists threads but is refused a turn, with nothing submitted; an app started twice serves it twice; a
foreign ``Host`` or ``Origin`` is refused before the token is read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from baton.errors import BadInput
from baton.service.app import create_app
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import open_store
from tests.service_fixtures import Service, run_service


def over_http(service: Service, token: str, *steps: tuple[str, dict[str, Any]]) -> list[CallToolResult]:
    async def talk() -> list[CallToolResult]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=90) as http:
            transport = streamable_http_client(f"{service.url}/mcp", http_client=http)
            async with Client(transport, read_timeout_seconds=90) as client:
                return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(talk)


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def test_mcp_over_http_behind_the_same_tokens(settings: Settings, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-12"}
    with run_service(settings) as service:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for headers in ({}, {"Authorization": f"Bearer {service.revoked_token('run')}"}):
            refused = httpx.post(f"{service.url}/mcp", json=hello, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", (
                refused.text
            )
        started, threads = over_http(
            service,
            service.token("run", "an-mcp-client"),
            ("start_turn", {**key, "prompt": "Fix it.", "wait": 60}),
            ("list_threads", {}),
        )
        read_listed, read_refused = over_http(
            service,
            service.token("read"),
            ("list_threads", {"agent": "fake"}),
            ("start_turn", {**key, "prompt": "Again.", "wait": 1}),
        )
        jobs = service.store.list_jobs(thread="issue-12")
    turn = started.structured_content or {}
    assert not started.is_error and turn["outcome"] == "succeeded", text(started)
    assert [(j.id, j.actor) for j in jobs] == [(turn["run_id"], "an-mcp-client")]
    assert [t["thread"] for t in (threads.structured_content or {})["threads"]] == ["issue-12"]
    assert (
        not read_listed.is_error
        and (read_listed.structured_content or {})["threads"][0]["thread"] == "issue-12"
    )
    assert read_refused.is_error and "(403)" in text(read_refused), text(read_refused)


def test_an_app_started_twice_serves_mcp_each_time(settings: Settings) -> None:
    """A session manager runs once: each run of the app's lifespan gets its own."""
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    token = create_token(store, "twice", TokenScope.READ)
    store.close()
    app = create_app(settings)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    for _ in range(2):
        with TestClient(app) as http:
            answered = http.post("/mcp", json=hello, headers=headers)
            assert answered.status_code < 500, answered.text


def test_a_foreign_host_or_origin_is_refused_before_the_token_is_read(settings: Settings) -> None:
    """DNS rebinding: a page whose name came to resolve to the service sends its own name as ``Host``
    and ``Origin``. Refused by the SDK's check (421 for the Host, 403 for the Origin) before the token
    is looked at; the service's own address, the loopback names, ``public_url``'s name and the names
    of ``mcp_hosts`` are accepted, and a request without an Origin (not a browser's) is checked by its
    Host alone."""
    known = replace(settings, public_url="https://baton.example.com", mcp_hosts="baton.internal, proxy:8443")
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with run_service(known) as service:
        port = service.url.rsplit(":", 1)[1]
        accept = {"Accept": "application/json, text/event-stream"}
        good = {**accept, "Authorization": f"Bearer {service.token('read')}"}

        def post(headers: dict[str, str]) -> httpx.Response:
            return httpx.post(f"{service.url}/mcp", json=hello, headers=headers)

        foreign = [
            ({"Host": "evil.example.com"}, 421),
            ({"Host": f"evil.example.com:{port}", "Origin": f"http://evil.example.com:{port}"}, 421),
            ({"Origin": f"http://evil.example.com:{port}"}, 403),
            ({"Host": "proxy:9999"}, 421),  # a name given with a port: that port only
        ]
        for headers, status in foreign:
            for token in ({}, good):  # refused the same with or without a good token
                refused = post({**accept, **token, **headers})
                assert refused.status_code == status, (headers, refused.status_code, refused.text)
        assert post({**accept, "Host": f"localhost:{port}"}).status_code == 401  # past the check: no token
        for headers in (
            {},
            {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
            {"Host": f"[::1]:{port}"},
            {"Origin": f"http://127.0.0.1:{port}"},
            {"Host": "baton.example.com", "Origin": "https://baton.example.com"},
            {"Host": "baton.internal:8765", "Origin": "http://baton.internal:8765"},
            {"Host": "proxy:8443"},
        ):
            answered = post({**good, **headers})
            assert answered.status_code == 200 and '"result":{}' in answered.text, (headers, answered.text)


def test_mcp_hosts_names_only_hosts() -> None:
    for bad in ("http://baton.example.com", "baton.example.com/mcp", "two words", "*"):
        with pytest.raises(BadInput, match="mcp_hosts"):
            print(Settings(home=Path("/nonexistent"), mcp_hosts=bad).mcp_host_names)
    names = Settings(home=Path("/x"), mcp_hosts=" Baton.Internal , [::1]:8765,").mcp_host_names
    assert names == ("baton.internal", "[::1]:8765")
