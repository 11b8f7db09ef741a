"""The FastAPI application: :func:`create_app` wires the store, the executor and the background
sweeper into ``app.state`` and mounts one router per route group.

Start-up (lifespan): open the store, mark jobs left ``running`` by a previous process ``done``/crashed
and hand the queued ones to the executor (it does both in :meth:`Executor.start`), start the sweeper
thread. Shut-down stops them in reverse.

Errors: every route raises baton's own errors (:mod:`baton.errors`) and one handler here turns them into
HTTP, so every route (present and future) answers alike: ``{"detail": "<the CLI's message>"}`` with
NotFound 404, BadInput 422, Busy 409, DiskFull 507, RemoteError 502, any other BatonError 500. The
same codes (and 401/403 from auth) are documented on every ``/v1`` operation, with :class:`Problem`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from baton.errors import BadInput, BatonError, Busy, DiskFull, NotFound, RemoteError
from baton.executors.local import LocalExecutor
from baton.housekeeping.sweep import sweep_periodically
from baton.service import admin, disk, health, metrics, runs, sessions, webhooks
from baton.settings import Settings, load_settings
from baton.store import open_store

DESCRIPTION = """Durable conversations and durable workdirs for coding agents, over HTTP.

Every `/v1` route needs `Authorization: Bearer <token>` (`baton tokens create`): `read` for GETs,
`run` to submit and cancel runs, `admin` for reset, sweep, tokens and the audit log (admin ⊃ run ⊃
read); a missing, unknown or revoked token is 401, too small a scope 403. Errors are
`{"detail": "<the message the CLI prints>"}`. A session is addressed by its key
(`agent`, `repo`, `thread`) in query parameters, since a repo slug holds slashes. Webhooks are
authenticated by their HMAC signature (`BATON_WEBHOOK_SECRET`); `/healthz`, `/readyz` and `/metrics`
need no token."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.resolved_store_url)
        app.state.settings, app.state.store = settings, store
        app.state.executor = executor = LocalExecutor(settings, store)
        stop = threading.Event()
        sweeper = threading.Thread(
            target=sweep_periodically, args=(settings, stop), name="baton-sweeper", daemon=True
        )
        executor.start()
        sweeper.start()
        try:
            yield
        finally:
            stop.set()
            executor.stop()
            sweeper.join(timeout=10)
            store.close()

    app = FastAPI(title="baton", version="1", description=DESCRIPTION, lifespan=lifespan)
    for module in (health, metrics):
        app.include_router(module.router)
    for module in (runs, sessions, admin, disk, webhooks):  # the /v1 route groups (and webhooks)
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.add_exception_handler(BatonError, baton_error_handler)  # type: ignore[arg-type]
    return app


class Problem(BaseModel):
    """An error: the message the CLI would print (FastAPI's own 422 gives a list of field errors)."""

    detail: str | list[dict[str, object]]


# Most specific first: NotFound is a BadInput.
STATUS: tuple[tuple[type[BatonError], int], ...] = (
    (NotFound, 404),
    (BadInput, 422),
    (Busy, 409),
    (DiskFull, 507),
    (RemoteError, 502),
)
ERROR_DOCS: dict[int | str, str] = {
    400: "the body could not be parsed (FastAPI)",
    401: "missing, unknown or revoked token",
    403: "the token's scope is too small",
    404: "no such session, run or token",
    409: "the key is busy: a run holds it",
    422: "bad input (the message says what); nothing was written",
    500: "an error baton did not expect",
    502: "a git remote could not be reached",
    507: "no space left for BATON_HOME",
}


# Documented on every operation of those groups (a route's own entries win); webhooks answer 401 for a
# bad signature and share the handler.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "description": text} for code, text in ERROR_DOCS.items()
}


def status_of(exc: BatonError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


async def baton_error_handler(request: Request, exc: BatonError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
