"""The HTTP API of one ``baton serve`` as baton's MCP tools and resources call it (:mod:`baton.service.mcp`):
one bearer token (``baton mcp``'s, from its environment) or else the ``Authorization`` of the MCP request
being answered (``baton serve``'s own ``/mcp``, whose calls go in-process through httpx's ASGI
transport). A refusal is a ToolError in the service's own words. A run's events come from its Server-Sent
Events route; in-process, where the ASGI transport would hold a stream's body until its end, from the
service's own reader of the same stream (``events``). :meth:`Api.audit` writes the audit row of one tool
call through the service, under the token's name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import httpx
from mcp.server.mcpserver.exceptions import ToolError

EventSource = Callable[[str, int], AsyncIterator[dict[str, Any]]]  # (run_id, after seq) -> agent events
AUDIT_TIMEOUT = 10.0  # seconds an audit row may take before the call is answered without it
log = logging.getLogger(__name__)


class Refused(ToolError):
    """The service's refusal of a call (its HTTP ``status``), in its own words."""

    def __init__(self, status: int, said: str) -> None:
        super().__init__(f"baton refused ({status}): {said}")
        self.status = status


def bearer(request: Any) -> str:
    """The ``Authorization`` header of the HTTP request an MCP message came in (``/mcp``)."""
    headers = getattr(request, "headers", None)
    said = headers.get("authorization") if headers is not None else None
    if not isinstance(said, str):  # the gate in front of /mcp lets no such request through
        raise ToolError("this MCP request carries no bearer token")
    return said


class Api:
    """Calls to the API at ``url``, each with ``token`` or else the MCP request's own token."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        events: EventSource | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._transport = transport
        self._events = events
        self._shared: httpx.AsyncClient | None = None

    def authorization(self, request: Any) -> str:
        """The header the calls answering ``request`` (the MCP message's HTTP request) carry."""
        return f"Bearer {self._token}" if self._token is not None else bearer(request)

    def _http(self) -> httpx.AsyncClient:
        """The one client of this server's calls (each carries its own ``Authorization``): a client
        made per call cost more than the call itself (its transports, SSL context, proxy map)."""
        if self._shared is None:
            self._shared = httpx.AsyncClient(base_url=self.url, transport=self._transport)
        return self._shared

    async def call(
        self,
        request: Any,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The API's JSON answer; a ToolError for a refusal or a service out of reach."""
        headers = {"Authorization": self.authorization(request)}
        try:
            response = await self._http().request(
                method, path, params=params, json=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise ToolError(
                f"baton serve at {self.url} cannot be reached: {type(exc).__name__}: {exc}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            said = detail if isinstance(detail, str) else response.text[:500] or response.reason_phrase
            raise Refused(response.status_code, said)
        if not isinstance(data, dict):
            raise ToolError(
                f"baton serve at {self.url} answered {response.status_code} without a JSON object"
            )
        return data

    async def events(self, request: Any, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The run's agent events (``{"seq", "run_id", "attempt", "event"…}``) from the start, live
        until it ends; the caller bounds the wait. The token was checked by a read of the run first."""
        if self._events is not None:
            async for item in self._events(run_id, 0):
                yield item
            return
        headers = {"Authorization": self.authorization(request)}
        async with self._http().stream(
            "GET", f"/v1/runs/{run_id}/events", headers=headers, timeout=None
        ) as response:
            if response.status_code >= 400:
                return
            kind, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line and data:
                    if kind == "outcome":
                        return
                    if kind == "agent":
                        yield json.loads(data)
                    kind, data = "", ""

    async def audit(self, request: Any, row: Mapping[str, Any]) -> None:
        """Write one tool call's audit row; a failure is logged, never the caller's error (the call
        it records has happened)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(AUDIT_TIMEOUT):
            try:
                await self.call(request, "POST", "/v1/mcp/calls", body=row, timeout=AUDIT_TIMEOUT)
            except ToolError as exc:
                log.warning("the audit row of an MCP call was not written: %s", exc)
