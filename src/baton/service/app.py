"""The FastAPI application: :func:`create_app` wires the store, the executor, the forge loop and the
background sweeper into ``app.state``, mounts one router per route group and the dashboard, and installs
the one handler that turns baton's own errors into HTTP (:mod:`baton.service.errors`), so every route,
present and future, answers alike. The OpenAPI document is generated when first asked for (FastAPI keeps
it), so the agents its ``agent`` fields list are those registered then (:mod:`baton.service.fields`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from baton import tracing
from baton.errors import BatonError
from baton.fleet.executor import check_executor, make_executor
from baton.forge.kinds.configured import load_forges
from baton.housekeeping.sweep import sweep_periodically
from baton.service import (
    admin,
    answers,
    budget,
    dashboard,
    diffs,
    disk,
    forge,
    health,
    mcp_calls,
    mcp_http,
    metrics,
    quotas,
    runs,
    sessions,
    webhooks,
)
from baton.service.diskcache import DiskCache
from baton.service.errors import ERROR_RESPONSES, baton_error_handler, http_error_handler, problems
from baton.service.limits import BodyLimit
from baton.service.webhook_gate import WebhookGate
from baton.settings import Settings, load_settings
from baton.store import store_for

DESCRIPTION = """Durable conversations and durable workdirs for coding agents, over HTTP.

Every `/v1` route needs `Authorization: Bearer <token>` (`baton tokens create`): `read` for GETs,
`run` to submit and cancel runs, `admin` for reset, sweep, tokens and the audit log (admin ⊃ run ⊃
read); a missing, unknown or revoked token is 401, too small a scope 403. Errors are
`{"detail": "<the message the CLI prints>"}`. A session is addressed by its key
(`agent`, `repo`, `thread`) in query parameters, since a repo slug holds slashes. Webhooks are
authenticated by their HMAC signature (`BATON_WEBHOOK_SECRET`); `/healthz`, `/readyz` and `/metrics`
need no token."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service's app. Start-up (lifespan): open the store, start the executor (the in-process pool
    marks jobs left ``running`` by a previous process ``done``/crashed and takes the queued ones; with a
    broker, Celery workers run them: :func:`baton.fleet.executor.make_executor`), start the sweeper
    thread. Shut-down stops them in reverse."""
    settings = settings or load_settings()
    check_executor(settings)  # a bad broker URL or a missing extra: the CLI's message, before serving
    tracing.configure(settings)  # BATON_OTEL=on: traces from here on (a missing extra: said before serving)
    forges = load_forges(settings.home)  # a bad [forge.*] or [repo.*] table: named, before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = store_for(settings)
        app.state.settings, app.state.store, app.state.forges = settings, store, forges
        app.state.executor = executor = make_executor(settings, store)  # Celery when a broker is set
        app.state.disk = DiskCache(store, settings)  # the last disk measurement (metrics, dashboard)
        # before the executor starts: the forge turns it runs (queued ones too) are published
        app.state.forge = schedule = forge.start(settings, store, executor, forges)
        stop = threading.Event()
        sweeper = threading.Thread(
            target=sweep_periodically, args=(settings, stop), name="baton-sweeper", daemon=True
        )
        executor.start()
        sweeper.start()
        if schedule is not None:
            schedule.start()
        try:
            async with mcp.running():  # /mcp's session manager
                yield
        finally:
            if schedule is not None:
                schedule.stop()
            stop.set()
            executor.stop()
            sweeper.join(timeout=10)
            store.close()

    # FastAPI's own /docs loads Swagger UI from a CDN (blank offline); this one serves it from the package:
    # /docs (Swagger UI) and /redoc load their scripts and styles from the service itself, so they work on a
    # network without internet (fastapi-offline ships the assets and serves them under /static-offline-docs)
    app = FastAPIOffline(title="baton", version="1", description=DESCRIPTION, lifespan=lifespan)
    for module in (health, metrics):  # no token, so no 401/403; the body limit holds for every route
        app.include_router(module.router, responses=problems(413))
    for module in (
        runs,
        answers,
        budget,
        sessions,
        diffs,
        admin,
        mcp_calls,
        disk,
        quotas,
        forge,
        webhooks,
    ):  # the /v1 route groups (and webhooks)
        app.include_router(module.router, responses=ERROR_RESPONSES)
    document = app.openapi
    app.openapi = lambda: webhooks.per_kind(document())  # type: ignore[method-assign]  # /webhooks/<kind>
    app.add_exception_handler(BatonError, baton_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error_handler)  # type: ignore[arg-type]
    dashboard.install(app)
    mcp = mcp_http.install(app)  # /mcp: baton mcp's tools over streamable HTTP, behind the same tokens
    app.add_middleware(WebhookGate)  # webhooks' POSTs, before the router (inside the body limit)
    app.add_middleware(BodyLimit)
    return app
