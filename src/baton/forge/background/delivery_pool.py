"""A webhook delivery's work, done in the background: the delivery records, the worker pool that acts on
them (:class:`Worker`: the cleanup, :func:`baton.housekeeping.cleanup.close_branch`, then the forge
loop's feedback) and the group commit of new ones (:class:`Intake`). The insert of a delivery's record,
keyed by (forge, delivery id), is the atomic "act once": a redelivery finds the first record. The routes,
HTTP in and a status code out, are :mod:`baton.service.webhooks`; the reading of a delivery is
:mod:`baton.forge.reading.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from typing import Any

from baton import tracing
from baton.forge.background import feedback as feedback
from baton.forge.data.records import DeliveryRecord, DeliveryStatus
from baton.forge.data.tables import DeliveryStore, delivery_store
from baton.forge.kinds import registry
from baton.forge.reading.delivery import Delivery
from baton.forge.reading.webhook import Target
from baton.forge.turn.loop import ForgeLoop
from baton.housekeeping.cleanup import close_branch
from baton.settings import Settings
from baton.store.base import KeyStore, Store
from baton.sync.upstream import restack

log = logging.getLogger("baton.webhooks")


def close_target(store: Store, settings: Settings, forge: str, delivery_id: str, target: Target) -> None:
    """Close the target's sessions and store the delivery's result (``failed`` with the error when the
    work raised, ``ignored`` when no session matched)."""
    actor = f"webhook:{forge}:{delivery_id}"
    try:
        reports = {slug: close_branch(store, settings, slug, target.branch, actor) for slug in target.repos}
    except Exception as exc:  # the delivery records any failure; the thread must live on
        log.exception("webhook %s %s: cleaning up %s failed", forge, delivery_id, target.branch)
        result = {**target.to_json(), "error": f"{exc.__class__.__name__}: {exc}"}
        delivery_store(store).update_delivery(forge, delivery_id, DeliveryStatus.FAILED, result)
        return
    result = {**target.to_json(), **summary(reports)}
    if target.merged:
        result = _restack(store, settings, target, result)
    delivery_store(store).update_delivery(forge, delivery_id, DeliveryStatus(result.pop("status")), result)
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


class Acknowledging:
    """The webhook acknowledgements in flight (``with acks:`` around one). A delivery's handling first
    waits until none is, for at most :data:`YIELD_S`: under a burst of deliveries the handling of the
    first ones would otherwise take the interpreter from the event loop that still has to answer the
    rest (bench 15a, two pairs of 3 rounds of 50: p50 66 -> 60 ms, p99 87 -> 79 ms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._idle = threading.Event()
        self._idle.set()

    def __enter__(self) -> None:
        with self._lock:
            self._count += 1
            self._idle.clear()

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    def wait_idle(self, most: float) -> None:
        self._idle.wait(most)

    def in_flight(self) -> int:
        return self._count


YIELD_S = 0.25  # the longest a delivery's handling waits for the acknowledgements in flight


class Worker:
    """A bounded pool of daemon threads draining a queue of (forge, delivery id, work). The work
    (checkpoint, free, close, after a running run ends; then the feedback) can take long and forges give
    up after 10 s, so a delivery is stored ``pending`` with its work (:meth:`Delivery.to_json`), answered
    at once, and done here, its result stored. Daemons, because a cleanup may wait for a long run:
    shutting down must not wait for it (the delivery stays ``pending`` in the store and the next start
    re-queues it)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        threads: int,
        loop: ForgeLoop | None = None,
        acks: Acknowledging | None = None,
    ) -> None:
        self.store, self.settings, self.loop, self.acks = store, settings, loop, acks
        self.deliveries = delivery_store(store)
        self.jobs: queue.Queue[tuple[str, str, Delivery] | None] = queue.Queue()
        self.threads = [
            threading.Thread(target=self._drain, name=f"baton-webhook-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def submit(self, forge: str, delivery_id: str, work: Delivery) -> None:
        tracing.hand(f"webhook:{forge}:{delivery_id}")  # its handling continues the acknowledgement's trace
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
            if self.acks is not None:
                self.acks.wait_idle(YIELD_S)
            parent = tracing.handed(f"webhook:{forge}:{delivery_id}")
            attributes = {"baton.forge": forge, "baton.delivery": delivery_id}
            try:
                with tracing.span("webhook.handle", attributes, parent):
                    self._handle(forge, delivery_id, work)
            except Exception:  # even storing the failure failed (store gone): it stays pending
                log.exception("webhook %s %s: could not record the result", forge, delivery_id)

    def _handle(self, forge: str, delivery_id: str, work: Delivery) -> None:
        # a closed thread's turns are stopped first: the cleanup waits for a running one to end
        closed = self._closed(work)
        if work.target is not None:
            close_target(self.store, self.settings, forge, delivery_id, work.target)
        if work.feedback:
            self._feedback(forge, delivery_id, work, closed)

    def _closed(self, work: Delivery) -> dict[str, Any] | None:
        """The delivery's closed thread, closed and its turns stopped (None: it names none)."""
        if work.closed is None or self.loop is None:
            return None
        try:
            return feedback.act_on_closed(self.loop, work.closed)
        except Exception as exc:  # said in the delivery's result; the cleanup still runs
            log.exception("webhook: closing %s failed", work.closed.to_json())
            return {"error": f"closing the thread failed: {type(exc).__name__}: {exc}"}

    def _feedback(
        self, forge: str, delivery_id: str, work: Delivery, closed: dict[str, Any] | None = None
    ) -> None:
        """Act on the delivery's feedback and merge what happened into its stored result (``closed``:
        what closing its thread did already, before the cleanup)."""
        if self.loop is None:
            done: dict[str, Any] = {"error": "no forge is configured: the feedback was not acted on"}
        else:
            done = feedback.act(self.loop, list(work.events), f"{forge}:{delivery_id}") if work.events else {}
            if work.closed:
                done["marker"] = (
                    closed if closed is not None else feedback.act_on_closed(self.loop, work.closed)
                )
                if "error" in done["marker"]:
                    done["error"] = done["marker"]["error"]
            if work.pushed:
                done["marker"] = feedback.act_on_pushed(self.loop, work.pushed)
            if work.settled:
                done["merge"] = feedback.act_on_settled(self.loop, work.settled)
            if work.part:
                done.update(work.part.act(self.loop.config))
        stored = self.deliveries.get_delivery(forge, delivery_id)
        result = {**(stored.result if stored and work.target else {}), **done}
        if work.target is None:
            result.pop("feedback", None)
        failed = "error" in result or (stored is not None and stored.status == DeliveryStatus.FAILED)
        self.deliveries.update_delivery(
            forge, delivery_id, DeliveryStatus.FAILED if failed else DeliveryStatus.DONE, result
        )

    def requeue_pending(self) -> int:
        """Queue the work of deliveries a previous process accepted but did not finish (closing is
        idempotent, so doing one twice is harmless; losing one is not)."""
        pending = self.deliveries.list_deliveries_by_status(DeliveryStatus.PENDING)
        for record in pending:
            try:
                work = Delivery.from_json(record.result, registry.stored_parts())
            except (KeyError, TypeError, ValueError):
                work = Delivery()
            if work.target is None and not work.feedback:
                error = {"error": "stored pending without its work (a target or feedback); not retried"}
                self.deliveries.update_delivery(
                    record.forge, record.delivery_id, DeliveryStatus.FAILED, error
                )
                continue
            self.submit(record.forge, record.delivery_id, work)
        return len(pending)


class Intake:
    """Group commit of new deliveries: handlers queue their record and await a future; one thread
    inserts everything queued in one transaction (:meth:`Store.add_deliveries`) and settles the
    futures. A burst of deliveries then costs a few transactions instead of one each, and no handler
    waits for a thread of the shared pool, which keeps the acknowledgement fast under load: within
    tens of milliseconds under 50 deliveries at once."""

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
