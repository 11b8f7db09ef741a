"""Routes: plans with per-task progress (``/plans``), webhook deliveries (``/deliveries``) and the
audit log (``/audit``). Read tokens see all three (the dashboard shows everything and changes
nothing for them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from baton.forge.data.tables import delivery_store
from baton.plans.records import TaskStatus
from baton.plans.tables import plan_store
from baton.service.dashboard.web import Viewer, page, signed_in, state

router = APIRouter(include_in_schema=False)
Signed = Annotated[Viewer, Depends(signed_in)]
Limit = Annotated[int, Query(ge=1, le=5000)]


@router.get("/plans", response_class=HTMLResponse)
def plans(request: Request, viewer: Signed) -> HTMLResponse:
    _settings, store = state(request)
    found = sorted(plan_store(store).list_plans(), key=lambda p: p.updated_at, reverse=True)
    progress = {
        p.id: sum(1 for t in p.tasks if t.status in (TaskStatus.SUCCEEDED, TaskStatus.SKIPPED)) for p in found
    }
    return page(request, "plans.html", viewer, title="Plans", plans=found, progress=progress)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries(request: Request, viewer: Signed, limit: Limit = 200) -> HTMLResponse:
    _settings, store = state(request)
    rows = delivery_store(store).list_deliveries(limit=limit)
    return page(request, "deliveries.html", viewer, title="Webhooks", rows=rows, limit=limit)


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, viewer: Signed, limit: Limit = 200) -> HTMLResponse:
    _settings, store = state(request)
    rows = store.list_audit(limit)
    return page(request, "audit.html", viewer, title="Audit", rows=rows, limit=limit)
