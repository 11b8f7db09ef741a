"""Routes: signed webhooks, one route for every forge kind the registry knows (``POST /webhooks/{kind}``:
``/webhooks/github``, ``/webhooks/gitea``, ``/webhooks/gitlab``; the OpenAPI document names each,
:func:`per_kind`), and the list of deliveries (``GET /v1/webhooks/deliveries``). HTTP in, a status code
out: the domain code is in the forge room. A delivery goes through the gates of :func:`receive` in order
(the secret, the signature, the headers and payload, read once into a typed delivery by its forge's
:class:`~baton.forge.reading.delivery.Reader`) and is stored keyed by (forge, delivery id), the atomic "act
once", and answered 202 at once; its work (the cleanup, the forge loop's feedback) runs in the
background (:class:`baton.forge.background.delivery_pool.Worker`, whose pool belongs to this router's
lifespan, which also re-queues deliveries a previous process left ``pending``). What is cleaned up and when:
docs/service.md (Webhooks).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import Headers

from baton import tracing
from baton.forge.background.delivery_pool import Acknowledging, Intake, Worker
from baton.forge.data.records import DeliveryRecord, DeliveryStatus
from baton.forge.data.tables import delivery_store
from baton.forge.kinds.registry import readers
from baton.forge.reading.delivery import Delivery as Work  # Delivery: the route's response model, below
from baton.forge.reading.delivery import DeliveryReader
from baton.forge.reading.webhook import Ignored, Malformed, authentic, payload_of, refused
from baton.service.auth import Actor, require
from baton.service.errors import Problem
from baton.service.records import TokenScope
from baton.settings import Settings

SECRET_ENV = "BATON_WEBHOOK_SECRET"
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
EVENT_NAME = re.compile(r"[A-Za-z0-9_.-][A-Za-z0-9_. -]{0,63}")  # GitLab's are "Note Hook", ...
log = logging.getLogger("baton.webhooks")
READERS = readers()  # each registered kind's reader, by its name in /webhooks/<kind>


class DeliveryAnswer(BaseModel):
    """A delivery's state: ``pending`` while its work runs, then ``done``, ``ignored`` or ``failed``."""

    delivery: str
    status: str
    ignored: str | None = None
    result: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Nested inside the app's lifespan (FastAPI merges router lifespans), so the store is open."""
    settings: Settings = app.state.settings
    schedule = getattr(app.state, "forge", None)
    app.state.forge_loop = schedule.loop if schedule is not None else None
    acks = Acknowledging()
    worker = Worker(
        app.state.store, settings, threads=max(2, settings.concurrency), loop=app.state.forge_loop, acks=acks
    )
    intake = Intake(delivery_store(app.state.store))
    app.state.webhooks, app.state.webhook_intake, app.state.webhook_acks = worker, intake, acks
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


def answer(record: DeliveryRecord) -> dict[str, Any]:
    """The 202's body of a delivery (a :class:`DeliveryAnswer`), built directly: validating our own dict
    again through the response model costs more than the rest of the acknowledgement."""
    body: dict[str, Any] = {"delivery": record.delivery_id, "status": record.status.value}
    if record.status == DeliveryStatus.IGNORED:
        body["ignored"] = record.result.get("ignored")
    body["result"] = record.result
    return body


async def accept(
    state: Any, forge: str, delivery_id: str, event: str, work: Work | Ignored
) -> DeliveryRecord:
    """Store the delivery (pending with its work, or ignored with why) and queue its work; a known
    delivery id returns the stored record and does nothing."""
    worker: Worker = state.webhooks
    if isinstance(work, Work):
        record = DeliveryRecord(forge, delivery_id, event, time.time(), result=work.to_json())
    else:
        record = DeliveryRecord(
            forge, delivery_id, event, time.time(), DeliveryStatus.IGNORED, {"ignored": work.reason}
        )
    if not await state.webhook_intake.add(record):
        stored = await run_in_threadpool(worker.deliveries.get_delivery, forge, delivery_id)
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


async def receive(request: Request, reader: DeliveryReader) -> JSONResponse:
    """One delivery through the gates, in order, stopping at the first that fails (a body over 25 MB is
    refused before, with 413, by :mod:`baton.service.limits`):

    1. ``BATON_WEBHOOK_SECRET`` is set (read per request, never logged or stored) — else 403: webhooks
       are refused, never accepted unsigned (a 4xx: the sender's request cannot be authenticated here;
       a 5xx would say the service is failing).
    2. The HMAC-SHA256 of the *raw* body under the secret equals the signature header, compared in
       constant time (GitHub ``X-Hub-Signature-256: sha256=<hex>``; Gitea ``X-Gitea-Signature: <hex>``,
       or the GitHub header it also sends; :mod:`baton.forge.reading.webhook`), or GitLab's ``X-Gitlab-Token``
       equals the secret (constant time) — else 401, nothing done.
    3. A delivery id (``X-GitHub-Delivery`` / ``X-Gitea-Delivery`` / ``X-Gitlab-Event-UUID``) and an
       event name are present, the body is a JSON object, and an event that cleans up has the fields
       it needs — else 400.
    4. The delivery is inserted into the store, keyed by (forge, delivery id): a redelivery finds the
       first record and is answered from it, doing nothing. Inserts are group-committed by one thread
       (:class:`baton.forge.background.delivery_pool.Intake`).

    Events that clean up: ``delete`` of a branch, ``pull_request`` ``closed`` (merged or not; the branch
    is ``head.ref`` in the head repository, which for a PR from a fork is the fork; when merged, the
    threads stacked on that branch are then rebased onto the default branch,
    :func:`baton.sync.upstream.restack`), and ``push`` with ``deleted: true`` of ``refs/heads/<branch>``.
    A delivery that asks nothing else (no cleanup, nothing for the forge loop) is stored ``ignored``
    and answered 202 ``{"ignored": "<why>"}``. A payload names its
    repository by ``clone_url``, ``ssh_url`` and ``html_url``; each one's slug
    (:func:`baton.keys.parse_repo`, URL forms only, so no filesystem or network is touched) is matched,
    since a self-hosted forge's HTTP and SSH URLs give different slugs."""
    body = await request.body()  # bounded by baton.service.limits (GitHub's 25 MB)
    client = request.client.host if request.client else "?"
    status, answered = await acknowledge(request.app.state, reader, request.headers, body, client)
    return JSONResponse(answered, status_code=status)


@tracing.traced("webhook.ack")  # the gate's path and the route's alike
async def acknowledge(
    state: Any, reader: DeliveryReader, headers: Headers, body: bytes, client: str
) -> tuple[int, dict[str, Any]]:
    """:func:`receive`'s gates on a read body: the 202 and its body, or an HTTPException (4xx). The
    service's own path is :mod:`baton.service.webhook_gate` (plain ASGI, before FastAPI's router).
    The deliveries' handling waits while *signed* acknowledgements are in flight
    (:class:`Acknowledging`): a flood of unsigned POSTs, refused here, holds nothing up."""
    forge = reader.forge
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        log.error("webhook %s refused: %s is not set, so no signature can be checked", forge.name, SECRET_ENV)
        raise HTTPException(403, f"webhooks are disabled: set {SECRET_ENV} on the service")
    if not authentic(forge, secret, body, headers):
        why = refused(forge)
        log.warning("webhook %s from %s refused: %s", forge.name, client, why)
        raise HTTPException(401, why)
    with state.webhook_acks:
        return await _accept_signed(state, reader, headers, body)


async def _accept_signed(
    state: Any, reader: DeliveryReader, headers: Headers, body: bytes
) -> tuple[int, dict[str, Any]]:
    forge = reader.forge
    delivery_id = _header(headers, forge.delivery_headers, DELIVERY_ID, "delivery id")
    event = _header(headers, forge.event_headers, EVENT_NAME, "event")
    try:
        payload = payload_of(body, headers.get("content-type", ""))
        loop = state.forge_loop
        work = reader.read(loop.config if loop else None, event, payload)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    record = await accept(state, forge.name, delivery_id, event, work)
    return 202, answer(record)


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "signed, but no delivery id or event, or a malformed payload"},
    401: {
        "model": Problem,
        "description": "missing or wrong signature (GitLab: X-Gitlab-Token): nothing done",
    },
    413: {"model": Problem, "description": "payload larger than 25 MB"},
    403: {"model": Problem, "description": f"{SECRET_ENV} is not set: webhooks are refused"},
}
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


class Kind(Convertor[str]):
    """A registered kind's name: the one route's ``{kind}`` matches no other, so any other path under
    /webhooks/ stays the router's 404 (a POST is the gate's, which names the kinds)."""

    regex = "|".join(sorted(READERS))

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("forge_kind", Kind())


@router.post(
    "/webhooks/{kind:forge_kind}",
    tags=["webhooks"],
    status_code=202,
    response_model=DeliveryAnswer,
    responses=RESPONSES,
    openapi_extra=BODY,
    summary="A forge's webhook",
)
async def webhook(kind: str, request: Request) -> JSONResponse:
    return await receive(request, READERS[kind])


def per_kind(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the one webhook route written out for each registered kind (its path,
    its summary, its 401), as senders are configured: ``/webhooks/github``, ..."""
    paths = document.get("paths", {})
    route = paths.pop("/webhooks/{kind}", None)
    if route is None:  # written out already (FastAPI keeps the document it made)
        return document
    for kind, reader in READERS.items():
        post = {k: v for k, v in route["post"].items() if k != "parameters"}
        unauthorized = {**post["responses"]["401"], "description": f"{refused(reader.forge)}: nothing done"}
        responses = {**post["responses"], "401": unauthorized}
        post |= {"summary": reader.forge.summary, "operationId": f"webhook_{kind}", "responses": responses}
        paths[f"/webhooks/{kind}"] = {"post": post}
    return document


def unknown_kind(kind: str) -> str:
    """Why a POST to ``/webhooks/<kind>`` finds no forge (the gate's 404)."""
    named = kind if len(kind) <= 64 else kind[:64] + "…"  # the path is the sender's: never echoed whole
    return f"no forge kind {named!r} takes webhooks here (known: {', '.join(READERS)})"


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
    deliveries = delivery_store(request.app.state.store)
    return [d.to_json() for d in deliveries.list_deliveries(limit=limit)]
