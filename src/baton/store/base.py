"""The store's Protocols: what the runner and the surfaces need from persistence, one role at a time.
``Store`` is the whole of it (the SQL backend, SQLite or PostgreSQL through the same code, implements
all of it; :func:`baton.store.open_store` picks it by URL scheme). A consumer names the role it uses
(:class:`RunStore`, :class:`SnapshotStore`, :class:`LeaseBackend`, :class:`JobStore`, ...; all a key's
work needs: :class:`KeyStore`), so what it depends on is what it calls; the roles follow the SQL
store's parts. Keep them small: the runner's needs, not a general ORM. The roles here are the ones
rooms share; a room that owns its data keeps its role in its own ``tables.py``, run in the store's
transactions (:class:`Transactions`; docs/architecture.md, "Where a room's data lives").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from baton.models import (
    CheckpointRecord,
    Fence,
    InstructionsRecord,
    JobRecord,
    JobStatus,
    Outcome,
    QuotaRecord,
    RunRecord,
    SessionRecord,
    SessionStatus,
    Snapshot,
    WorkerRecord,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Connection


@dataclass
class Lease:
    """Who holds a key right now, until when: a lease backend's record (the store's own, Redis's); nothing
    outside the store reads one."""

    key: str
    holder: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float
    fence: int = 0  # the grant's fencing token: every grant of a key gets a larger one
    # its row was held by another transaction when read (a grant, a renewal, or a holder frozen
    # mid-renewal, whose transaction the store ends): as last committed, not judged this try
    locked: bool = False


class RunStore(Protocol):
    """Sessions (one record per key) and their runs (one per attempt) (``sql.py``)."""

    def get_session(self, agent: str, repo: str, thread: str) -> SessionRecord | None: ...
    def save_session(self, session: SessionRecord, *, fence: Fence | None = None) -> None: ...
    def list_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        """Most recently used first; ``limit``/``offset`` page through them."""
        ...

    def delete_session(self, agent: str, repo: str, thread: str) -> None: ...
    def add_run(
        self, run: RunRecord, *, fence: Fence | None = None, session: SessionRecord | None = None
    ) -> None:
        """Write ``run``; with ``session``, the key's session record too, in the same transaction."""
        ...

    def update_run(self, run_id: str, *, fence: Fence | None = None, **fields: Any) -> None: ...
    def get_run(self, run_id: str) -> RunRecord | None: ...
    def list_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        limit: int = 50,
        outcome: Outcome | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    def delete_runs(self, agent: str, repo: str, thread: str) -> list[RunRecord]: ...
    def run_attempts(self, run_id: str) -> list[RunRecord]:
        """The attempts of one run (see ``RunRecord.run_id``), oldest first."""
        ...

    def find_run_ids(self, fragment: str, limit: int = 20) -> list[str]:
        """Ids that are, start with or end with ``fragment``, newest first (for short ids)."""
        ...


class InstructionStore(Protocol):
    """What each key's conversation knows of its agent's instruction files (``sql_instructions.py``;
    :mod:`baton.runner.instructions`). Deleted with the key's session."""

    def save_instructions(self, record: InstructionsRecord, *, fence: Fence | None = None) -> None: ...
    def get_instructions(self, agent: str, repo: str, thread: str) -> InstructionsRecord | None: ...
    def delete_instructions(self, agent: str, repo: str, thread: str) -> None: ...


class BlobStore(Protocol):
    """Content-addressed blobs: transcript chunks and checkpoint bundles, shared by digest (``sql.py``)."""

    def put_blob(self, digest: str, data: bytes, size: int) -> None: ...
    def get_blob(self, digest: str) -> bytes | None: ...


class SnapshotStore(BlobStore, Protocol):
    """Each key's latest transcript snapshot, its chunks in the blobs."""

    def save_snapshot(self, snapshot: Snapshot, *, fence: Fence | None = None) -> None:
        """Store the key's latest snapshot, replacing the previous one and dropping unused blobs."""
        ...

    def get_snapshot(self, agent: str, repo: str, thread: str) -> Snapshot | None: ...
    def delete_snapshot(self, agent: str, repo: str, thread: str) -> None: ...
    def snapshot_sizes(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        """``((agent, repo, thread), stored bytes of its blobs)`` of every snapshot, read in batches
        (``baton du``: two queries a batch, not one a session; see store/sql_listing.py)."""
        ...


class CheckpointStore(BlobStore, Protocol):
    """Each key's latest worktree checkpoint, its git bundle in the blobs (read with ``get_blob``;
    ``sql_checkpoints.py``)."""

    def save_checkpoint(self, record: CheckpointRecord, data: bytes, fence: Fence | None = None) -> None: ...
    def get_checkpoint(self, agent: str, repo: str, thread: str) -> CheckpointRecord | None: ...
    def delete_checkpoint(self, agent: str, repo: str, thread: str) -> None: ...


class LeaseBackend(Protocol):
    """Where leases are granted: the SQL store, or Redis (:mod:`baton.store.redis_leases`). Expiry is
    judged by the backend's clock."""

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        """Grant ``lease``, or replace the existing one when ``can_take(existing, now)`` is true (a
        released lease is free). Times come from the backend's clock: on success ``lease`` is updated
        in place (acquired now, expiring after ``ttl`` seconds) and its ``fence`` is larger than any
        earlier grant's of the key, which the store has recorded (the same holder taking it again keeps
        its token).

        Returns ``None`` on success, else the lease that blocks. Atomic across processes.
        """
        ...

    def renew_lease(self, key: str, holder: str, ttl: float) -> bool:
        """Expire ``ttl`` seconds from now (the backend's clock); False when ``holder`` lost the key."""
        ...

    def release_lease(self, key: str, holder: str) -> None:
        """Free the key if ``holder`` holds it; the next grant's token is still larger."""
        ...


class LeaseStore(LeaseBackend, Protocol):
    """The store's side of leases: its own grants, and the fencing tokens of grants made elsewhere
    (``sql.py``).

    Fencing: the writes a run makes about its key (``save_session``, ``add_run``, ``update_run``,
    ``save_snapshot``, ``save_plan``, ``save_checkpoint``) take ``fence=`` (a :class:`Fence`, the
    lease's key and the grant's token). In the write's transaction the store compares it with the key's
    token: larger in the store → :class:`baton.errors.Fenced` and nothing written; smaller (a Redis grant
    not recorded yet) → the store's is advanced to it. Without a fence the write is not checked."""

    def identity(self) -> str:
        """The store's own id (:meth:`Store.identity`): the namespace of its leases granted elsewhere."""
        ...

    def advance_fence(self, key: str, token: int) -> None:
        """Record that a grant with ``token`` holds ``key`` (a lease granted outside the store, by
        Redis); raise :class:`baton.errors.Fenced` when the store has seen a larger token."""
        ...


class AuditStore(Protocol):
    """The audit log: resets, closes, evictions, sweeps, tokens — what was done to what, by whom
    (``sql.py``)."""

    def audit(self, action: str, key: str, actor: str, detail: dict[str, Any]) -> None: ...
    def list_audit(self, limit: int = 100) -> list[dict[str, Any]]: ...


class QuotaStore(Protocol):
    """The usage-quota breakers, one per credential (:mod:`baton.store.sql_quota`)."""

    def quota(self, credential: str) -> QuotaRecord | None: ...

    def save_quota(self, record: QuotaRecord) -> None: ...

    def clear_quota(self, credential: str, started: float) -> bool:
        """Close the breaker after a run started at ``started`` went through (unless met again since)."""
        ...

    def list_quotas(self) -> list[QuotaRecord]: ...


class ListingStore(Protocol):
    """Whole tables walked without holding them (``baton sessions ls``, ``baton runs ls``): counted,
    and read a keyset page at a time in their listing order (see store/sql_listing.py)."""

    def count_sessions(
        self, agent: str | None = None, repo: str | None = None, status: SessionStatus | None = None
    ) -> int: ...
    def iter_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        batch: int = 500,
    ) -> Iterator[SessionRecord]:
        """Most recently used first, then by thread, agent, repo (``list_sessions``' order)."""
        ...

    def count_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        outcome: Outcome | None = None,
    ) -> int: ...
    def iter_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        outcome: Outcome | None = None,
        batch: int = 500,
    ) -> Iterator[RunRecord]:
        """Newest first, then by id (``list_runs``' order)."""
        ...

    def ids_sharing(self, fragments: Collection[str]) -> dict[str, set[str]]:
        """The fragments two or more attempt or job ids start or end with (what ``find_run_ids`` and
        ``find_job_ids`` match), and those ids, in one pass over the ids: the short ids of a table of
        runs."""
        ...


class KeyStore(
    RunStore, SnapshotStore, CheckpointStore, LeaseStore, AuditStore, QuotaStore, InstructionStore, Protocol
):
    """Everything the store keeps about keys: what a run, a reset, a close or a sweep of a key needs
    (the roles above it, together)."""


class JobStore(Protocol):
    """Submitted runs (jobs), their event streams and cancel requests (see store/sql_service.py)."""

    def add_job(self, job: JobRecord) -> None: ...
    def get_job(self, job_id: str) -> JobRecord | None: ...
    def find_job_ids(self, fragment: str, limit: int = 20) -> list[str]:
        """Ids of the jobs whose id is, starts with or ends with ``fragment``, newest first."""
        ...

    def update_job(self, job_id: str, **fields: Any) -> None: ...
    def list_jobs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        oldest_first: bool = False,
        offset: int = 0,
    ) -> list[JobRecord]: ...
    def start_job(self, job_id: str, started_at: float) -> bool:
        """Queued → running unless an earlier job of its key is queued or running (atomic)."""
        ...

    def add_job_event(self, job_id: str, seq: int, line: str) -> None:
        """One line of a job's event stream (written by the worker that runs it; a line already
        stored is kept)."""
        ...

    def job_events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[str]:
        """The stream's lines with a sequence number above ``after``, in order."""
        ...

    def last_job_event(self, job_id: str) -> int: ...
    def prune_job_leases(self) -> int:
        """Delete the released lease rows of ended jobs; how many went."""
        ...

    def request_cancel(self, job_id: str, at: float) -> bool:
        """Mark a job for cancelling (whichever worker runs it stops it); False if it already ended."""
        ...


class RunLookup(RunStore, JobStore, ListingStore, Protocol):
    """What finding a run by its id reads: a job's or an attempt's (``baton.runner.runids``)."""


class WorkerStore(Protocol):
    """The fleet's workers: heartbeats and disk reports (see store/sql_workers.py)."""

    def worker_seen(self, worker: WorkerRecord) -> None: ...
    def report_worker_disk(
        self, name: str, disk: dict[str, Any], free_bytes: int, total_bytes: int, at: float
    ) -> bool: ...
    def list_workers(self, seen_since: float | None = None) -> list[WorkerRecord]: ...
    def delete_worker(self, name: str) -> bool: ...


class ViewStore(Protocol):
    """Counted and paged reads for the dashboard and ``/metrics`` (see store/sql_views.py)."""

    def page_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        sort: str = "last_used",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[SessionRecord], int]:
        """A page in ``sort`` order (``last_used`` or ``attempts``) and the number matching."""
        ...

    def session_facets(self) -> tuple[list[str], list[str]]: ...
    def session_keys(
        self, agent: str | None = None, repo: str | None = None, status: SessionStatus | None = None
    ) -> list[tuple[str, str, str]]:
        """Every matching key (agent, repo, thread), unordered: the dashboard sorts them by size."""
        ...

    def overview_counts(self, since: float) -> dict[str, Any]:
        """``sessions`` {status: n}, ``runs`` since ``since`` as (mode, outcome, hydrated, n),
        ``running`` runs and ``queued`` jobs."""
        ...

    def metrics_counts(self, buckets: Sequence[float]) -> dict[str, list[tuple[Any, ...]]]:
        """What ``/metrics`` shows, counted by the database (GROUP BY) in one transaction:
        ``runs`` of ended runs: (agent, mode, outcome, hydrated, n, n with an end time, sum of
        durations, then n with duration <= each bucket); ``sessions`` (agent, status, n); ``jobs``
        (status, n); ``waiting`` (agent, n, the oldest's last use): threads waiting for an answer.
        (The forge's deliveries are counted by its own role, ``delivery_counts``.)"""
        ...


class Transactions(Protocol):
    """The store's transactions, for the rooms that keep their own tables in it (their ``tables.py``)."""

    def transaction(self) -> AbstractContextManager[Connection]:
        """One transaction on the store's engine: committed when the block ends, rolled back when it
        raises; database errors come out as :class:`baton.errors.StoreError`."""
        ...

    def reading(self) -> AbstractContextManager[Connection]:
        """A transaction that only reads: on SQLite it waits for no writer and holds none up."""
        ...


class Store(
    Transactions,
    KeyStore,
    ListingStore,
    JobStore,
    ViewStore,
    WorkerStore,
    Protocol,
):
    """The whole store: every role, and its own life (schema, connection)."""

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        ...

    def schema_version(self) -> int: ...

    def identity(self) -> str:
        """A stable, non-secret id of the store itself (not of the URL naming it): the fleet's queue
        and the tag on each message (:mod:`baton.fleet.routing`)."""
        ...

    def close(self) -> None: ...
