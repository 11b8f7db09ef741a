"""Run ids: one id per run, accepted everywhere, and its short form. A run is what a caller starts (a job's
id, or ``baton run``'s first attempt's); its attempts (retries, a recovery, a takeover) are records of
their own carrying the run's id (``RunRecord.run_id``), and every surface takes a run's id or any of its
attempts' (:func:`resolve`). An id is 12 hex digits of milliseconds then 8 random ones, so a prefix is a
poor short form: the short form is the random tail (:data:`SHORT` characters), widened when another id
shares it (:func:`short_ids`). A command accepts the full id, any prefix or any tail; a fragment that
matches several runs is an error that lists them, never a silent pick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baton.errors import BadInput, NotFound
from baton.models import JobStatus, Outcome, iso
from baton.runner.request import RunResult, attempt_json

if TYPE_CHECKING:
    from baton.models import JobRecord, RunRecord
    from baton.store.base import RunLookup, RunStore


SHORT = 8
SHOWN = 10  # candidates an "ambiguous" message lists


class Ambiguous(BadInput):
    """A short id that matches several runs (exit 2, like any bad input)."""


@dataclass
class RunRef:
    """A run as found by :func:`resolve`: its id, its job (when it was submitted), its attempts so far
    (oldest first), and the attempt the caller named, when the id given was an attempt's own."""

    id: str
    job: JobRecord | None
    attempts: list[RunRecord]
    named: RunRecord | None = None

    @property
    def attempt(self) -> RunRecord | None:
        """The attempt to show: the one named, else the latest."""
        return self.named or (self.attempts[-1] if self.attempts else None)

    @property
    def running(self) -> bool:
        if self.job is not None:
            return self.job.status != JobStatus.DONE
        return any(a.outcome == Outcome.RUNNING for a in self.attempts)

    def to_json(self, store: RunStore) -> dict[str, Any]:
        """The run as ``GET /v1/runs/ID`` answers: a job's record (with ``baton run --json``'s fields
        once it ran), or for a ``baton run`` the same fields from its attempts; ``attempts`` always
        from the store, so a running run lists the attempts made so far."""
        data = self.job.to_json() if self.job else self._plain(store)
        data["attempts"] = [attempt_json(a) for a in self.attempts]
        return data

    def _plain(self, store: RunStore) -> dict[str, Any]:
        first, last = self.attempts[0], self.attempts[-1]
        data: dict[str, Any] = {
            "run_id": self.id,
            "status": (JobStatus.RUNNING if self.running else JobStatus.DONE).value,
            "agent": last.agent,
            "repo": last.repo,
            "thread": last.thread,
            "actor": "",
            "submitted_at": iso(first.started_at),
            "started_at": iso(first.started_at),
            "ended_at": None if self.running else iso(last.ended_at),
            "outcome": None if self.running else last.outcome.value,
            "error": last.error,
        }
        session = store.get_session(last.agent, last.repo, last.thread)
        if session is not None:
            data.update(RunResult(run=last, attempts=self.attempts, session=session).to_json())
        return data


def resolve(store: RunLookup, fragment: str) -> RunRef:
    """The one run ``fragment`` names: a run's id or an attempt's, whole, a prefix or a tail."""
    fragment = fragment.strip()
    if not fragment:
        raise NotFound("no run '' (give a run id, a prefix of it or its last 8 characters)")
    job = store.get_job(fragment)
    if job is not None:
        return _ref(store, job.id, job)
    record = store.get_run(fragment)
    if record is not None:
        return _ref(store, record.run_id, named=record)
    found: dict[str, RunRecord | None] = dict.fromkeys(store.find_job_ids(fragment, limit=SHOWN + 1))
    for attempt_id in store.find_run_ids(fragment, limit=SHOWN + 1):
        attempt = store.get_run(attempt_id)
        if attempt is not None:
            found.setdefault(attempt.run_id, attempt)
    if not found:
        raise NotFound(f"no run {fragment!r} (give a run id, a prefix of it or its last {SHORT} characters)")
    if len(found) > 1:
        count = f"more than {SHOWN}" if len(found) > SHOWN else str(len(found))
        raise Ambiguous(f"ambiguous: {count} runs match {fragment!r}: {', '.join(list(found)[:SHOWN])}")
    ((run_id, attempt),) = found.items()
    return _ref(store, run_id, named=attempt)


def _ref(
    store: RunLookup, run_id: str, job: JobRecord | None = None, named: RunRecord | None = None
) -> RunRef:
    attempts = store.run_attempts(run_id)
    job = job or store.get_job(run_id)
    if not attempts and job is None:  # deleted between the reads
        raise NotFound(f"no run {run_id!r}")
    # an attempt whose id is the run's (a `baton run`'s first) names the whole run
    return RunRef(run_id, job, attempts, named if named is not None and named.id != run_id else None)


def resolve_run(store: RunLookup, fragment: str) -> RunRecord:
    """The attempt ``fragment`` names, or the latest of the run it names (NotFound for a queued job,
    which has none yet)."""
    ref = resolve(store, fragment)
    if ref.attempt is None:
        raise NotFound(f"run {ref.id} has not started yet (queued)")
    return ref.attempt


FEW = 3  # ids whose short forms are looked up one by one (indexed prefix, scanned tail: one query each)


def short_ids(store: RunLookup, ids: Iterable[str]) -> dict[str, str]:
    """Each run id's short form: its tail, unless another run or attempt ends (or starts) the same
    way. More than a few ids (a table) are checked in one pass over the stored ids
    (``ids_sharing``), not one scan each."""
    ids = list(ids)
    if len(ids) > FEW:
        shared = store.ids_sharing({run_id[-SHORT:] for run_id in ids})  # by two ids or more
        return {i: i if i[-SHORT:] in shared else i[-SHORT:] for i in ids}
    shown: dict[str, str] = {}
    for run_id in ids:
        tail = run_id[-SHORT:]
        others = {*store.find_run_ids(tail, limit=3), *store.find_job_ids(tail, limit=3)}
        shown[run_id] = tail if others <= {run_id} else run_id
    return shown


def short_id(store: RunLookup, run_id: str) -> str:
    return short_ids(store, [run_id])[run_id]
