"""One disk measurement per service, shared by ``/metrics`` and the dashboard.

:func:`baton.housekeeping.disk.usage` walks every worktree, transcript and cache clone: seconds on a
large home. :class:`DiskCache` keeps the last :class:`DiskReport` and refreshes it in a background
thread when it is older than :data:`DISK_TTL` (one refresh at a time), so a scrape or a page never
walks directories itself; a home whose walk takes long is walked at most a tenth of the time (the walk
competes for the GIL with the requests). Nothing is written: a measurement leaves the home as it
found it, so its numbers stay equal to ``baton du``'s.
"""

from __future__ import annotations

import logging
import threading
import time

from baton.housekeeping.disk import DiskReport, MeasuredStore, usage
from baton.settings import Settings

DISK_TTL = 60.0  # seconds a measurement is reused
log = logging.getLogger("baton.service.disk")


class DiskCache:
    def __init__(self, store: MeasuredStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.report: DiskReport | None = None
        self.measured_at = 0.0  # wall-clock time of ``report``
        self._age_base = 0.0  # monotonic time of ``report``
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._took = 0.0  # seconds the last measurement took
        self.started_at: float | None = None  # wall-clock start of the measurement running now

    def get(self, wait: float = 0.0, fresh: bool = False) -> DiskReport | None:
        """The last report; starts a refresh when it is stale (or ``fresh``). Waits up to ``wait``
        seconds for that refresh when there is no report yet, or when ``fresh`` asks for a new one."""
        with self._lock:
            stale = time.monotonic() - self._age_base > max(DISK_TTL, 10 * self._took)
            if (stale or fresh) and self._refreshing is None:
                self._refreshing = threading.Thread(target=self._refresh, name="baton-disk", daemon=True)
                self.started_at = time.time()
                self._refreshing.start()
            thread = self._refreshing
            must_wait = fresh or self.report is None
        if must_wait and thread is not None:
            thread.join(wait)
        return self.report

    def _refresh(self) -> None:
        started = time.monotonic()
        try:
            report: DiskReport | None = usage(self.store, self.settings)
        except Exception:  # a page or a scrape must not fail because a directory vanished mid-walk
            log.exception("measuring disk use failed; keeping the last numbers")
            report = None
        with self._lock:
            if report is not None:
                self.report, self.measured_at = report, time.time()
            self._age_base, self._refreshing, self.started_at = time.monotonic(), None, None
            self._took = self._age_base - started
