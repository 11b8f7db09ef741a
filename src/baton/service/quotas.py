"""Routes: the usage-quota breakers, one per credential (``GET /v1/quotas``, read scope), and closing
one by hand (``POST /v1/quotas/clear``, admin scope, audited with the token's name): what ``baton
quota`` and ``baton quota clear`` do (:mod:`baton.housekeeping.quotas`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from baton.housekeeping.quotas import clear_breaker, quota_views
from baton.service.auth import Actor, require
from baton.service.records import TokenScope
from baton.service.schemas import QuotaCleared, QuotaOut

router = APIRouter(prefix="/v1/quotas", tags=["quotas"])


class ClearIn(BaseModel):
    credential: str = Field(
        min_length=1,
        max_length=200,
        description="the breaker's label (as GET /v1/quotas shows it) or its credential hash, or a prefix "
        "of either that names one breaker",
    )


@router.get("", response_model=list[QuotaOut], summary="Every credential's usage-quota breaker")
def list_quotas(
    request: Request, _actor: Annotated[Actor, Depends(require(TokenScope.READ))]
) -> list[dict[str, Any]]:
    """Every credential that met a usage limit, the held ones first, then by when they reset: its state
    (``exhausted`` until a turn goes through after the reset), whether it holds now (``held``: its runs
    wait), when it resets, the refusals in a row after a reset and what the agent said. Never the
    credential itself: ``credential`` is a hash of it."""
    return [v.to_json() for v in quota_views(request.app.state.store)]


@router.post("/clear", response_model=QuotaCleared, summary="Close a credential's breaker by hand (audited)")
def clear_quota(
    request: Request, body: ClearIn, actor: Annotated[Actor, Depends(require(TokenScope.ADMIN))]
) -> dict[str, Any]:
    """For a person who knows the quota was raised: runs of the credential start again at once. 404 when
    nothing matches, 422 (naming the candidates) when several do; audited ``quota-clear`` either way it
    was."""
    return clear_breaker(request.app.state.store, body.credential, actor.name).to_json()
