"""Routes: API tokens and the audit log (both ``admin``).

``POST /v1/tokens`` returns the new token's secret once (the store keeps its hash); a name already
taken is 409. The list never shows secrets. Creating and revoking are audited with the calling token's
name as the actor, like every admin action; ``GET /v1/audit`` shows the log, newest first (``baton
audit`` prints the same).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, Strict

from baton.caps.model import MAXIMA, Caps, Measure
from baton.models import iso
from baton.service.auth import Actor, TokenAdmin, issue_token, require, revoke_token
from baton.service.fields import INTEGRAL, TokenName
from baton.service.records import TokenRecord, TokenScope
from baton.service.tables import token_store

router = APIRouter(tags=["admin"])
Admin = Annotated[Actor, Depends(require(TokenScope.ADMIN))]


class TokenIn(BaseModel):
    name: TokenName = Field(description="1-64 of letters, digits, '.', '_', '-'; a letter or digit first")
    scope: TokenScope
    # what the runs it submits may spend together before each parks (0 or absent: no cap)
    max_usd: Annotated[float, Strict(), Field(ge=0, le=MAXIMA[Measure.USD])] | None = None
    max_tokens: Annotated[int, Strict(), Field(ge=0, le=int(MAXIMA[Measure.TOKENS])), INTEGRAL] | None = None
    max_minutes: Annotated[float, Strict(), Field(ge=0, le=MAXIMA[Measure.MINUTES])] | None = None
    max_turns: Annotated[int, Strict(), Field(ge=0, le=int(MAXIMA[Measure.TURNS])), INTEGRAL] | None = None

    def caps(self) -> Caps:
        return Caps(self.max_usd, self.max_tokens, self.max_minutes, self.max_turns)


class NewToken(BaseModel):
    """The secret is shown here once; keep it."""

    name: str
    scope: TokenScope
    token: str


class TokenOut(BaseModel):
    name: str
    scope: TokenScope
    created_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, token: TokenRecord) -> TokenOut:
        return cls(**token.to_json())


class AuditEntry(BaseModel):
    id: int
    at: str | None
    actor: str = Field(description="a token's name, a local user, or webhook:<forge>:<delivery id>")
    action: str
    key: str
    detail: dict[str, Any]


def _store(request: Request) -> TokenAdmin:
    store: TokenAdmin = request.app.state.store
    return store


@router.get("/v1/tokens", response_model=list[TokenOut], summary="List API tokens (never their secrets)")
def list_tokens(request: Request, actor: Admin) -> list[TokenOut]:
    return [TokenOut.of(t) for t in token_store(_store(request)).list_tokens()]


@router.post("/v1/tokens", response_model=NewToken, status_code=201, summary="Create an API token")
def create_token(request: Request, body: TokenIn, actor: Admin) -> NewToken:
    """The secret is in this response only (the store keeps its SHA-256). Audited as ``token-create``.
    ``max_usd``, ``max_tokens``, ``max_minutes``, ``max_turns``: what the runs it submits may spend
    together; past one each of its runs parks (``POST /v1/budget`` with ``token`` raises it)."""
    secret = issue_token(_store(request), body.name, body.scope, actor.name, body.caps())
    return NewToken(name=body.name, scope=body.scope, token=secret)


@router.delete("/v1/tokens/{name}", response_model=TokenOut, summary="Revoke an API token")
def delete_token(request: Request, name: str, actor: Admin) -> TokenOut:
    """Every request with the token is refused (401) from now on. Audited as ``token-revoke``."""
    return TokenOut.of(revoke_token(_store(request), name, actor.name))


@router.get("/v1/audit", response_model=list[AuditEntry], summary="The audit log, newest first")
def audit_log(
    request: Request, actor: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[AuditEntry]:
    return [AuditEntry(**audit_json(e)) for e in _store(request).list_audit(limit)]


def audit_json(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit row with its time as ISO 8601 (what the API and ``baton audit --json`` print)."""
    return {**entry, "at": iso(entry["at"])}
