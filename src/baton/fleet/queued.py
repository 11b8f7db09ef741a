"""Jobs delivered by a message queue (the Celery executor's core, broker-agnostic). A message carries
only a job id; the job, with its request, is stored ``queued`` first (:func:`baton.fleet.jobs.submit`),
so the store, not the broker, is the truth, and a message may arrive twice, late, or after the worker
that had it died: :func:`handle` is idempotent, holding the job's own lease while it works, and runs
the job with :func:`baton.fleet.execute.execute` as the in-process pool does. The runs of a key start
in submission order without holding a worker slot (an end *kicks* the key's next job), a job whose
usage quota is spent waits for its reset off the slot, and each worker's janitor (:func:`heal`) kicks
what no message will bring back. Cancel is the store's flag, never a revoke (:func:`cancel`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton.errors import Busy, QuotaHeld
from baton.fleet import jobs, orphans
from baton.fleet.cancel import CancelWatch, request_cancel
from baton.fleet.drain import HandBack
from baton.fleet.execute import NOT_STARTED, JobRun, execute
from baton.fleet.jobs import job_lease
from baton.models import JobRecord, JobStatus, Outcome, RunRecord
from baton.runner import quota
from baton.runner.onspent import requeue_at
from baton.runner.request import attempt_json
from baton.settings import Settings
from baton.store.base import JobStore, LeaseBackend, Store
from baton.store.leases import LeaseHolder, held
from baton.store.redis import connect

log = logging.getLogger("baton.worker")

Kick = Callable[[str, float], None]  # send a message for a job id, after a countdown in seconds
Resend = Callable[[JobRecord, float], None]  # the janitor's: a job's message again, to the job's own queue
ALL = 10**9
STALE = 4  # lease TTLs a key's oldest queued job waits, with nothing of its key running, before a kick
# seconds at most a job waiting for a usage quota's reset is sent a delayed message for (a Celery
# countdown is held unacknowledged by a worker until it is due: RabbitMQ closes a channel whose message
# waits past its consumer_timeout, 30 min by default); a longer wait is the janitor's, once it is due
COUNTDOWN_MAX = 600.0

# What handle() did with a message (logged, and returned by the Celery task).
UNKNOWN, ENDED, HELD, WAITING, CANCELLED, RAN, RECORDED, DEFERRED, LOST, QUOTA = (
    "unknown",  # no such job
    "ended",  # the job had ended already: nothing to do (its successor kicked)
    "held",  # a live worker handles the job: dropped
    "waiting",  # an earlier job of its key is queued or running: it kicks this one when it ends
    "cancelled",  # a queued job with a cancel request: ended without running
    "ran",  # started (or taken over) and ran
    "recorded",  # taken over after its last attempt had ended: only its end was recorded
    "deferred",  # the key's (or branch's) lease was held elsewhere too long: queued again, retried later
    "lost",  # this worker lost the job's lease mid-run (paused too long): the new holder records the end
    "quota",  # its credential's usage quota is spent: queued again, a message for it after the reset
)
GAVE_UP = "gave up"  # taken over once too often (its workers died mid-turn): ended crashed


HANDED_BACK = "handed back"  # the worker stopped past its drain's deadline: its turn stopped, queued again


def key_wait(settings: Settings) -> float:
    """How long a started job waits for its key's lease: long enough for a dead runner's lease to
    expire; a key held longer (a long CLI run) puts the job back in the queue instead."""
    return 2 * settings.lease_ttl + 5


def handle(job_id: str, settings: Settings, store: Store, kick: Kick) -> str:
    """Do what a message for ``job_id`` asks, if anything; what it did (:data:`UNKNOWN`, ...).

    **The job lease.** Whoever handles a job holds the lease ``job:<id>`` in the store from before it
    starts the job until after it recorded its end (renewed by :func:`baton.store.leases.held`, like a
    key's lease). So:

    - a message whose job's lease is held by a live worker is dropped: that worker has a message of its
      own for the job, unacknowledged until it is done (``acks_late``), which the broker redelivers if
      it dies;
    - a job ``running`` whose lease is free was being handled by a worker that died: the message (its
      own redelivery, or the janitor's kick) takes it over (:meth:`_Handler._take_over`, as
      :func:`baton.fleet.orphans.decide` says): when the last attempt of the job had ended and its
      runner finished it (or this worker's home has what it left, shared now), only the job's end went
      unrecorded, and it is recorded now (a turn never succeeds twice); otherwise the job runs again
      (at most the setting ``job_reruns`` times, then it ends ``crashed``), and the runner marks the
      dead attempt ``crashed`` once the key's lease is free and resumes the conversation with the
      interruption note;
    - a worker whose renewal finds the job's lease taken (it was paused past the TTL) stops its run at
      once (the renewal sets the run's cancel event) and records nothing: the new holder records the end.

    **Order per key without holding a slot.** ``Store.start_job`` is the gate: it starts a job only when
    no earlier job of its key is queued and none is running. A message whose job may not start yet is
    dropped at once (a worker slot never waits for another key's run); the job is *kicked* (sent a new
    message) when the job ahead of it ends: every end of a job, by any path, kicks the oldest queued job
    of its key (:func:`kick_next`), and so does a redelivered message of a job that already ended (its
    worker may have died between the end and the kick). The kick goes to the broker, so the next run of
    a key starts wherever a slot is free, in submission order."""
    job = store.get_job(job_id)
    if job is None:
        return UNKNOWN
    if job.status == JobStatus.DONE:
        kick_next(store, job, kick)
        return ENDED
    entered = False
    stop = threading.Event()  # the run's cancel: a cancel request (watched), or the loss of the job's lease
    try:
        lease = job_lease(store, settings, job_id)
        with held(lease, 0.0, settings.heartbeat, on_loss=stop) as lost:
            entered = True
            return _Handler(settings, store, kick, job_id, _Held(lease, lost, stop)).handle()
    except Busy:
        if entered:
            raise
        return HELD


def kick_next(store: JobStore, job: JobRecord, kick: Kick) -> None:
    """Send a message for the first queued job of ``job``'s key (in the store's order), if any."""
    queued = store.list_jobs(
        agent=job.agent, repo=job.repo, thread=job.thread, status=JobStatus.QUEUED, limit=1, oldest_first=True
    )
    if queued:
        kick(queued[0].id, 0.0)


def cancel(settings: Settings, store: Store, job_id: str, kick: Kick, wait: float = 1.0) -> bool:
    """Ask for ``job_id`` to stop (the API's cancel): False when it already ended or is unknown. It is
    the store's flag (:func:`baton.fleet.cancel.request_cancel`), never a revoke: a running job is
    stopped by its worker, which watches the flag (:class:`baton.fleet.cancel.CancelWatch`), and the
    runner stops the agent. A queued one is ended here once its
    lease is had (a worker holds a queued job's lease only for a moment; ``wait`` seconds at most, else
    the worker that holds it sees the flag)."""
    if not request_cancel(store, job_id, connect(settings, store)):
        return False
    job = store.get_job(job_id)
    if job is None or job.status == JobStatus.DONE:
        return True
    if job.status == JobStatus.RUNNING:
        if _unheld(store, settings, job_id):
            kick(job_id, 0.0)  # its worker died: the takeover sees the flag
        return True
    lease = job_lease(store, settings, job_id)
    try:
        lease.acquire(wait)
    except Busy:
        return True
    try:
        job = store.get_job(job_id)
        if job is not None and job.status == JobStatus.QUEUED:
            jobs.finish(store, settings, job_id, Outcome.CANCELLED.value, error=NOT_STARTED)
            kick_next(store, job, kick)
    finally:
        lease.release()
    return True


@dataclass
class _Held:
    """The job's lease while a message is handled, the event set if a renewal found it taken, and the
    run's cancel event, which that renewal sets too (the agent stops at once)."""

    holder: LeaseHolder
    lost: threading.Event
    stop: threading.Event

    def still(self) -> bool:
        """Whether the lease is still ours, asked now: a worker paused past the TTL (its heartbeat
        thread paused too) must not record an end that its successor records."""
        return not self.lost.is_set() and self.holder.renew()


class _Handler:
    """One message's work, under the job's lease."""

    def __init__(self, settings: Settings, store: Store, kick: Kick, job_id: str, lease: _Held) -> None:
        self.settings, self.store, self.kick, self.job_id, self.lease = settings, store, kick, job_id, lease
        self.prior: list[str] = []  # attempts a dead worker made of this job (a takeover)
        self.attempts: list[RunRecord] = []

    def handle(self) -> str:
        job = self.store.get_job(self.job_id)  # again: it may have moved before the lease was ours
        if job is None:
            return UNKNOWN
        if job.status == JobStatus.DONE:
            kick_next(self.store, job, self.kick)
            return ENDED
        self.prior = [r.id for r in self.store.run_attempts(self.job_id)]
        if job.status == JobStatus.QUEUED:
            if job.cancel_requested_at is not None:
                return self._end(job, Outcome.CANCELLED.value, {"error": NOT_STARTED}, CANCELLED)
            if job.not_before is not None and job.not_before > time.time():
                return QUOTA  # early (a copy, the janitor): the message sent for its reset starts it
            if not self.store.start_job(self.job_id, time.time()):
                return WAITING
            return self._run(job)
        return self._take_over(job)

    def _take_over(self, job: JobRecord) -> str:
        """A running job nobody holds: its worker died. Record its end if its last turn had ended, else
        run it again, counted, up to its bound (:func:`baton.fleet.orphans.decide`), then end it crashed."""
        decision = orphans.decide(self.settings, self.store, job)
        log.warning("job %s was running on a worker that stopped: %s", self.job_id, decision.then.value)
        if decision.then == orphans.Then.RECORD:
            return self._end(job, decision.outcome, decision.fields, RECORDED)
        if decision.then == orphans.Then.CRASH:
            return self._end(job, decision.outcome, decision.fields, GAVE_UP)
        self.store.update_job(self.job_id, reruns=job.reruns + 1)
        return self._run(job)

    def _run(self, job: JobRecord) -> str:
        with HandBack(self.settings, self.job_id, self.lease.stop) as back:
            how = JobRun(
                self.lease.stop,
                key_wait(self.settings),
                log,
                on_start=self.started,
                watch=lambda: CancelWatch(
                    self.store, connect(self.settings, self.store), self.job_id, self.lease.stop
                ),
                earlier=lambda: [orphans.attempt_of(self.store, r) for r in self.prior],
                defer_busy=True,
                defer_quota=True,
                may_end=lambda: not back.due and self.lease.still(),  # handed back: not ended
            )
            try:
                ended = execute(self.settings, self.store, self.job_id, how)
            except Busy as busy:  # its key's lease, or its branch's (another key writes it)
                return self._defer(job, busy)
            except QuotaHeld as spent:
                return self._wait_quota(job, spent)
        if ended is None and back.due:
            return self._hand_back(job)
        if ended is None:
            log.warning("job %s: its lease was taken over mid-run; the new holder records its end", job.id)
            return LOST
        kick_next(self.store, job, self.kick)
        return RAN

    def started(self, record: RunRecord) -> None:
        """The runner's ``on_start``: the job lists its attempts as they start, so a worker taking it
        over knows whether its last turn ended."""
        self.attempts.append(record)
        attempts = [orphans.attempt_of(self.store, r) for r in self.prior] + [
            attempt_json(r) for r in self.attempts
        ]
        self.store.update_job(self.job_id, result={"attempts": attempts})

    def _defer(self, job: JobRecord, busy: Busy) -> str:
        """The key's lease stayed held (a long CLI run), or its branch's (a run of another key on the
        same branch, :class:`~baton.errors.BranchBusy`): back to queued (still first of its key), and a
        message for it later; the slot is free meanwhile."""
        self.store.update_job(self.job_id, status=JobStatus.QUEUED.value, started_at=None)
        self.kick(self.job_id, self.settings.lease_ttl)
        log.info("job %s: %s; retrying in %.0f s", job.id, busy, self.settings.lease_ttl)
        return DEFERRED

    def _hand_back(self, job: JobRecord) -> str:
        """The worker drained past its deadline (:mod:`baton.fleet.drain`): its turn was stopped (and
        checkpointed); back to queued, still first of its key, and a message for another worker,
        which resumes the conversation with the interrupted note."""
        self.store.update_job(self.job_id, status=JobStatus.QUEUED.value, started_at=None)
        self.kick(self.job_id, 0.0)
        log.warning("job %s: handed back to the queue (the worker is stopping)", job.id)
        return HANDED_BACK

    def _wait_quota(self, job: JobRecord, spent: QuotaHeld) -> str:
        """Its credential's usage quota is spent: back to queued (still first of its key, so the key's
        later jobs wait behind it), not started before the reset (with jitter), and a message for it
        then; the slot is free meanwhile. The message is sent with a countdown to the reset (jitter:
        :func:`baton.runner.quota.jitter`) up to :data:`COUNTDOWN_MAX`; a longer wait is the janitor's
        (:func:`heal`), which kicks it once its time has come. A message that comes earlier (a copy) is
        dropped, and ``Store.start_job`` refuses it before then. A cancel asked for while it ran (its
        flag is in the store, read after the job is queued again, under its lease) ends it now: the
        reset's message would see it only hours later."""
        now = time.time()
        at = requeue_at(spent, now)
        self.store.update_job(self.job_id, status=JobStatus.QUEUED.value, started_at=None, not_before=at)
        current = self.store.get_job(self.job_id)
        if current is not None and current.cancel_requested_at is not None:
            return self._end(job, Outcome.CANCELLED.value, {"error": NOT_STARTED}, CANCELLED)
        if at - now <= COUNTDOWN_MAX:  # a longer wait: the janitor kicks it when its time has come
            self.kick(self.job_id, at - now)
        log.info("job %s waits for a usage quota's reset until %s", job.id, quota.when(at, now))
        return QUOTA

    def _end(self, job: JobRecord, outcome: str, fields: dict[str, Any], what: str) -> str:
        """End a job that does not run (a cancelled queued one, a takeover's record) and kick the next."""
        jobs.finish(self.store, self.settings, self.job_id, outcome, **fields)
        kick_next(self.store, job, self.kick)
        return what


def heal(settings: Settings, store: Store, kick: Resend, kicked: dict[str, float]) -> list[str]:
    """One janitor pass (every worker, every ``lease_ttl`` seconds); the job ids it kicked. ``kicked``
    remembers when this janitor last kicked a queued job, so a long queue is not flooded with copies.

    It kicks what no message will bring back: a ``running`` job whose lease is free (a worker died and
    the broker holds its message for the visibility timeout, or a copy was dropped), the oldest queued
    job of a key with nothing running that has waited :data:`STALE` lease TTLs (its message was lost:
    the broker was down when it was sent), and a job whose wait for a usage quota's reset is over. A
    kick that was not needed finds the job held or ended and does nothing. Each kick goes to the
    job's own queue (``kick`` gets the job): a janitor of another queue (another credential's workers)
    must not take it. Last, the runs whose runner is gone are marked crashed
    (:func:`baton.fleet.orphans.settle_runs`)."""
    now, sent = time.time(), []
    running = store.list_jobs(status=JobStatus.RUNNING, limit=ALL)
    for job in running:
        if _unheld(store, settings, job.id):
            kick(job, 0.0)
            sent.append(job.id)
    busy = {(j.agent, j.repo, j.thread) for j in running}
    stale = STALE * settings.lease_ttl
    for job in store.list_jobs(status=JobStatus.QUEUED, limit=ALL, oldest_first=True):
        key = (job.agent, job.repo, job.thread)
        if key in busy:
            continue
        busy.add(key)  # only the first queued job of a key (in the store's order) may start
        if job.not_before is not None and job.not_before > now:
            continue  # it waits for a usage quota's reset
        due = job.not_before is not None and kicked.get(job.id, 0.0) < job.not_before  # reset passed: once
        since = max(job.submitted_at, job.not_before or 0.0)
        if due or (since < now - stale and kicked.get(job.id, 0.0) < now - stale):
            kicked[job.id] = now
            kick(job, 0.0)
            sent.append(job.id)
    for job_id in [j for j, at in kicked.items() if at < now - 10 * stale]:
        del kicked[job_id]
    orphans.settle_runs(settings, store)
    return sent


def _unheld(store: LeaseBackend, settings: Settings, job_id: str) -> bool:
    """Whether nobody (alive) holds the job's lease: taken and given back at once to find out."""
    lease = job_lease(store, settings, job_id)
    try:
        lease.acquire(0.0)
    except Busy:
        return False
    lease.release()
    return True
