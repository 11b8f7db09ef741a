"""What a dead process left running, found and handed on: submitted runs (jobs) and their attempts. A job
is at-least-once until it ends: a ``running`` job whose job lease is free lost its process (kill -9, a
machine gone, a replica scaled away), and :func:`decide` says, for both executors alike, whether its end
is recorded (its turn had ended), it runs again (resumed, counted in ``reruns``, at most :func:`bound`
times) or it ends ``crashed`` (:data:`GAVE_UP`; a forge thread then waits for a person). Each executor
applies that its own way (the in-process pool queues the job again, a queue's worker runs it under the
message it holds). :func:`settle_runs` marks ``crashed`` the runs whose runner is gone, so ``baton runs
ls`` and the dashboard never show work that is not happening for longer than a sweep's period.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from baton.errors import Busy
from baton.fleet import unshared
from baton.keys import Key, Repo
from baton.models import JobRecord, Outcome, RunRecord
from baton.runner.crashed import mark_crashed
from baton.runner.request import AttemptJson, RunResult, attempt_json
from baton.settings import Settings
from baton.store.base import Store
from baton.store.leases import HOST, key_lease, pid_alive

log = logging.getLogger("baton.fleet")
ALL = 10**9
# a takeover runs these again (a lost or too-long conversation's run was to go on with a recover)
UNFINISHED = (Outcome.RUNNING, Outcome.CRASHED, Outcome.SESSION_LOST, Outcome.CONTEXT_FULL)
GAVE_UP = "its process died mid-turn"  # the start of the error of a job not run again (forge: parked)


class Then(StrEnum):
    """What becomes of a job whose process died."""

    RECORD = "record"  # its last attempt had ended: its end is recorded as that attempt's
    RERUN = "rerun"  # run again for its key, resumed
    CRASH = "crash"  # run again too often: ended crashed


@dataclass
class Decision:
    then: Then
    outcome: str = ""  # RECORD, CRASH: the job's outcome
    fields: dict[str, Any] = field(default_factory=dict)  # RECORD, CRASH: its ``result`` and ``error``


def bound(settings: Settings, job: JobRecord) -> int:
    """How many times ``job`` runs again after its process died: the setting ``job_reruns``, or the
    job's own ``retries`` (its caller's retry policy) when that is higher."""
    retries = job.request.get("retries")
    return max(settings.job_reruns, retries if isinstance(retries, int) else 0)


def decide(settings: Settings, store: Store, job: JobRecord) -> Decision:
    """What becomes of ``job``, ``running`` with its job lease free (held by the caller now):

    - its last attempt had ended and the runner had finished it (:func:`_finished`): only the job's end
      went unrecorded (the process died publishing it, or recording it): :data:`Then.RECORD`, with that
      attempt's outcome and result. A turn whose agent succeeded is never recorded ``crashed``, and a
      forge turn is then published from the checkpoint its run shared (``baton.forge.background.adopt``). So
      too when its runner died before sharing the turn's state and this home has it (shared now:
      :func:`baton.fleet.unshared.share_here`), or when the job may not run again; else that attempt
      is marked ``crashed`` and the turn runs again (:func:`baton.fleet.unshared.disown`);
    - else (it died mid-turn, before its run started, or before the run's state was shared), while its
      ``reruns`` are below :func:`bound`: :data:`Then.RERUN`, the same request, first of its key; the
      runner marks the dead attempt ``crashed`` and resumes the conversation with the interruption note;
    - then :data:`Then.CRASH`: a turn that kills its machine each time is not run for ever; one whose
      cancel was asked for ends ``cancelled`` instead of running again."""
    records = store.run_attempts(job.id)
    last = records[-1] if records else None
    ended = last is not None and last.outcome not in UNFINISHED
    may_rerun = job.cancel_requested_at is None and job.reruns < bound(settings, job)
    if last is not None and ended:
        if _finished(store, last) or not may_rerun or unshared.share_here(settings, store, last):
            fields = {"result": result_of(store, job.id, records), "error": last.error}
            return Decision(Then.RECORD, last.outcome.value, fields)
        unshared.disown(store, last)  # its state is on another machine: the turn runs again
        return Decision(Then.RERUN)
    if job.cancel_requested_at is not None:  # its caller wants it stopped: it is, for good
        return Decision(Then.CRASH, Outcome.CANCELLED.value, {"error": f"cancelled; {GAVE_UP}"})
    if may_rerun:
        return Decision(Then.RERUN)
    times = "once" if job.reruns == 0 else f"{job.reruns + 1} times"
    why = (
        f"{GAVE_UP} {times} (its machine stopped or was killed); not run again (setting job_reruns: "
        f"{settings.job_reruns}). The conversation is kept: the key's next run resumes it"
    )
    return Decision(Then.CRASH, Outcome.CRASHED.value, {"error": why})


def _finished(store: Store, record: RunRecord) -> bool:
    """Whether the runner finished ``record`` after writing its outcome: its session's record is the
    last thing it writes (after the snapshot and the checkpoint), with ``last_used_at`` the run's end.
    A runner killed in between shared neither: its turn runs again from the state it started with."""
    session = store.get_session(record.agent, record.repo, record.thread)
    ended = record.ended_at or 0.0
    return session is not None and session.last_used_at >= ended - 1e-3


def result_of(store: Store, job_id: str, records: list[RunRecord]) -> dict[str, Any]:
    """``baton run --json``'s object for attempts a dead process made (their session as it is now)."""
    last = records[-1]
    session = store.get_session(last.agent, last.repo, last.thread)
    if session is None:
        return {
            "run_id": job_id,
            "attempt_id": last.id,
            "outcome": last.outcome.value,
            "attempts": [attempt_json(r) for r in records],
        }
    return RunResult(run=last, attempts=records, session=session).to_json()


def attempt_of(store: Store, run_id: str) -> AttemptJson:
    """An attempt as a job's result lists it (one that vanished: crashed)."""
    record = store.get_run(run_id)
    if record is None:
        return {"attempt_id": run_id, "attempt": 0, "mode": "", "outcome": Outcome.CRASHED.value}
    return attempt_json(record)


def settle_runs(settings: Settings, store: Store) -> list[RunRecord]:
    """Mark ``crashed`` the runs whose runner is gone; those marked. A ``running`` run whose runner's
    pid is gone on this host, or whose heartbeat is older than the lease TTL on another, is marked under
    its key's lease (taken at once or not at all: a key held by a live run is that run's to settle), by
    the runner's own :func:`baton.runner.crashed.mark_crashed`. Both executors' sweeps call it."""
    stale = time.time() - settings.lease_ttl
    dead: dict[tuple[str, str, str], None] = {}
    for record in store.list_runs(limit=ALL, outcome=Outcome.RUNNING):
        if record.host == HOST:
            gone = not pid_alive(record.runner_pid)
        else:
            gone = (record.heartbeat_at or record.started_at) < stale
        if gone:
            dead[(record.agent, record.repo, record.thread)] = None
    marked: list[RunRecord] = []
    for agent, repo, thread in dead:
        key = Key(agent, Repo(repo, repo, False), thread)
        lease = key_lease(settings, store, key.id)
        try:
            lease.acquire(0.0)
        except Busy:
            continue  # a live run holds the key: it settles the dead ones first thing
        try:
            marked += mark_crashed(store, key, lease.proof)
        finally:
            lease.release()
    for record in marked:
        log.warning(
            "run %s of %s had lost its runner (on %s): marked crashed", record.id, record.thread, record.host
        )
    return marked
