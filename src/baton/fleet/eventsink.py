"""A job's event stream on its way to the store: in order, exactly once, whatever the store does. With
a broker, a job's events reach its followers through the store (:mod:`baton.fleet.jobs`); the thread
that reads the agent's output must not wait on the store (a PostgreSQL frozen mid-turn by SIGSTOP, a
stalled VM or a failover held it past the agent's end, and a failed write was never written again:
docs/fleet.md, "A store outage mid-turn"). So the reader only queues, and :class:`StoreSink` owns one
thread that writes the queued lines in sequence order, one at a time, trying a line again after a
failure (0.2 s, doubling to 5 s) until the store takes it; the job's end is recorded only after
:meth:`StoreSink.flush`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque

from baton import retry
from baton.store.base import JobStore

log = logging.getLogger("baton.events")

DRAIN = 300.0  # seconds the end of a job waits for the store to take its queued events
FIRST_RETRY, LAST_RETRY = 0.2, 5.0


class StoreSink:
    """The queued event lines of one job and the thread that writes them to the store."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self._store, self._job_id = store, job_id
        self._pending: deque[tuple[int, str]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"baton-events-{job_id}", daemon=True)
        self._thread.start()

    def put(self, seq: int, line: str) -> None:
        """Queue line ``seq`` (callers put them in sequence order); never waits on the store."""
        with self._changed:
            self._pending.append((seq, line))
            self._changed.notify_all()

    def flush(self, timeout: float = DRAIN) -> bool:
        """Wait until the store holds every line queued so far; False after ``timeout`` seconds. The job's
        end is recorded only after it, so a follower that sees the job ended has seen its whole stream."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float = DRAIN) -> None:
        """Flush, then stop the thread. Lines the store never took are logged, not lost silently: only an
        outage longer than :data:`DRAIN` at the job's end leaves lines behind (the job's end cannot be
        recorded then either), and the job's local file still has them."""
        if not self.flush(timeout):
            with self._changed:
                left = [seq for seq, _ in self._pending]
            log.error(
                "job %s: the store took no events for %.0f s; seq %s are only in this worker's file",
                self._job_id,
                timeout,
                left,
            )
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                seq, line = self._pending[0]
            failures: list[BaseException] = []  # this line's, so an outage is said once, and its end
            # add_job_event inserts ignoring a row already there: a line whose first write did land
            # although its answer was lost is not doubled by writing it again
            try:
                retry.Retrying(
                    retry=retry.retry_if_exception_type(Exception),  # the store's words, whatever they are
                    wait=retry.growing(FIRST_RETRY, LAST_RETRY),
                    stop=retry.stop_never,  # until it answers or the job is closed (:meth:`_nap`)
                    before_sleep=functools.partial(self._failed, seq, failures=failures),
                    sleep=self._nap,
                    reraise=True,
                )(self._store.add_job_event, self._job_id, seq, line)
            except retry.Stopped:
                return
            if failures:
                log.warning("job %s: the store takes events again (from seq %d)", self._job_id, seq)
            with self._changed:
                self._pending.popleft()
                self._changed.notify_all()

    def _nap(self, delay: float) -> None:
        """The pause before the store is tried again; a close ends it (and the loop) at once."""
        with self._changed:
            if self._changed.wait_for(lambda: self._closed, delay):
                raise retry.Stopped

    def _failed(self, seq: int, state: retry.RetryCallState, *, failures: list[BaseException]) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if not failures and exc is not None:  # once per outage, not once per retry
            log.warning("job %s: event seq %d not stored yet (%s); retrying", self._job_id, seq, exc)
        if exc is not None:
            failures.append(exc)
