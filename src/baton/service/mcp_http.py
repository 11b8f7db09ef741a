"""``/mcp`` of ``baton serve``: the tools of ``baton mcp`` (:mod:`baton.service.mcp`) over MCP's
streamable HTTP, behind the API's bearer tokens. A request without a valid token is 401 before the MCP
SDK reads it; each tool then calls the API in this process (httpx's ASGI transport, no socket) with the
request's own ``Authorization``, so scopes, validation and the record of who submitted a turn are the
API's, unchanged. Only a run's events, followed for progress once the API let the token read the run,
are read here: that transport holds a streamed answer until its end. Stateless (no MCP session is kept
between requests): a request carries its token, and a turn is found again by its ``run_id`` from any
replica. DNS-rebinding checks are off: a bearer token, not a cookie, is what a browser's page would lack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from baton.fleet import jobs
from baton.service.auth import valid_token
from baton.service.mcp import build_server

PATH = "/mcp"
INNER = "http://baton.in-process"  # the base URL of the tools' in-process calls (never resolved)


async def run_events(app: FastAPI, run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """A run's agent events as its SSE route streams them, read here: the ASGI transport the tools'
    calls go through would hold a stream until its end."""
    async for item in jobs.read_events(app.state.store, app.state.settings, run_id, after):
        if item.end is not None:
            return
        yield {"seq": item.seq, **item.data}


class McpEndpoint:
    """The ASGI endpoint at :data:`PATH`: the token checked, then the SDK's stateless session manager."""

    def __init__(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app)
        self.server: MCPServer = build_server(INNER, None, transport, partial(run_events, app))
        self.manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """A session manager and its task group, for one run of the service's lifespan (a manager
        runs once: an app started again gets a new one)."""
        self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        refusal = None
        if scheme.lower() != "bearer" or not secret.strip():
            refusal = "missing bearer token"
        elif await run_in_threadpool(valid_token, request.app.state.store, secret.strip()) is None:
            refusal = "unknown or revoked token"
        if refusal is not None:
            answer = JSONResponse({"detail": refusal}, 401, headers={"WWW-Authenticate": "Bearer"})
            await answer(scope, receive, send)
            return
        manager = self.manager
        if manager is None:  # outside the lifespan (an app served without it)
            await JSONResponse({"detail": "MCP is not running"}, 503)(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)


def install(app: FastAPI) -> McpEndpoint:
    """Add ``/mcp`` to the app; the caller runs :meth:`McpEndpoint.running` in its lifespan."""
    endpoint = McpEndpoint(app)
    app.router.routes.append(Route(PATH, endpoint, methods=["GET", "POST", "DELETE"]))
    return endpoint
