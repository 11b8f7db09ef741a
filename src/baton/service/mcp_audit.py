"""Every ``tools/call`` of baton's MCP server audited: one row per call, written by the service
(``POST /v1/mcp/calls``, :mod:`baton.service.mcp_calls`) under the name of the token that made it, so a
row is the service's word on who called. Wrapped around the SDK's ``tools/call`` handler as an
extension's interceptor (the SDK's one hook for it), so no tool can skip it, an unknown tool or a refused
argument included. The row holds the tool, whether it answered, was refused (with the refusal's words)
or ended unanswered (cancelled), and the run and thread it was about: names and ids only, never a
prompt, an answer or a secret.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension
from mcp_types import CallToolRequestParams, CallToolResult, TextContent

from baton.service.mcp_api import Api

NAMED = {"agent": 64, "repo": 2048, "thread": 128, "run_id": 64}  # the arguments a row keeps, their room
TOOL_ROOM, ERROR_ROOM = 64, 500


def _plain(value: Any, room: int) -> str | None:
    """A caller's string as a row keeps it: printable characters only (no NUL for a JSON column), cut."""
    if not isinstance(value, str):
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:room])


def audit_row(params: CallToolRequestParams, result: HandlerResult) -> dict[str, Any]:
    """What the row of one call says: the tool, ok or refused, the run and thread it named."""
    arguments = params.arguments or {}
    tool = re.sub(r"[^A-Za-z0-9_.-]", "?", params.name[:TOOL_ROOM]) or "?"
    row: dict[str, Any] = {"tool": tool, "outcome": "ok"}
    for name, room in NAMED.items():
        if (value := _plain(arguments.get(name), room)) is not None:
            row[name] = value
    if result is None:
        row |= {"outcome": "unanswered", "error": "the call ended without an answer (cancelled or failed)"}
    elif isinstance(result, CallToolResult):
        if result.is_error:
            said = " ".join(c.text for c in result.content if isinstance(c, TextContent))
            row |= {"outcome": "refused", "error": _plain(said, ERROR_ROOM) or ""}
        elif isinstance(run_id := (result.structured_content or {}).get("run_id"), str):
            row["run_id"] = _plain(run_id, NAMED["run_id"])
    return row


class Audit(Extension):
    """The interceptor that audits each tool call once it is answered (or has failed)."""

    identifier = "dev.baton/audit"

    def __init__(self, api: Api) -> None:
        self._api = api

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result: HandlerResult = None
        try:
            result = await call_next(ctx)
        finally:  # a call that raised (a protocol error, the client gone mid-call) is a row as well
            await self._api.audit(ctx.request, audit_row(params, result))
        return result
