"""What the fleet keeps in the SQL store: submitted runs (jobs) and their event streams, and the
counts of ``/metrics``. The service's own API tokens are in :mod:`baton.service.tables`, the forge's
webhook deliveries in :mod:`baton.forge.data.tables`.

Jobs are the service's queue: a job is stored ``queued`` before the API answers 202, so a restart
loses nothing, and an executor (in-process now, Celery later) starts the oldest queued job of a key only
when no job of that key is running (runs of one key start in submission order: the key's oldest queued
job blocks every later one in any snapshot, and the move to running is conditional on the job still
being queued, so of two executors starting one job only one wins).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import JobRecord, JobStatus
from baton.store.schema import job_events, jobs
from baton.store.schema import leases as _leases
from baton.store.schema import runs as _runs
from baton.store.schema import sessions as _sessions
from baton.store.tables import id_like, lock_key, upsert


class ServiceTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx`` and ``_read``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    # -- jobs ---------------------------------------------------------------------------------------

    def add_job(self, job: JobRecord) -> None:
        """Store ``job`` with the next ``seq`` of its key (set on ``job`` too): the number is taken
        inside the inserting transaction, under the key's lock (SQLite's ``BEGIN IMMEDIATE``,
        PostgreSQL's advisory lock), so the order of ``seq`` is the order of the commits. A clock
        read before the insert is not: two concurrent submits could commit in the other order."""
        with self._tx() as conn:
            lock_key(conn, JOB_LOCKS, job.agent, job.repo, job.thread)
            last = conn.execute(sa.select(sa.func.max(jobs.c.seq)).where(_same_key(job))).scalar()
            job.seq = int(last or 0) + 1
            conn.execute(sa.insert(jobs).values(_job_values(job)))

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job(row._mapping) if row else None

    def find_job_ids(self, fragment: str, limit: int = 20) -> list[str]:
        query = sa.select(jobs.c.id).where(id_like(jobs.c.id, fragment))
        query = query.order_by(jobs.c.submitted_at.desc()).limit(limit)
        with self._tx() as conn:
            return [row.id for row in conn.execute(query)]

    def update_job(self, job_id: str, **fields: Any) -> None:
        values = {k: _job_value(k, v) for k, v in fields.items()}
        with self._tx() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(values))

    def list_jobs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        oldest_first: bool = False,
        offset: int = 0,
    ) -> list[JobRecord]:
        """``oldest_first``: keys by their oldest listed job, each key's jobs in :data:`KEY_ORDER` (the
        order they may start in); else newest first by the time they were submitted. ``limit`` and
        ``offset`` page through them."""
        order: tuple[sa.ColumnElement[Any], ...]
        if oldest_first:
            key_age = sa.func.min(jobs.c.submitted_at).over(
                partition_by=(jobs.c.agent, jobs.c.repo, jobs.c.thread)
            )
            order = (key_age, jobs.c.agent, jobs.c.repo, jobs.c.thread, *KEY_ORDER)
        else:
            order = (jobs.c.submitted_at.desc(), jobs.c.id)
        query = sa.select(jobs).order_by(*order).limit(limit).offset(offset)
        for column, value in (("agent", agent), ("repo", repo), ("thread", thread), ("status", status)):
            if value is not None:
                query = query.where(jobs.c[column] == str(value))
        with self._read() as conn:
            return [_job(r._mapping) for r in conn.execute(query)]

    def add_job_event(self, job_id: str, seq: int, line: str) -> None:
        with self._tx() as conn:
            upsert(
                conn,
                job_events,
                {"job_id": job_id, "seq": seq, "data": line},
                ["job_id", "seq"],
                update=False,
            )

    def job_events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[str]:
        query = (
            sa.select(job_events.c.data)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after)
            .order_by(job_events.c.seq)
            .limit(limit)
        )
        with self._tx() as conn:
            return [line for (line,) in conn.execute(query)]

    def last_job_event(self, job_id: str) -> int:
        query = sa.select(sa.func.max(job_events.c.seq)).where(job_events.c.job_id == job_id)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one() or 0)

    def prune_job_leases(self) -> int:
        """Delete the released ``job:<id>`` lease rows of jobs that ended (one is left per job by
        whoever ran it), and the released claims ``publish:<id>`` of the forge turns they were; a job
        still queued or running keeps its rows. Returns how many went."""
        ended = jobs.c.status == JobStatus.DONE.value
        done = [sa.select(sa.literal(prefix) + jobs.c.id).where(ended) for prefix in ("job:", "publish:")]
        with self._tx() as conn:
            gone = conn.execute(
                sa.delete(_leases).where(_leases.c.holder == "", _leases.c.key.in_(sa.union_all(*done)))
            )
            return int(gone.rowcount or 0)

    def request_cancel(self, job_id: str, at: float) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status != JobStatus.DONE.value)
                .values(cancel_requested_at=at)
            )
            return bool(result.rowcount)

    def start_job(self, job_id: str, started_at: float) -> bool:
        """Move a queued job to running, unless another job of its key runs or it waits for a usage
        quota's reset (``not_before``): True if it may start. Atomic, so two executors never start two
        jobs of one key."""
        with self._tx() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None or row._mapping["status"] != JobStatus.QUEUED:
                return False
            job = _job(row._mapping)
            if job.not_before is not None and job.not_before > started_at:
                return False  # it waits for a usage quota's reset
            busy = conn.execute(
                sa.select(jobs.c.id).where(
                    _same_key(job),
                    sa.or_(
                        jobs.c.status == JobStatus.RUNNING,
                        sa.and_(jobs.c.status == JobStatus.QUEUED, _before(job)),
                    ),
                )
            ).first()
            if busy is not None:
                return False
            started = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED)
                .values(status=JobStatus.RUNNING.value, started_at=started_at)
            )
            return bool(started.rowcount)

    # -- metrics ------------------------------------------------------------------------------------

    def metrics_counts(self, buckets: Sequence[float]) -> dict[str, list[tuple[Any, ...]]]:
        """Counted by the database, so every process (and a restarted one) reports the same numbers,
        and a scrape costs three GROUP BY queries (one scan of the runs, one of the sessions; the
        forge's deliveries are counted by its own role, :mod:`baton.forge.data.tables`)."""
        with self._tx() as conn:
            return {
                name: [tuple(r) for r in conn.execute(query)] for name, query in _metrics_queries(buckets)
            }


def _metrics_queries(buckets: Sequence[float]) -> list[tuple[str, Any]]:
    # one scan of runs gives the counters and the histogram (the runs table is the one that grows)
    ended = _runs.c.outcome != "running"
    hydrated = sa.case((_runs.c.note.like("%hydrated%"), 1), else_=0).label("hydrated")
    duration = _runs.c.ended_at - _runs.c.started_at
    below = [sa.func.sum(sa.case((duration <= b, 1), else_=0)) for b in buckets]
    count = sa.func.count()
    timed = sa.func.count(_runs.c.ended_at)  # runs with an end time (a duration)
    return [
        (
            "runs",
            sa.select(
                _runs.c.agent,
                _runs.c.mode,
                _runs.c.outcome,
                hydrated,
                count,
                timed,
                sa.func.sum(duration),
                *below,
            )
            .where(ended)
            .group_by(_runs.c.agent, _runs.c.mode, _runs.c.outcome, hydrated),
        ),
        (
            "sessions",
            sa.select(_sessions.c.agent, _sessions.c.status, count).group_by(
                _sessions.c.agent, _sessions.c.status
            ),
        ),
        ("jobs", sa.select(jobs.c.status, count).group_by(jobs.c.status)),
        (  # threads whose agent asked a person: how many, and since when the oldest waits
            "waiting",
            sa.select(_sessions.c.agent, count, sa.func.min(_sessions.c.last_used_at))
            .where(_sessions.c.last_outcome == "needs_input")
            .group_by(_sessions.c.agent),
        ),
    ]


JOB_LOCKS = 727276  # the advisory lock space of add_job's seq (tables.SNAPSHOT_LOCKS is 727275)

# The order of a key's jobs: ``seq``, numbered at commit (add_job); rows from before migration 11 have
# none and come first, by the time they were submitted. Across keys it is no meaningful order.
KEY_ORDER = (sa.case((jobs.c.seq.is_(None), 0), else_=1), jobs.c.seq, jobs.c.submitted_at, jobs.c.id)


def _same_key(job: JobRecord) -> sa.ColumnElement[bool]:
    return sa.and_(jobs.c.agent == job.agent, jobs.c.repo == job.repo, jobs.c.thread == job.thread)


def _before(job: JobRecord) -> sa.ColumnElement[bool]:
    """The jobs of ``job``'s key that come before it in :data:`KEY_ORDER`."""
    if job.seq is None:
        return sa.and_(jobs.c.seq.is_(None), jobs.c.submitted_at < job.submitted_at)
    return sa.or_(jobs.c.seq.is_(None), jobs.c.seq < job.seq)


def _job_value(name: str, value: Any) -> Any:
    if name in ("request", "result"):
        return None if value is None else json.dumps(value, default=str)
    if isinstance(value, JobStatus):
        return value.value
    return value


def _job_values(job: JobRecord) -> dict[str, Any]:
    return {k: _job_value(k, v) for k, v in job.__dict__.items()}


def _job(row: Any) -> JobRecord:
    data = dict(row)
    data["status"] = JobStatus(data["status"])
    data["request"] = json.loads(data["request"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return JobRecord(**data)
