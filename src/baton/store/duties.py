"""Duties: the periodic store-wide work of a fleet (the forge's reconcile and heal, the expiry of
sessions, the workers' janitor) done by one process at a time, however many replicas run. A duty is a
lease named ``duty:<name>`` (:class:`~baton.store.leases.LeaseHolder`, from the configured backend, with
its fencing token), taken with no wait when a round is due and kept by a heartbeat for as long as its
holder lives, so the same process does the duty round after round; when it dies another takes it over
after ``lease_ttl`` seconds (at once on the same host, where a dead pid is seen). A holder that lost
it (its fence moved) stops the round in flight at its next write (:meth:`Duty.still`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from baton.errors import BatonError, Busy
from baton.settings import Settings
from baton.store import store_for
from baton.store.base import LeaseStore, Store
from baton.store.leases import LeaseHolder, lease_backend

__all__ = ["Duty"]

log = logging.getLogger("baton.duties")
PREFIX = "duty:"


@dataclass
class Duty:
    """One duty of this process: :meth:`mine` says, at each round, whether this process does it now.
    ``store``: where its lease lives (None: a connection of its own, opened when first needed, closed
    by :meth:`release`)."""

    settings: Settings
    name: str
    store: LeaseStore | None = None
    _own: Store | None = None
    _lease: LeaseHolder | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None
    _renewed: float = 0.0  # when its lease was last taken or renewed (monotonic)

    def mine(self) -> bool:
        """Whether this process holds the duty now: still held (renewed now), or free and taken. A
        store that does not answer is no: the duty waits for a round that can prove it."""
        try:
            lease = self._lease_of()
            if lease.held and lease.renew():
                self._renewed = time.monotonic()
                return True
            lease.held = False
            lease.acquire(0.0)
            self._renewed = time.monotonic()
        except Busy:
            return False
        except BatonError as exc:
            log.warning("duty %s: the store did not answer: %s", self.name, exc)
            return False
        log.info("duty %s: this process holds it (fence %d)", self.name, lease.fence)
        self._keep(lease)
        return True

    def still(self) -> bool:
        """Whether this process may still write as the duty's holder, in the middle of a round: its
        lease held and renewed less than a TTL ago (a holder frozen past its TTL may have been replaced
        already, and its heartbeat has not told it yet). No store round trip: asked before each write."""
        lease = self._lease
        fresh = time.monotonic() - self._renewed < self.settings.lease_ttl
        return lease is not None and lease.held and fresh

    @property
    def fence(self) -> int:
        """The fencing token of the grant held (0: none)."""
        return self._lease.fence if self._lease is not None and self._lease.held else 0

    def release(self) -> None:
        """Give the duty up (a process that stops): another takes it at its next round."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5.0)
        if self._lease is not None:
            try:
                self._lease.release()
            except BatonError as exc:  # it expires on its own
                log.warning("duty %s: not released: %s", self.name, exc)
        if self._own is not None:
            self._own.close()

    def _lease_of(self) -> LeaseHolder:
        if self._lease is None:
            store = self.store
            if store is None:
                store = self._own = store_for(self.settings)
            backend = lease_backend(self.settings, store)
            self._lease = LeaseHolder(store, PREFIX + self.name, self.settings.lease_ttl, backend=backend)
        return self._lease

    def _keep(self, lease: LeaseHolder) -> None:
        """Renew the lease between rounds too (a round may be rarer than the lease's life)."""
        if self._beat is not None and self._beat.is_alive():
            return
        every = max(0.2, self.settings.lease_ttl / 3)

        def beat() -> None:
            while not self._stop.wait(every) and lease.held:
                try:
                    if lease.renew():
                        self._renewed = time.monotonic()
                    else:
                        lease.held = False  # taken over: the round in flight stops at its next write
                except BatonError:
                    continue  # the store hiccuped: the TTL is several beats long

        self._beat = threading.Thread(target=beat, name=f"baton-duty:{self.name}", daemon=True)
        self._beat.start()
