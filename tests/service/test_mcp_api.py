"""The HTTP client baton's MCP tools call the API with (:mod:`baton.service.mcp_api`): one client for
every call of a server, each call carrying the ``Authorization`` of the MCP request it answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest

from baton.service.mcp_api import Api


def test_one_client_serves_every_call_each_with_its_own_token(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[httpx.AsyncClient] = []

    class Counted(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", Counted)
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"path": request.url.path})

    api = Api("http://baton.test", None, httpx.MockTransport(answer))

    async def calls() -> list[dict[str, Any]]:
        return [
            await api.call(SimpleNamespace(headers={"authorization": f"Bearer {who}"}), "GET", f"/v1/{who}")
            for who in ("a", "b", "c")
        ]

    assert anyio.run(calls) == [{"path": "/v1/a"}, {"path": "/v1/b"}, {"path": "/v1/c"}]
    assert seen == ["Bearer a", "Bearer b", "Bearer c"]
    assert len(made) == 1
