"""Leases: the right to run a key, held by one runner at a time across processes and machines. A lease
lives in its backend with an expiry that the holder's heartbeat pushes forward; another runner may
take it over when it has expired, or at once when its holder ran on this same host and that process is
gone (a SIGKILLed runner is noticed at once, not after the TTL). :func:`held` is the one way to hold a
lease for a piece of work (a run, a plan, a reset), and :func:`lease_backend` picks where grants live:
the SQL store itself (the default) or Redis (``BATON_LEASE_BACKEND=redis``), which records each grant's
fencing token in the store, so the store's fenced writes refuse older grants either way.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from baton import retry
from baton.errors import BadInput, BatonError, Busy, Cancelled, StoreBusy, StoreUnavailable
from baton.models import Fence
from baton.settings import Settings
from baton.store.base import Lease, LeaseBackend, LeaseStore

__all__ = ["HOST", "LeaseBackend", "LeaseHolder", "held", "key_lease", "lease_backend", "pid_alive", "since"]

HOST = socket.gethostname()
AWAY_EVERY = 0.5  # seconds between renewals of a lease while its store cannot be reached


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs on this host. A zombie (SIGKILLed, not yet reaped by its parent, as a
    Celery pool process is) is dead: its lease may be taken at once."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # lazy: cold CLI
    import psutil  # (~20 ms of imports: only when a lease's holder on this host may be gone)

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def lease_backend(settings: Settings, store: LeaseStore) -> LeaseBackend:
    """The store itself (``lease_backend = "sql"``), or Redis (``"redis"``, needs ``redis_url``)."""
    if settings.lease_backend == "sql":
        return store
    if settings.lease_backend != "redis":
        raise BadInput(f"setting 'lease_backend' must be 'sql' or 'redis', not {settings.lease_backend!r}")
    if not settings.redis_url:
        raise BadInput("setting 'lease_backend' is 'redis' but 'redis_url' (BATON_REDIS_URL) is empty")
    # lazy: the redis extra
    from baton.store.redis import connect
    from baton.store.redis_leases import RedisLeases

    conn = connect(settings, store)
    assert conn is not None
    return RedisLeases(conn, store)


@dataclass
class LeaseHolder:
    store: LeaseBackend  # grants the lease unless ``backend`` is given
    key: str
    ttl: float
    holder: str = field(default_factory=lambda: f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    held: bool = False

    fence: int = 0  # the fencing token of this grant, once acquired
    backend: LeaseBackend | None = None  # where the lease is granted; None: the store

    @property
    def proof(self) -> Fence:
        """What this holder's writes about the key carry: the store refuses them after a takeover."""
        return Fence(self.key, self.fence)

    @property
    def grants(self) -> LeaseBackend:
        return self.backend if self.backend is not None else self.store

    def _can_take(self, existing: Lease, now: float) -> bool:
        if existing.expires_at < now:  # by the store's clock
            return True
        return existing.host == HOST and existing.pid != os.getpid() and not pid_alive(existing.pid)

    def acquire(self, wait: float, cancel: threading.Event | None = None) -> None:
        """Take the lease, polling for up to ``wait`` seconds; raise :class:`Busy` naming the holder,
        or :class:`Cancelled` as soon as ``cancel`` is set while waiting."""
        deadline = time.monotonic() + max(wait, 0.0)
        try:
            blocker = retry.Retrying(
                retry=retry.retry_if_result(lambda held_by: held_by is not None),
                wait=retry.growing(0.05, 0.5, factor=1.5),  # polls: soon at first, then twice a second
                stop=lambda _state: time.monotonic() >= deadline,
                sleep=retry.cancellable(cancel),
                retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            )(self._try)
        except retry.Stopped:
            raise Cancelled(f"cancelled while waiting for {self.key}, which a run holds") from None
        if blocker is not None:
            raise self.busy(blocker)

    def busy(self, blocker: Lease) -> Busy:
        """The error when ``blocker`` still holds the lease after the wait: it names the holder."""
        if blocker.locked:
            return Busy(
                f"{self.key} is busy: its lease was being written by another connection all the while "
                f"(last granted to host {blocker.host or '-'}, pid {blocker.pid}): a takeover, or a "
                "holder frozen mid-renewal, which the store lets go within its idle timeout "
                "(store_idle_timeout); try again later or pass --wait SECONDS"
            )
        return Busy(
            f"{self.key} is busy: a run holds it (host {blocker.host}, pid {blocker.pid}, "
            f"since {since(blocker)}); try again later or pass --wait SECONDS"
        )

    def _try(self) -> Lease | None:
        """One try at the lease: None when it is ours now, else the lease that holds the key."""
        lease = Lease(self.key, self.holder, HOST, os.getpid(), 0.0, 0.0)
        try:
            blocker = self.grants.try_lease(lease, self.ttl, self._can_take)
        except StoreBusy:  # a Redis grant's record in the store met a row another transaction holds
            return Lease(self.key, "", "", 0, 0.0, 0.0, locked=True)
        if blocker is None:
            self.held, self.fence = True, lease.fence
        return blocker

    def renew(self) -> bool:
        """Push the expiry forward; False when the lease was taken over (stop working on the key)."""
        return self.grants.renew_lease(self.key, self.holder, self.ttl)

    def release(self) -> None:
        if self.held:
            self.grants.release_lease(self.key, self.holder)
            self.held = False


def since(lease: Lease) -> str:
    """When ``lease`` was granted, as a local clock time for a message."""
    return time.strftime("%H:%M:%S", time.localtime(lease.acquired_at))


def key_lease(settings: Settings, store: LeaseStore, key: str) -> LeaseHolder:
    """The lease of ``key`` from the configured backend, living ``settings.lease_ttl`` seconds."""
    return LeaseHolder(store, key, settings.lease_ttl, backend=lease_backend(settings, store))


@contextmanager
def held(
    lease: LeaseHolder,
    wait: float,
    every: float,
    cancel: threading.Event | None = None,
    *,
    on_loss: threading.Event | None = None,
) -> Iterator[threading.Event]:
    """Hold ``lease`` for the ``with`` block (acquired waiting up to ``wait`` seconds unless ``cancel``
    is set meanwhile, renewed every ``every`` seconds, released at the end); yields the event that is
    set if the lease is lost. ``on_loss`` (the caller's stop event, e.g. its run's cancel) is set by the
    same renewal, so the work stops at once: no thread of the caller's relays one event to the other.

    The lease is renewed from a background thread through every step of the work (clone, hydrate,
    agent, snapshot, checkpoint), so a slow step can never let another runner take the key; when a
    renewal finds the lease taken over, the holder must stop. While the store cannot be reached the
    renewal is tried every :data:`AWAY_EVERY` seconds, so that it renews the lease as soon as the store
    is back (an expired lease nobody took is still this holder's); the release at the end is skipped
    then (the lease expires by its TTL), never raised over the work's own outcome."""
    lease.acquire(wait, cancel)
    lost = threading.Event()
    stop = threading.Event()

    def beat() -> None:
        pause = every
        while not stop.wait(pause):
            try:
                renewed = lease.renew()
            except BatonError:
                pause = min(every, AWAY_EVERY)  # the store hiccuped or is away: try again soon
                continue
            pause = every
            if not renewed:
                lost.set()
                if on_loss is not None:
                    on_loss.set()
                return

    thread = threading.Thread(target=beat, name=f"baton-lease:{lease.key}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(StoreUnavailable):
            lease.release()
