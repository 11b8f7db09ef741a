"""The in-process executor (``baton serve`` without a broker): a bounded pool that runs the service's
jobs with :func:`baton.fleet.execute.execute`, as a Celery worker does. One dispatcher thread owns
every start and starts a job only through :meth:`Store.start_job`, so the runs of a key start in
submission order, one at a time, even with several executors on one store; each started job runs in
a daemon thread of its own, at most ``settings.concurrency`` at once, holding the job's lease
(:func:`baton.fleet.jobs.job_lease`), so another replica on the store tells its jobs from a dead
process's (:class:`LocalExecutor`).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import dataclass, field

from baton.errors import Busy, QuotaHeld
from baton.fleet import jobs, orphans
from baton.fleet.execute import NOT_STARTED, JobRun, execute
from baton.fleet.jobs import job_lease
from baton.models import JobRecord, JobStatus, Outcome
from baton.runner import quota
from baton.runner.onspent import requeue_at
from baton.settings import Settings
from baton.store import Store
from baton.store.leases import LeaseHolder, held

log = logging.getLogger("baton.executor")
# seconds a started job waits for its key's lease (a CLI run, a dead process's lease), and its branch's
# (a run of another key on the same branch): both waits together
LEASE_WAIT = 3600.0
POLL = 1.0  # seconds between looks at the store's queued jobs when nothing wakes the dispatcher
STOP_WAIT = 10.0  # seconds stop() waits for running jobs
ALL = 10**9
KeyId = tuple[str, str, str]


@dataclass(order=True)
class _Queued:
    submitted_at: float
    job_id: str
    key: KeyId = field(compare=False)
    rank: tuple[bool, int, float] = field(compare=False)  # its place among its key's jobs (:func:`_rank`)
    not_before: float = field(default=0.0, compare=False)  # waiting for a usage quota's reset until then


def _rank(job: JobRecord) -> tuple[bool, int, float]:
    """The store's order of a key's jobs (``sql_service.KEY_ORDER``): by ``seq``, numbered at commit,
    older rows without one first. The clock of a submit is not that order: two concurrent submits can
    commit in the other order."""
    return (job.seq is not None, job.seq or 0, job.submitted_at)


@dataclass
class _Running:
    key: KeyId
    cancel: threading.Event
    thread: threading.Thread


def _key(job: JobRecord) -> KeyId:
    return (job.agent, job.repo, job.thread)


class LocalExecutor:
    """The in-process pool; implements :class:`baton.fleet.executor.Executor`.

    One dispatcher thread owns every start: it walks the queued keys oldest first and starts a job only
    through :meth:`Store.start_job` (atomic: never while an earlier job of its key is queued or one is
    running, so the runs of a key start in submission order, even with several executors on one store).
    In memory it skips keys it is already running, so a pass asks the store about at most one job per
    idle key. A started job runs in its own daemon thread (at most ``settings.concurrency`` at once); the
    key's lease is still the real serialisation against runs from the CLI or other machines, and the
    branch's lease against runs of other keys on the same branch, so a job waits for them up to
    :data:`LEASE_WAIT` seconds. A job whose credential's usage quota is spent is
    queued again, first of its key, and not started before the reset (:meth:`_wait_quota`). The
    dispatcher wakes when a job is submitted or ends, and at least every :data:`POLL` seconds (for jobs
    another process queued or finished, and jobs whose wait for a quota is over)."""

    def __init__(self, settings: Settings, store: Store, lease_wait: float = LEASE_WAIT) -> None:
        self.settings, self.store, self.lease_wait = settings, store, lease_wait
        self._lock = threading.Lock()
        self._queued: list[_Queued] = []  # sorted: oldest first
        self._queued_ids: set[str] = set()
        self._running: dict[str, _Running] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None

    # -- the Executor protocol ----------------------------------------------------------------------

    def start(self) -> None:
        """Take over the jobs a dead process left running (:meth:`_take_over_orphans`), queue the
        stored queued jobs, and start dispatching."""
        self._take_over_orphans()
        with self._lock:
            for job in self.store.list_jobs(status=JobStatus.QUEUED, limit=ALL, oldest_first=True):
                self._queue(job)
        self._dispatcher = threading.Thread(target=self._dispatch, name="baton-dispatcher", daemon=True)
        self._dispatcher.start()

    def submit(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.status != JobStatus.QUEUED:
            return
        with self._lock:
            self._queue(job)
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """A running job: set its cancel event (the runner kills the agent's group; outcome
        cancelled). A queued one: done/cancelled at once. False when neither (ended, unknown, or
        running in another process)."""
        with self._lock:  # the dispatcher starts jobs under the same lock: no job is both
            running = self._running.get(job_id)
            if running is not None:
                running.cancel.set()
                return True
            job = self.store.get_job(job_id)
            if job is None or job.status != JobStatus.QUEUED:
                return False
            self._unqueue(job_id)
            jobs.finish(self.store, self.settings, job_id, Outcome.CANCELLED.value, error=NOT_STARTED)
        self._wake.set()  # the next job of its key may start now
        return True

    def stop(self) -> None:
        """Stop dispatching and wait up to :data:`STOP_WAIT` seconds for running jobs; cancel nothing.

        The jobs' threads are daemons, on purpose: after the bounded wait the process may exit; a job it
        leaves behind is ``running`` in the store, and the next process (or another replica) takes it
        over (:meth:`_take_over_orphans`): it runs again, and the runner marks the attempt it left
        ``crashed`` and resumes the conversation with the interruption note."""
        self._stopping.set()
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=STOP_WAIT)
        deadline = time.monotonic() + STOP_WAIT
        with self._lock:
            threads = [r.thread for r in self._running.values()]
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- dispatching --------------------------------------------------------------------------------

    def _queue(self, job: JobRecord) -> None:
        if job.id not in self._queued_ids and job.id not in self._running:
            entry = _Queued(job.submitted_at, job.id, _key(job), _rank(job), job.not_before or 0.0)
            bisect.insort(self._queued, entry)
            self._queued_ids.add(job.id)

    def _unqueue(self, job_id: str) -> None:
        if job_id in self._queued_ids:
            self._queued = [q for q in self._queued if q.job_id != job_id]
            self._queued_ids.discard(job_id)

    def _dispatch(self) -> None:
        orphans_at = time.monotonic() + self.settings.lease_ttl
        while not self._stopping.is_set():
            woken = self._wake.wait(POLL)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                if not woken:
                    self._rescan()
                if time.monotonic() >= orphans_at:
                    orphans_at = time.monotonic() + self.settings.lease_ttl
                    self._take_over_orphans()
                self._pump()
            except Exception:  # a store hiccup: try again on the next wake
                log.exception("dispatching jobs failed")

    def _take_over_orphans(self) -> None:
        """Take over each ``running`` job of the store whose process is gone: not one of this
        executor's, and its job lease free (a live runner — another replica, a worker — renews it; a
        dead one's expires, at once when it was this host's). Under that lease (so two replicas never
        both take it) it is queued again, or ended, as :func:`baton.fleet.orphans.decide` says; then
        the runs dead runners left are marked crashed (:func:`baton.fleet.orphans.settle_runs`).
        Checked at start and every lease TTL: a replica that died for good leaves no turn undone and
        no key blocked behind a job that will never end."""
        with self._lock:
            mine = set(self._running)
        for job in self.store.list_jobs(status=JobStatus.RUNNING, limit=ALL):
            if job.id in mine:
                continue
            lease = job_lease(self.store, self.settings, job.id)
            try:
                lease.acquire(0.0)
            except Busy:
                continue  # its runner is alive
            try:
                self._take_over(job.id)
            finally:
                lease.release()
            self._wake.set()  # it, or the next job of its key, may start now
        orphans.settle_runs(self.settings, self.store)

    def _take_over(self, job_id: str) -> None:
        """One job whose process is gone, under its lease: queued again (first of its key, its count of
        reruns one higher), or ended as its last attempt ended, or crashed (run again too often)."""
        job = self.store.get_job(job_id)
        if job is None or job.status != JobStatus.RUNNING:
            return
        decision = orphans.decide(self.settings, self.store, job)
        log.warning("job %s was running in a process that is gone: %s", job_id, decision.then.value)
        if decision.then != orphans.Then.RERUN:
            jobs.finish(self.store, self.settings, job_id, decision.outcome, **decision.fields)
            return
        self.store.update_job(job_id, status=JobStatus.QUEUED.value, started_at=None, reruns=job.reruns + 1)
        with self._lock:
            requeued = self.store.get_job(job_id)
            if requeued is not None and requeued.status == JobStatus.QUEUED:
                self._queue(requeued)

    def _rescan(self) -> None:
        """Queue stored jobs this executor was never handed (a submit lost between the store and the
        executor, or a job queued by another process)."""
        stored = self.store.list_jobs(status=JobStatus.QUEUED, limit=ALL, oldest_first=True)
        with self._lock:
            for job in stored:
                self._queue(job)

    def _pump(self) -> None:
        """Start what may start: keys by their oldest queued job, each key's first job in the store's
        order (:func:`_rank`), one job per idle key, up to the concurrency."""
        now = time.time()
        with self._lock:
            busy = {r.key for r in self._running.values()}
            first: dict[KeyId, _Queued] = {}
            for entry in self._queued:
                if entry.key not in first or entry.rank < first[entry.key].rank:
                    first[entry.key] = entry
            for entry in list(self._queued):
                if len(self._running) >= self.settings.concurrency:
                    return
                if entry.key in busy:
                    continue
                busy.add(entry.key)  # started or not, later jobs of this key wait for its first
                if first[entry.key].not_before <= now:  # else it waits for a usage quota's reset
                    self._try_start(first[entry.key])

    def _try_start(self, entry: _Queued) -> None:
        """Start the job under its lease, taken first: no other replica ever sees it running unheld."""
        lease = job_lease(self.store, self.settings, entry.job_id)
        try:
            lease.acquire(0.0)
        except Busy:
            return  # another executor is starting it, or ending it: the next pass looks again
        if self.store.start_job(entry.job_id, time.time()):
            self._unqueue(entry.job_id)
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._work,
                args=(entry.job_id, cancel, lease),
                name=f"baton-job:{entry.job_id}",
                daemon=True,
            )
            self._running[entry.job_id] = _Running(entry.key, cancel, thread)
            thread.start()
            return
        lease.release()
        job = self.store.get_job(entry.job_id)
        if job is None or job.status != JobStatus.QUEUED:  # ended elsewhere (cancelled, another executor)
            self._unqueue(entry.job_id)

    # -- running one job ----------------------------------------------------------------------------

    def _work(self, job_id: str, cancel: threading.Event, lease: LeaseHolder) -> None:
        """Run one job and record how it ended (:func:`execute`), its lease renewed meanwhile (taken
        over — this process was taken for dead — the run stops); never leaves it running here."""
        how = JobRun(cancel, self.lease_wait, log, defer_quota=True, may_end=lambda: self._forget(job_id))
        try:
            job = self.store.get_job(job_id)
            if job is not None and job.reruns:  # run again after its process died: its attempts before
                prior = [r.id for r in self.store.run_attempts(job_id)]
                how.earlier = lambda: [orphans.attempt_of(self.store, r) for r in prior]
            with held(lease, 0.0, self.settings.heartbeat, on_loss=cancel):  # held: taken again at once
                try:
                    execute(self.settings, self.store, job_id, how)
                except QuotaHeld as spent:  # queued again before its lease is given back
                    self._wait_quota(job_id, spent, cancel)
        except Exception:
            log.exception("could not record the end of job %s", job_id)
        finally:
            self._forget(job_id)
            self._wake.set()

    def _wait_quota(self, job_id: str, spent: QuotaHeld, cancel: threading.Event) -> None:
        """Its credential's usage quota is spent: queued again, still first of its key, and started
        by the dispatcher (which looks every :data:`POLL` seconds) after the reset, with jitter. Under
        the lock, as :meth:`cancel` looks: a cancel that came while it ran ends it now (it is no longer
        running here, and would else be lost), one that comes later finds it queued."""
        now = time.time()
        at = requeue_at(spent, now)
        with self._lock:
            self._running.pop(job_id, None)
            if cancel.is_set():
                jobs.finish(self.store, self.settings, job_id, Outcome.CANCELLED.value, error=NOT_STARTED)
                return
            self.store.update_job(job_id, status=JobStatus.QUEUED.value, started_at=None, not_before=at)
            job = self.store.get_job(job_id)
            if job is not None and job.status == JobStatus.QUEUED:
                self._queue(job)
        log.info("job %s waits for a usage quota's reset until %s", job_id, quota.when(at, now))

    def _forget(self, job_id: str) -> bool:
        """The job has ended here: a cancel now finds nothing to stop (the store may still say running)."""
        with self._lock:
            self._running.pop(job_id, None)
        return True
