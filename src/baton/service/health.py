"""Routes: ``/healthz`` (the process answers) and ``/readyz`` (it can do work: the store answers and
the volume of ``BATON_HOME`` has more free space than ``BATON_MIN_FREE``, and agents can be walled in
when ``BATON_CONFINE=required``; the answer says how they are). Neither needs a token: a
load balancer or an orchestrator probes them.
"""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from baton.sandbox.confine import describe
from baton.settings import Settings
from baton.store.base import RunStore

router = APIRouter(tags=["health"])


class Health(BaseModel):
    ok: bool


class Readiness(BaseModel):
    """``ready`` false comes with a 503 and the ``reason``."""

    ready: bool
    reason: str | None = None
    free_bytes: int | None = None
    min_free_bytes: int
    confinement: str | None = None  # how agents are walled in (BATON_CONFINE and the kernel)


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(ok=True)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The store answers and free disk is above BATON_MIN_FREE",
    responses={503: {"model": Readiness, "description": "not ready; `reason` says why"}},
)
def readyz(request: Request) -> JSONResponse:
    readiness = check_ready(request.app.state.settings, request.app.state.store)
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


def check_ready(settings: Settings, store: RunStore) -> Readiness:
    ready = _check_ready(settings, store)
    found = describe(settings)
    ready.confinement = found.detail
    if ready.ready and not found.ok:  # BATON_CONFINE=required on a machine without Landlock: no agent starts
        ready.ready, ready.reason = False, f"confinement {found.detail}"
    return ready


def _check_ready(settings: Settings, store: RunStore) -> Readiness:
    need = settings.min_free_bytes
    try:
        store.list_sessions(limit=1)
    except Exception as exc:  # any failure of the store means "not ready", with its words
        return Readiness(ready=False, reason=f"store unreachable: {exc}", min_free_bytes=need)
    try:
        free = shutil.disk_usage(settings.home).free
    except OSError as exc:
        return Readiness(ready=False, reason=f"cannot stat {settings.home}: {exc}", min_free_bytes=need)
    if free < need:
        reason = f"free disk {free} bytes is below BATON_MIN_FREE ({need} bytes)"
        return Readiness(ready=False, reason=reason, free_bytes=free, min_free_bytes=need)
    return Readiness(ready=True, free_bytes=free, min_free_bytes=need)
