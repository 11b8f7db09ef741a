"""Cooperative cancel: a request to stop a submitted run (a job), noticed by whichever worker runs it.
Cancel never kills a worker (no Celery ``revoke(terminate=True)``): the store records the request (the
truth: :meth:`Store.request_cancel` sets ``jobs.cancel_requested_at``), with Redis a flag key
``<prefix>cancel:<job id>`` (a day's TTL) is set too, and :class:`CancelWatch` polls them from a thread
(Redis's flag with one ``EXISTS`` every 0.2 s and the store every 2 s, the fallback for a flag Redis
lost or could not take; without Redis the store every 0.5 s) and sets the run request's ``cancel``
event. The runner only looks at that ``threading.Event`` and stops its agent the way a local cancel
does (the process group, outcome ``cancelled``, the conversation kept).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from baton.errors import StoreError
from baton.store.base import JobStore
from baton.store.redis import RedisConn

FLAG_TTL = 86_400  # seconds a cancel flag lives in Redis (a job runs for less; the store keeps it anyway)
POLL = 0.2  # seconds between cheap checks (Redis; the store when there is no Redis)
STORE_POLL_WITH_REDIS = 2.0  # seconds between store checks when Redis carries the flag
STORE_POLL_ALONE = 0.5  # seconds between store checks without Redis


def _flag(redis: RedisConn, job_id: str) -> str:
    return redis.key("cancel", job_id)


def request_cancel(
    store: JobStore, job_id: str, redis: RedisConn | None = None, at: float | None = None
) -> bool:
    """Ask whichever worker runs ``job_id`` to stop it; False when the job already ended (or is
    unknown). The store's record is written first; a Redis that cannot take the flag only makes the
    worker notice later (from the store)."""
    if not store.request_cancel(job_id, time.time() if at is None else at):
        return False
    if redis is not None:
        try:
            with redis.errors("setting a cancel flag"):
                redis.client.set(_flag(redis, job_id), "1", ex=FLAG_TTL)
        except StoreError:
            pass  # the store has the request; the worker reads it there within STORE_POLL_WITH_REDIS
    return True


def flag_set(redis: RedisConn, job_id: str) -> bool:
    """Redis's fast flag only (False may still mean: requested, and Redis lost it)."""
    with redis.errors("reading a cancel flag"):
        return bool(redis.client.exists(_flag(redis, job_id)))


def cancel_requested(store: JobStore, job_id: str, redis: RedisConn | None = None) -> bool:
    """Whether a cancel was requested for ``job_id``: Redis's flag when set, else the store's record."""
    if redis is not None:
        try:
            if flag_set(redis, job_id):
                return True
        except StoreError:
            pass
    job = store.get_job(job_id)
    return job is not None and job.cancel_requested_at is not None


class CancelWatch:
    """Watch ``job_id`` for a cancel request from a background thread; ``event`` (given, or a new one)
    is set when one comes. Use as a context manager, or ``start()``/``stop()``.

    ``is_set()`` and ``wait(timeout)`` are thread-safe (they are the event's)."""

    def __init__(
        self,
        store: JobStore,
        redis: RedisConn | None,
        job_id: str,
        event: threading.Event | None = None,
        every: float = POLL,
        store_every: float | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.job_id = job_id
        self.event = event if event is not None else threading.Event()
        self.every = every
        self.store_every = (
            store_every
            if store_every is not None
            else (STORE_POLL_WITH_REDIS if redis is not None else STORE_POLL_ALONE)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def start(self) -> CancelWatch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"baton-cancel:{self.job_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> CancelWatch:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        next_store = 0.0  # the first check reads the store: a cancel may predate the flag's Redis
        while not self.event.is_set():
            now = time.monotonic()
            if self._check(now >= next_store):
                self.event.set()
                return
            if now >= next_store:
                next_store = now + self.store_every
            if self._stop.wait(self.every):
                return

    def _check(self, store_too: bool) -> bool:
        try:
            if self.redis is not None and flag_set(self.redis, self.job_id):
                return True
            if store_too:
                job = self.store.get_job(self.job_id)
                return job is not None and job.cancel_requested_at is not None
        except StoreError:
            pass  # a hiccup: the next poll asks again
        return False
