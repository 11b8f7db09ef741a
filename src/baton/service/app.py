"""The FastAPI application: :func:`create_app` wires the store, the executor and the background
sweeper into ``app.state`` and mounts one router per route group.

Start-up (lifespan): open the store, mark jobs left ``running`` by a previous process ``done``/crashed
and hand the queued ones to the executor (it does both in :meth:`Executor.start`), start the sweeper
thread. Shut-down stops them in reverse.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from baton.executors.local import LocalExecutor
from baton.housekeeping.sweep import sweep_periodically
from baton.service import admin, disk, health, metrics, runs, sessions, webhooks
from baton.settings import Settings, load_settings
from baton.store import open_store

DESCRIPTION = """Durable conversations and durable workdirs for coding agents, over HTTP.

Every `/v1` route needs `Authorization: Bearer <token>` (`baton tokens create`): `read` for GETs,
`run` to submit and cancel runs, `admin` for reset, sweep and tokens. Webhooks are authenticated by
their HMAC signature (`BATON_WEBHOOK_SECRET`)."""


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
    for module in (health, runs, sessions, admin, disk, webhooks, metrics):
        app.include_router(module.router)
    return app
