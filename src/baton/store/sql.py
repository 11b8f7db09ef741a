"""The SQL store: SQLAlchemy 2 Core over SQLite (WAL, the embedded default) or PostgreSQL (psycopg 3).

Queries are built from the typed tables of :mod:`baton.store.schema`; the DDL lives in
:mod:`baton.store.migrations`. Writes of one row are real upserts (``ON CONFLICT``), never
update-then-insert, so two machines saving one key never race into a duplicate key. Leases rely on the
database for atomicity (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row lock), their expiry judged by
its clock; a lease's try never queues for its row (:meth:`SQLStore.try_lease`). The writes a run makes
about its key accept a :class:`~baton.models.Fence`, checked in the write's transaction
(:func:`baton.store.tables.check_fence`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from baton.errors import StoreBusy, StoreError
from baton.models import Fence, Outcome, RunRecord, SessionRecord, SessionStatus, Snapshot
from baton.store.base import Lease
from baton.store.engine import LOCK_WAIT, READ_ONLY, engine_for, migrate, redact, store_error, writers_for
from baton.store.limits import StoreLimits
from baton.store.rows import session_values, snapshot_digests, snapshot_of
from baton.store.schema import instructions
from baton.store.sql_checkpoints import CheckpointTables
from baton.store.sql_instructions import InstructionTables
from baton.store.sql_listing import ListingQueries
from baton.store.sql_quota import QuotaTables
from baton.store.sql_sdk import SdkEntryTables
from baton.store.sql_service import ServiceTables
from baton.store.sql_views import ViewQueries
from baton.store.sql_workers import WorkerTables
from baton.store.tables import (
    KEY,
    SNAPSHOT_LOCKS,
    audit_log,
    blobs,
    check_fence,
    db_value,
    id_like,
    key_where,
    leases,
    lock_key,
    locked_lease_row,
    run_of,
    run_values,
    runs,
    session_of,
    sessions,
    snapshots,
    upsert,
)

LEASE_TRY_WAIT = 1.0  # seconds a lease's try (a grant's record) waits for a lock: SQLite's, every key's


def _set_local(conn: Connection, lock_wait: float | None, bulk: bool) -> None:
    """PostgreSQL: this transaction's own lock wait (None: the store's), no statement limit for a bulk
    write."""
    if lock_wait is not None:
        conn.execute(sa.text(f"SET LOCAL lock_timeout = {max(1, round(lock_wait * 1000))}"))
    if bulk:
        conn.execute(sa.text("SET LOCAL statement_timeout = 0"))


class SQLStore(
    ServiceTables,
    ViewQueries,
    ListingQueries,
    CheckpointTables,
    InstructionTables,
    SdkEntryTables,
    WorkerTables,
    QuotaTables,
):
    """A :class:`baton.store.base.Store` over one SQLAlchemy engine."""

    def __init__(self, url: str, limits: StoreLimits | None = None) -> None:
        self.url = url
        self.limits = limits or StoreLimits.default()
        self._identity: str | None = None
        self._writers = writers_for(url)
        try:
            self.engine: Engine = engine_for(url, self.limits)
        except sa.exc.DBAPIError as exc:
            error = store_error(exc, url)
            if redact(url) in str(error):  # it names the store already (could not reach it)
                raise error from exc
            raise error.__class__(f"cannot open the store at {redact(url)}: {error}") from exc
        except (sa.exc.SQLAlchemyError, ImportError) as exc:  # ImportError: a driver not installed
            raise StoreError(
                f"cannot open the store at {redact(url)}: {exc.__class__.__name__}: {exc}"
            ) from exc

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _tx(self, lock_wait: float | None = None, *, bulk: bool = False) -> Iterator[Connection]:
        """A write transaction. ``lock_wait``: its wait for a lock, when shorter than the store's (a
        lease's try, a grant's record); ``bulk``: PostgreSQL's statement limit lifted (a blob's write)."""
        wait = self.limits.lock if lock_wait is None else lock_wait
        try:
            with self._writers.turn(wait) if self._writers else nullcontext(), self._begin(wait) as conn:
                if self.dialect == "postgresql" and (bulk or lock_wait is not None):
                    _set_local(conn, lock_wait, bulk)
                yield conn
        except sa.exc.DBAPIError as exc:
            raise store_error(exc, self.url) from exc
        except sa.exc.SQLAlchemyError as exc:  # no connection free in the pool in time, ...
            raise StoreError(f"store error: {exc.__class__.__name__}: {exc}") from exc

    @contextmanager
    def _begin(self, lock_wait: float) -> Iterator[Connection]:
        if self._writers is None or lock_wait == self.limits.lock:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn, conn.execution_options(**{LOCK_WAIT: lock_wait}).begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A transaction that only reads (SQLite: a deferred BEGIN, no write lock taken or waited for)."""
        try:
            with self.engine.connect() as conn, conn.execution_options(**{READ_ONLY: True}).begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            raise store_error(exc, self.url) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"store error: {exc.__class__.__name__}: {exc}") from exc

    def transaction(self) -> AbstractContextManager[Connection]:
        """One transaction on the store's engine, its errors translated as every other write's: what a
        room that owns its data (:mod:`baton.plans.tables`, ...) reads and writes its tables in."""
        return self._tx()

    def reading(self) -> AbstractContextManager[Connection]:
        """:meth:`transaction` for one that only reads: on SQLite it neither waits for the writer of the
        moment nor makes writers wait (under load a read waited in SQLite's busy handler for tens of ms)."""
        return self._read()

    # -- migrations ---------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        migrate(self.engine)
        return self.schema_version()

    def schema_version(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(sa.text("SELECT max(version) FROM schema_migrations")).scalar() or 0)

    def identity(self) -> str:
        """A stable, non-secret id of this store (12 hex digits): a digest of the moment its first
        migration was applied, which every process reads the same whatever URL it spells the store
        with (a host alias, another user), and which two stores never share (two schemas of one
        PostgreSQL database, two SQLite files). A copy of the database (a restored dump) shares it."""
        if self._identity is None:
            with self._tx() as conn:
                born = conn.execute(
                    sa.text("SELECT applied_at FROM schema_migrations ORDER BY version LIMIT 1")
                ).scalar()
            self._identity = hashlib.sha256(f"baton-store:{float(born or 0.0)!r}".encode()).hexdigest()[:12]
        return self._identity

    # -- sessions -----------------------------------------------------------------------------------

    def get_session(self, agent: str, repo: str, thread: str) -> SessionRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(sessions).where(key_where(sessions, agent, repo, thread))).first()
        return session_of(row._mapping) if row else None

    def save_session(self, session: SessionRecord, *, fence: Fence | None = None) -> None:
        values = session_values(session)
        with self._tx() as conn:
            check_fence(conn, fence)
            upsert(conn, sessions, values, KEY)

    def list_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        query = sa.select(sessions).order_by(
            sessions.c.last_used_at.desc(), sessions.c.thread, sessions.c.agent, sessions.c.repo
        )
        if agent:
            query = query.where(sessions.c.agent == agent)
        if repo:
            query = query.where(sessions.c.repo == repo)
        if status:
            query = query.where(sessions.c.status == status.value)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with self._tx() as conn:
            return [session_of(r._mapping) for r in conn.execute(query)]

    def delete_session(self, agent: str, repo: str, thread: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.delete(sessions).where(key_where(sessions, agent, repo, thread)))
            # what its conversation knew of its instruction files goes with it
            conn.execute(sa.delete(instructions).where(key_where(instructions, agent, repo, thread)))

    # -- runs ---------------------------------------------------------------------------------------

    def add_run(
        self, run: RunRecord, *, fence: Fence | None = None, session: SessionRecord | None = None
    ) -> None:
        with self._tx() as conn:
            check_fence(conn, fence)
            conn.execute(sa.insert(runs).values(run_values(run)))
            if session is not None:
                upsert(conn, sessions, session_values(session), KEY)

    def update_run(self, run_id: str, *, fence: Fence | None = None, **fields: Any) -> None:
        values = {k: db_value(k, v) for k, v in fields.items()}
        with self._tx() as conn:
            check_fence(conn, fence)
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(values))

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
            if row is None:  # allow a unique prefix, as people copy short ids
                found = conn.execute(
                    sa.select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
                ).all()
                row = found[0] if len(found) == 1 else None
        return run_of(row._mapping) if row else None

    def find_run_ids(self, fragment: str, limit: int = 20) -> list[str]:
        """Ids of the runs whose id is, starts with or ends with ``fragment``, newest first."""
        query = sa.select(runs.c.id).where(id_like(runs.c.id, fragment))
        query = query.order_by(runs.c.started_at.desc()).limit(limit)
        with self._tx() as conn:
            return [row.id for row in conn.execute(query)]

    def run_attempts(self, run_id: str) -> list[RunRecord]:
        """The attempts of run ``run_id`` (a job's, or a ``baton run``'s first attempt's id), oldest
        first; an attempt from before runs had ids of their own is a run of one."""
        where = sa.or_(runs.c.job_id == run_id, sa.and_(runs.c.id == run_id, runs.c.job_id.is_(None)))
        query = sa.select(runs).where(where).order_by(runs.c.started_at, runs.c.attempt, runs.c.id)
        with self._tx() as conn:
            return [run_of(r._mapping) for r in conn.execute(query)]

    def list_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        limit: int = 50,
        outcome: Outcome | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id).limit(limit).offset(offset)
        for name, value in (("agent", agent), ("repo", repo), ("thread", thread), ("outcome", outcome)):
            if value is not None:
                query = query.where(runs.c[name] == value)
        with self._read() as conn:
            return [run_of(r._mapping) for r in conn.execute(query)]

    def delete_runs(self, agent: str, repo: str, thread: str) -> list[RunRecord]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(runs).where(key_where(runs, agent, repo, thread))).all()
            conn.execute(sa.delete(runs).where(key_where(runs, agent, repo, thread)))
        return [run_of(r._mapping) for r in rows]

    # -- leases -------------------------------------------------------------------------------------

    def db_now(self, conn: Connection) -> float:
        """The database's clock in seconds since the epoch: lease expiry is judged by one clock for
        every machine, not by each worker's own."""
        if self.dialect == "postgresql":
            return float(conn.execute(sa.text("SELECT extract(epoch from clock_timestamp())")).scalar_one())
        return float(conn.execute(sa.text("SELECT (julianday('now') - 2440587.5) * 86400.0")).scalar_one())

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        """SQLite takes its write lock up front (``BEGIN IMMEDIATE``), PostgreSQL the key's row
        (``SELECT ... FOR UPDATE``), so two runners on one key never both win. The try never queues for
        that row (PostgreSQL's ``NOWAIT``; SQLite waits :data:`LEASE_TRY_WAIT` for its lock, every
        key's): a row another transaction holds, perhaps a holder frozen mid-renewal, is "not yet" (the
        lease as last committed, ``locked``), tried again within the caller's wait."""
        try:
            return self._try_lease(lease, ttl, can_take)
        except StoreBusy:  # its row held by another transaction: "not yet", as last committed
            with self._read() as conn:
                row = conn.execute(sa.select(leases).where(leases.c.key == lease.key)).first()
            found = Lease(**row._mapping) if row is not None else Lease(lease.key, "", "", 0, 0.0, 0.0)
            found.locked = True
            return found

    def _try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        # SQLite: a short wait for its one write lock; PostgreSQL: NOWAIT on the row, no SET LOCAL (a
        # round trip a grant need not pay)
        wait = min(LEASE_TRY_WAIT, self.limits.lock) if self._writers is not None else None
        with self._tx(wait) as conn:
            existing = Lease(**locked_lease_row(conn, lease.key, nowait=True)._mapping)
            now = self.db_now(conn)
            if existing.holder and existing.holder != lease.holder and not can_take(existing, now):
                return existing
            lease.acquired_at, lease.expires_at = now, now + ttl
            # a new grant gets the next token (a free row's is 0); the same holder taking it again
            # keeps its own
            lease.fence = existing.fence if existing.holder == lease.holder else existing.fence + 1
            granted = {name: value for name, value in lease.__dict__.items() if name != "locked"}
            conn.execute(sa.update(leases).where(leases.c.key == lease.key).values(granted))
            return None

    def renew_lease(self, key: str, holder: str, ttl: float) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                sa.update(leases)
                .where(leases.c.key == key, leases.c.holder == holder)
                .values(expires_at=self.db_now(conn) + ttl)
            )
            return bool(result.rowcount)

    def advance_fence(self, key: str, token: int) -> None:
        # a Redis grant's record waits for the row at most LEASE_TRY_WAIT (a holder frozen on it:
        # StoreBusy, and the grant is tried again within the caller's wait)
        with self._tx(min(LEASE_TRY_WAIT, self.limits.lock)) as conn:
            check_fence(conn, Fence(key, token))

    def release_lease(self, key: str, holder: str) -> None:
        """Free the key; its row stays with its fencing token, so the next grant's is larger."""
        with self._tx() as conn:
            conn.execute(
                sa.update(leases)
                .where(leases.c.key == key, leases.c.holder == holder)
                .values(holder="", expires_at=0.0)
            )

    # -- blobs and snapshots ------------------------------------------------------------------------

    def put_blob(self, digest: str, data: bytes, size: int) -> None:
        with self._tx(bulk=True) as conn:
            # looked up first, so a blob the store has (the usual case) is not sent again
            if conn.execute(sa.select(blobs.c.digest).where(blobs.c.digest == digest)).first() is None:
                upsert(conn, blobs, {"digest": digest, "data": data, "size": size}, ["digest"], update=False)

    def get_blob(self, digest: str) -> bytes | None:
        with self._read() as conn:
            data = conn.execute(sa.select(blobs.c.data).where(blobs.c.digest == digest)).scalar()
        return bytes(data) if data is not None else None

    def save_snapshot(self, snapshot: Snapshot, *, fence: Fence | None = None) -> None:
        values = {
            "agent": snapshot.agent,
            "repo": snapshot.repo,
            "thread": snapshot.thread,
            "agent_session_id": snapshot.agent_session_id,
            "files": json.dumps(snapshot.files),
            "total_bytes": snapshot.total_bytes,
            "created_at": snapshot.created_at,
        }
        where = key_where(snapshots, snapshot.agent, snapshot.repo, snapshot.thread)
        with self._tx() as conn:
            check_fence(conn, fence)
            lock_key(conn, SNAPSHOT_LOCKS, snapshot.agent, snapshot.repo, snapshot.thread)
            previous = conn.execute(sa.select(snapshots.c.files).where(where)).scalar()
            upsert(conn, snapshots, values, KEY)
            if previous is not None:
                self._drop_unused_blobs(conn, snapshot_digests(previous) - snapshot.digests())

    def get_snapshot(self, agent: str, repo: str, thread: str) -> Snapshot | None:
        with self._read() as conn:
            row = conn.execute(sa.select(snapshots).where(key_where(snapshots, agent, repo, thread))).first()
        return snapshot_of(row._mapping) if row is not None else None

    def delete_snapshot(self, agent: str, repo: str, thread: str) -> None:
        where = key_where(snapshots, agent, repo, thread)
        with self._tx() as conn:
            lock_key(conn, SNAPSHOT_LOCKS, agent, repo, thread)
            previous = conn.execute(sa.select(snapshots.c.files).where(where)).scalar()
            conn.execute(sa.delete(snapshots).where(where))
            if previous is not None:
                self._drop_unused_blobs(conn, snapshot_digests(previous))

    def _drop_unused_blobs(self, conn: Connection, candidates: set[str]) -> None:
        # Only the blobs the replaced snapshot used are candidates: a blob another runner has just put
        # for a snapshot it has not saved yet is in no snapshot, and must not be collected under it.
        # Usually one candidate (the transcript's last chunk), looked up across snapshots in SQL.
        unused = [
            digest
            for digest in candidates
            if conn.execute(
                sa.select(snapshots.c.thread).where(snapshots.c.files.contains(digest)).limit(1)
            ).first()
            is None
        ]
        if unused:
            conn.execute(sa.delete(blobs).where(blobs.c.digest.in_(unused)))

    # -- audit --------------------------------------------------------------------------------------

    def audit(self, action: str, key: str, actor: str, detail: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                sa.insert(audit_log).values(
                    at=time.time(), actor=actor, action=action, key=key, detail=json.dumps(detail)
                )
            )

    def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
        return [{**r._mapping, "detail": json.loads(r._mapping["detail"])} for r in rows]

    def close(self) -> None:
        """Nothing to release: the engine (and its pool) is shared by every store of this URL."""
