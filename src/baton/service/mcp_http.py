"""``/mcp`` of ``baton serve``: the tools of ``baton mcp`` (:mod:`baton.service.mcp`) over MCP's
streamable HTTP, behind the API's bearer tokens. A request whose ``Host`` or ``Origin`` names neither the
address it came to nor a name the service is known by (``public_url``, ``mcp_hosts``) is refused first,
by the SDK's own check (DNS rebinding: a page whose name came to resolve to this service); then one
without a valid token is 401 before the MCP SDK reads it. Each tool calls the API in this process
(httpx's ASGI transport) with the request's own ``Authorization``, so scopes, validation and the record
of who submitted a turn are the API's; a run's events are read here (that transport holds a streamed
answer until its end). Stateless: a request carries its token, a turn is found again by its ``run_id``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from baton.fleet import jobs
from baton.service.auth import valid_token
from baton.service.mcp import build_server
from baton.settings import Settings

PATH = "/mcp"
INNER = "http://baton.in-process"  # the base URL of the tools' in-process calls (never resolved)


async def run_events(app: FastAPI, run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """A run's agent events as its SSE route streams them, read here: the ASGI transport the tools'
    calls go through would hold a stream until its end."""
    async for item in jobs.read_events(app.state.store, app.state.settings, run_id, after):
        if item.end is not None:
            return
        yield {"seq": item.seq, **item.data}


LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def known_names(settings: Settings, server: tuple[str, int] | None) -> tuple[str, ...]:
    """The ``Host`` values ``/mcp`` answers to: the address a request came to (``server``: the loopback
    names too, on loopback), ``public_url``'s and ``mcp_hosts``'; a name without a port, on any port."""
    names: list[str] = []
    if server is not None:
        host = f"[{server[0]}]" if ":" in server[0] else server[0]
        names += [*LOOPBACK] if host in LOOPBACK or host.startswith("127.") else [host]
    if settings.public_url:
        names.append(urlsplit(settings.public_url).netloc.lower())
    names += settings.mcp_host_names
    ported = re.compile(r":[0-9]+$")
    return tuple(
        dict.fromkeys(n for name in names for n in (name, f"{name}:*")[: 1 if ported.search(name) else 2])
    )


def guard(settings: Settings, server: tuple[str, int] | None) -> TransportSecurityMiddleware:
    """The SDK's check of a request's ``Host`` and ``Origin`` (``http://`` or ``https://`` a known name);
    a request without an ``Origin`` (not a browser's) is checked by its ``Host`` alone."""
    hosts = known_names(settings, server)
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecurityMiddleware(
        TransportSecuritySettings(allowed_hosts=list(hosts), allowed_origins=origins)
    )


class McpEndpoint:
    """The ASGI endpoint at :data:`PATH`: the token checked, then the SDK's stateless session manager."""

    def __init__(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app)
        self.server: MCPServer = build_server(INNER, None, transport, partial(run_events, app))
        self.manager: StreamableHTTPSessionManager | None = None
        self._guards: dict[tuple[str, int] | None, TransportSecurityMiddleware] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """A session manager and its task group, for one run of the service's lifespan (a manager
        runs once: an app started again gets a new one)."""
        self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            # Host and Origin are checked before the token (__call__), against the address of each request
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
        server = tuple(scope["server"]) if scope.get("server") else None
        check = self._guards.get(server)
        if check is None:
            check = self._guards[server] = guard(request.app.state.settings, server)
        refused = await check.validate_request(request)
        if refused is not None:  # a foreign Host or Origin: nothing else is read
            await refused(scope, receive, send)
            return
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
