"""Routes: signed cleanup webhooks from GitHub (``POST /webhooks/github``) and Gitea
(``POST /webhooks/gitea``), and the list of deliveries (``GET /v1/webhooks/deliveries``).

A delivery goes through these gates, in this order, and stops at the first that fails (the signature and
the payload are read by :mod:`baton.forge.events`; a body over 25 MB is refused before, with 413, by
:mod:`baton.service.limits`):

1. ``BATON_WEBHOOK_SECRET`` is set (read per request, never logged or stored) — else 403: webhooks are
   refused, never accepted unsigned (a 4xx: the sender's request cannot be authenticated here; a 5xx
   would say the service is failing).
2. The HMAC-SHA256 of the *raw* body under the secret equals the signature header, compared in constant
   time (GitHub ``X-Hub-Signature-256: sha256=<hex>``; Gitea ``X-Gitea-Signature: <hex>``, or the GitHub
   header it also sends) — else 401, nothing done.
3. A delivery id (``X-GitHub-Delivery`` / ``X-Gitea-Delivery``) and an event name are present, the body
   is a JSON object, and an event that cleans up has the fields it needs — else 400.
4. The delivery is inserted into the store, keyed by (forge, delivery id). The insert is the atomic
   "act once": a redelivery finds the first record and is answered from it, doing nothing. Inserts
   are group-committed by one thread (:class:`Intake`): a burst of deliveries costs a few
   transactions, and the acknowledgement stays within tens of milliseconds under 50 at once.

Events that clean up: ``delete`` of a branch, ``pull_request`` ``closed`` (merged or not; the branch is
``head.ref`` in the head repository, which for a PR from a fork is the fork; when merged, the threads
stacked on that branch are then rebased onto the default branch, :func:`baton.sync.upstream.restack`), and
``push`` with ``deleted: true`` of ``refs/heads/<branch>``. Everything else is stored ``ignored`` and
answered 202 ``{"ignored": "<why>"}``. A payload names its repository by ``clone_url``, ``ssh_url`` and
``html_url``; each one's slug (:func:`baton.keys.parse_repo`, URL forms only, so no filesystem or
network is touched) is matched, since a self-hosted forge's HTTP and SSH URLs give different slugs.

The work (:func:`baton.housekeeping.cleanup.close_branch`: checkpoint, free, close; after a running run
ends) can take long, and forges give up after 10 s, so the delivery is stored ``pending`` with its
target and answered 202 at once; a small pool of daemon threads does the work and stores the result.
The pool belongs to this router's lifespan, which also re-queues deliveries a previous process left
``pending`` (closing is idempotent, so doing one twice is harmless; losing one is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers

from baton.forge import webhook as feedback
from baton.forge.events import (
    GITEA,
    GITHUB,
    Forge,
    Malformed,
    Target,
    claimed_signatures,
    classify,
    payload_of,
    verified,
)
from baton.forge.loop import ForgeLoop
from baton.forge.model import ForgeEvent, ForgeKind
from baton.housekeeping.cleanup import close_branch
from baton.models import DeliveryRecord, DeliveryStatus, TokenScope
from baton.service.auth import Actor, require
from baton.service.errors import Problem
from baton.settings import Settings
from baton.store.base import DeliveryStore, KeyStore, Store
from baton.sync.upstream import restack

SECRET_ENV = "BATON_WEBHOOK_SECRET"
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
EVENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
log = logging.getLogger("baton.webhooks")


class DeliveryAnswer(BaseModel):
    """A delivery's state: ``pending`` while its work runs, then ``done``, ``ignored`` or ``failed``."""

    delivery: str
    status: str
    ignored: str | None = None
    result: dict[str, Any] = {}


# -- doing the work in the background ---------------------------------------------------------------


def close_target(store: Store, settings: Settings, forge: str, delivery_id: str, target: Target) -> None:
    """Close the target's sessions and store the delivery's result (``failed`` with the error when the
    work raised, ``ignored`` when no session matched)."""
    actor = f"webhook:{forge}:{delivery_id}"
    try:
        reports = {slug: close_branch(store, settings, slug, target.branch, actor) for slug in target.repos}
    except Exception as exc:  # the delivery records any failure; the thread must live on
        log.exception("webhook %s %s: cleaning up %s failed", forge, delivery_id, target.branch)
        result = {**target.to_json(), "error": f"{exc.__class__.__name__}: {exc}"}
        store.update_delivery(forge, delivery_id, DeliveryStatus.FAILED, result)
        return
    result = {**target.to_json(), **summary(reports)}
    if target.merged:
        result = _restack(store, settings, target, result)
    store.update_delivery(forge, delivery_id, DeliveryStatus(result.pop("status")), result)
    log.info(
        "webhook %s %s: branch %r: %s", forge, delivery_id, target.branch, result.get("ignored", "closed")
    )


def _restack(store: KeyStore, settings: Settings, target: Target, result: dict[str, Any]) -> dict[str, Any]:
    """A merged pull request: the threads stacked on its branch are rebased onto the default branch."""
    done = [
        r.to_json() for slug in target.repos for r in restack(settings, store, slug, branch=target.branch)
    ]
    if not done:
        return result
    status = result["status"]
    if status == DeliveryStatus.IGNORED.value:
        status, result = DeliveryStatus.DONE.value, {k: v for k, v in result.items() if k != "ignored"}
    if any(r["result"] == "failed" for r in done):
        status = DeliveryStatus.FAILED.value
        result["error"] = "; ".join(filter(None, [result.get("error"), "restacking a stacked thread failed"]))
    return {**result, "status": status, "restacked": done}


def summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The delivery's result from close_branch's reports (one per slug): ``failed`` when a key could not
    be closed (the others were), ``done`` when some were, else ``ignored`` with why."""
    closed = [key for r in reports.values() for key in r.get("closed", [])]
    errors = {key: e for r in reports.values() for key, e in r.get("errors", {}).items()}
    already = [key for r in reports.values() for key in r.get("already_closed", [])]
    result: dict[str, Any] = {"closed": closed, "reports": reports}
    if errors:
        return {**result, "status": DeliveryStatus.FAILED.value, "error": "; ".join(errors.values())}
    if closed:
        return {**result, "status": DeliveryStatus.DONE.value}
    why = f"its sessions were already closed: {', '.join(already)}" if already else "no session works on it"
    return {**result, "status": DeliveryStatus.IGNORED.value, "ignored": why}


@dataclass(frozen=True)
class Work:
    """What a delivery asks for: a cleanup (``target``), feedback for bound threads (``events``, or a
    ``marker``: an issue or PR closed, a branch pushed to), or both (a merged PR)."""

    target: Target | None = None
    events: tuple[ForgeEvent, ...] = ()
    marker: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.target.to_json() if self.target else {}
        if self.events:
            data["feedback"] = [e.to_json() for e in self.events]
        if self.marker:
            data["marker"] = self.marker
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Work:
        target = None
        if "repos" in data:
            target = Target(tuple(data["repos"]), str(data["branch"]), data.get("merged") is True)
        events = tuple(ForgeEvent.from_json(e) for e in data.get("feedback", []))
        return cls(target, events, data.get("marker"))

    @property
    def feedback(self) -> bool:
        return bool(self.events or self.marker)


class Worker:
    """A bounded pool of daemon threads draining a queue of (forge, delivery id, work). Daemons,
    because a cleanup may wait for a long run: shutting down must not wait for it (the delivery stays
    ``pending`` in the store and the next start re-queues it)."""

    def __init__(self, store: Store, settings: Settings, threads: int, loop: ForgeLoop | None = None) -> None:
        self.store, self.settings, self.loop = store, settings, loop
        self.jobs: queue.Queue[tuple[str, str, Work] | None] = queue.Queue()
        self.threads = [
            threading.Thread(target=self._drain, name=f"baton-webhook-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def submit(self, forge: str, delivery_id: str, work: Work) -> None:
        self.jobs.put((forge, delivery_id, work))

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _drain(self) -> None:
        while (job := self.jobs.get()) is not None:
            forge, delivery_id, work = job
            try:
                if work.target is not None:
                    close_target(self.store, self.settings, forge, delivery_id, work.target)
                if work.feedback:
                    self._feedback(forge, delivery_id, work)
            except Exception:  # even storing the failure failed (store gone): it stays pending
                log.exception("webhook %s %s: could not record the result", forge, delivery_id)

    def _feedback(self, forge: str, delivery_id: str, work: Work) -> None:
        """Act on the delivery's feedback and merge what happened into its stored result."""
        if self.loop is None:
            done: dict[str, Any] = {"error": "no forge is configured: the feedback was not acted on"}
        else:
            done = feedback.act(self.loop, list(work.events), f"{forge}:{delivery_id}") if work.events else {}
            if work.marker:
                done["marker"] = feedback.act_on_marker(self.loop, work.marker)
        stored = self.store.get_delivery(forge, delivery_id)
        result = {**(stored.result if stored and work.target else {}), **done}
        if work.target is None:
            result.pop("feedback", None)
        failed = "error" in result or (stored is not None and stored.status == DeliveryStatus.FAILED)
        self.store.update_delivery(
            forge, delivery_id, DeliveryStatus.FAILED if failed else DeliveryStatus.DONE, result
        )

    def requeue_pending(self) -> int:
        """Queue the work of deliveries a previous process accepted but did not finish."""
        pending = self.store.list_deliveries_by_status(DeliveryStatus.PENDING)
        for record in pending:
            try:
                work = Work.from_json(record.result)
            except (KeyError, TypeError, ValueError):
                work = Work()
            if work.target is None and not work.feedback:
                error = {"error": "stored pending without its work (a target or feedback); not retried"}
                self.store.update_delivery(record.forge, record.delivery_id, DeliveryStatus.FAILED, error)
                continue
            self.submit(record.forge, record.delivery_id, work)
        return len(pending)


class Intake:
    """Group commit of new deliveries: handlers queue their record and await a future; one thread
    inserts everything queued in one transaction (:meth:`Store.add_deliveries`) and settles the
    futures. A burst of deliveries then costs a few transactions instead of one each, and no handler
    waits for a thread of the shared pool, which keeps the acknowledgement fast under load."""

    BATCH = 200

    def __init__(self, store: DeliveryStore) -> None:
        self.store = store
        self.queue: queue.SimpleQueue[tuple[DeliveryRecord, asyncio.Future[bool]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(target=self._run, name="baton-webhook-intake", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    async def add(self, record: DeliveryRecord) -> bool:
        """Store ``record`` unless its (forge, id) is known: True when it was new."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.put((record, future))
        return await future

    def _run(self) -> None:
        while True:
            batch, stopping = [self.queue.get()], False
            while batch[-1] is not None and len(batch) < self.BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is None:
                batch.pop()
                stopping = True
            if batch:
                self._write([item for item in batch if item is not None])
            if stopping:
                return

    def _write(self, batch: list[tuple[DeliveryRecord, asyncio.Future[bool]]]) -> None:
        try:
            added: list[bool] | Exception = self.store.add_deliveries([record for record, _ in batch])
        except Exception as exc:  # each waiting handler answers 500 with it
            added = exc
        for i, (_, future) in enumerate(batch):
            outcome = added if isinstance(added, Exception) else added[i]
            with contextlib.suppress(RuntimeError):  # the handler's loop is gone (shut down)
                future.get_loop().call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[bool], outcome: bool | Exception) -> None:
    if future.done():  # the client went away and the handler was cancelled
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Nested inside the app's lifespan (FastAPI merges router lifespans), so the store is open."""
    settings: Settings = app.state.settings
    schedule = getattr(app.state, "forge", None)
    app.state.forge_loop = schedule.loop if schedule is not None else None
    worker = Worker(
        app.state.store, settings, threads=max(2, settings.concurrency), loop=app.state.forge_loop
    )
    intake = Intake(app.state.store)
    app.state.webhooks, app.state.webhook_intake = worker, intake
    worker.start()
    intake.start()
    if not os.environ.get(SECRET_ENV):
        log.warning("webhooks are refused (403) until %s is set in the service's environment", SECRET_ENV)
    if requeued := await run_in_threadpool(worker.requeue_pending):
        log.info("webhooks: re-queued %d pending deliveries from an earlier process", requeued)
    try:
        yield
    finally:
        intake.stop()
        worker.stop()


router = APIRouter(lifespan=lifespan)


# -- the routes -------------------------------------------------------------------------------------


def answer(record: DeliveryRecord) -> JSONResponse:
    """The 202 of a delivery (a :class:`DeliveryAnswer`), built directly: validating our own dict again
    through the response model costs more than the rest of the acknowledgement."""
    body: dict[str, Any] = {"delivery": record.delivery_id, "status": record.status.value}
    if record.status == DeliveryStatus.IGNORED:
        body["ignored"] = record.result.get("ignored")
    body["result"] = record.result
    return JSONResponse(body, status_code=202)


async def accept(state: Any, forge: str, delivery_id: str, event: str, work: Work | str) -> DeliveryRecord:
    """Store the delivery (pending with its work, or ignored with why) and queue its work; a known
    delivery id returns the stored record and does nothing."""
    worker: Worker = state.webhooks
    if isinstance(work, Work):
        record = DeliveryRecord(forge, delivery_id, event, time.time(), result=work.to_json())
    else:
        record = DeliveryRecord(
            forge, delivery_id, event, time.time(), DeliveryStatus.IGNORED, {"ignored": work}
        )
    if not await state.webhook_intake.add(record):
        stored = await run_in_threadpool(worker.store.get_delivery, forge, delivery_id)
        log.info("webhook %s %s: redelivery, answered from the first", forge, delivery_id)
        return stored or record
    if isinstance(work, Work):
        worker.submit(forge, delivery_id, work)
    return record


def _header(headers: Headers, names: tuple[str, ...], pattern: re.Pattern[str], what: str) -> str:
    value = next((v for n in names if (v := headers.get(n))), None)
    if value is None or not pattern.fullmatch(value):
        raise HTTPException(400, f"missing or malformed {what} header ({', '.join(names)})")
    return value


async def receive(request: Request, forge: Forge) -> JSONResponse:
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        log.error("webhook %s refused: %s is not set, so no signature can be checked", forge.name, SECRET_ENV)
        raise HTTPException(403, f"webhooks are disabled: set {SECRET_ENV} on the service")
    body = await request.body()  # bounded by baton.service.limits (GitHub's 25 MB)
    if not verified(secret, body, claimed_signatures(forge, request.headers)):
        client = request.client.host if request.client else "?"
        log.warning("webhook %s from %s refused: missing or wrong signature", forge.name, client)
        raise HTTPException(401, "missing or wrong signature")
    delivery_id = _header(request.headers, forge.delivery_headers, DELIVERY_ID, "delivery id")
    event = _header(request.headers, forge.event_headers, EVENT_NAME, "event")
    try:
        payload = payload_of(body, request.headers.get("content-type", ""))
        work = what_to_do(request.app.state.forge_loop, forge, event, payload)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    record = await accept(request.app.state, forge.name, delivery_id, event, work)
    return answer(record)


def what_to_do(loop: ForgeLoop | None, forge: Forge, event: str, payload: dict[str, Any]) -> Work | str:
    """The delivery's work (a cleanup, feedback for bound threads, or both), or why there is none."""
    cleanup = classify(event, payload)
    found = feedback.read(loop.config, ForgeKind(forge.name), event, payload) if loop else []
    marker = found if isinstance(found, str) and found.startswith(feedback.MARKERS) else None
    events = tuple(found) if isinstance(found, list) else ()
    target = cleanup if isinstance(cleanup, Target) else None
    if target is None and not events and marker is None:
        return f"{cleanup}; {found}" if isinstance(found, str) else str(cleanup)
    return Work(target, events, marker)


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "signed, but no delivery id or event, or a malformed payload"},
    401: {"model": Problem, "description": "missing or wrong signature: nothing done"},
    413: {"model": Problem, "description": "payload larger than 25 MB"},
    403: {"model": Problem, "description": f"{SECRET_ENV} is not set: webhooks are refused"},
}
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.post(
    "/webhooks/github",
    tags=["webhooks"],
    status_code=202,
    response_model=DeliveryAnswer,
    responses=RESPONSES,
    openapi_extra=BODY,
    summary="A GitHub webhook (X-Hub-Signature-256): branch deleted, PR closed, push deleting a branch",
)
async def github(request: Request) -> JSONResponse:
    return await receive(request, GITHUB)


@router.post(
    "/webhooks/gitea",
    tags=["webhooks"],
    status_code=202,
    response_model=DeliveryAnswer,
    responses=RESPONSES,
    openapi_extra=BODY,
    summary="A Gitea webhook (X-Gitea-Signature or X-Hub-Signature-256); same events as GitHub",
)
async def gitea(request: Request) -> JSONResponse:
    return await receive(request, GITEA)


class Delivery(BaseModel):
    forge: str
    delivery_id: str
    event: str
    received_at: str | None
    status: str
    result: dict[str, Any]


@router.get(
    "/v1/webhooks/deliveries",
    tags=["webhooks"],
    response_model=list[Delivery],
    summary="Webhook deliveries, newest first, each with its result",
)
def deliveries(
    request: Request,
    _actor: Annotated[Actor, Depends(require(TokenScope.READ))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    store: DeliveryStore = request.app.state.store
    return [d.to_json() for d in store.list_deliveries(limit=limit)]
