"""Route: ``POST /v1/mcp/calls``, the audit row of one call of baton's MCP tools
(:mod:`baton.service.mcp_audit`), written as ``mcp.<tool>`` with the calling token's name as the actor
(the service's word; the tool, the outcome and the names are the MCP server's report). A ``read`` token
may write it: every scope's calls are audited, a refused one's too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from baton.service.auth import Actor, require
from baton.service.records import TokenScope
from baton.service.runs import StoreDep, slug_of

router = APIRouter(tags=["mcp"])
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]


class McpCall(BaseModel):
    """One tool call: which tool, how it ended, what it was about (names and ids, never a prompt)."""

    tool: str = Field(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.?-]+$")
    outcome: Literal["ok", "refused", "unanswered"]
    error: str | None = Field(None, max_length=500, description="the refusal's words")
    agent: str | None = Field(None, max_length=64)
    repo: str | None = Field(None, max_length=2048)
    thread: str | None = Field(None, max_length=128)
    run_id: str | None = Field(None, max_length=64)


class Audited(BaseModel):
    action: str
    key: str


@router.post("/v1/mcp/calls", status_code=201, response_model=Audited, summary="Audit one MCP tool call")
def audit_mcp_call(body: McpCall, actor: Reader, store: StoreDep) -> Audited:
    """The row's key: the thread (agent:slug:thread) when the call named one, else its run, else ``*``."""
    if body.agent and body.repo and body.thread:
        key = f"{body.agent}:{slug_of(body.repo)}:{body.thread}"
    else:
        key = body.run_id or "*"
    action = f"mcp.{body.tool}"
    store.audit(action, key, actor.name, body.model_dump(exclude_none=True, exclude={"tool"}))
    return Audited(action=action, key=key)
