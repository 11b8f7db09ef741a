"""A SQLite store that a run can use without SQLAlchemy: ``baton run`` starts its agent sooner and
never pays SQLAlchemy's import.

A command-line run is one process per turn; importing SQLAlchemy and opening the SQL store costs it
about 0.2 s of CPU. Every call a run makes — the lease (:meth:`try_lease`, its renewal and release),
settling runs left ``running`` (:meth:`list_runs`), the session, its checkpoint and snapshot, the run
record (:meth:`add_run`, then :meth:`update_run`), the session's update (:meth:`save_session`), the
transcript's blobs and snapshot, the worktree's checkpoint and the run's short id
(:mod:`baton.store.early_after`) — is answered here through the standard library's ``sqlite3``: the
same rows, the same transactions (``BEGIN IMMEDIATE``, as every SQL store connection), the same
fencing check inside each fenced write, the same conversions (:mod:`baton.store.rows`). Any other call
goes to the full :class:`~baton.store.sql.SQLStore`, opened on first need (:meth:`full`).

Each thread gets its own connection (the lease's heartbeat renews from a thread of its own), as the SQL
store's pool gives each thread its own. Nothing about durability changes: the lease is held and the
run record committed before the agent starts, by the same statements, so a kill at any moment leaves
what the SQL store would have left. Only a SQLite store at the last migration qualifies
(:func:`open_early`; otherwise None, and the caller opens the SQL store as always);
``tests/test_store_early.py`` runs the same calls on both and compares the tables.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.errors import BatonError, DiskFull, Fenced, StoreError
from baton.models import (
    CheckpointRecord,
    Fence,
    Lease,
    Outcome,
    RunRecord,
    SessionRecord,
    SessionStatus,
    Snapshot,
)
from baton.store import early_after as after
from baton.store.lite import PREFIX, LiteStore, connect_current, connect_file
from baton.store.rows import db_value, run_of, run_values, session_of, session_values, snapshot_of

if TYPE_CHECKING:
    from baton.store.base import Store

KEY_WHERE = after.KEY_WHERE
RUN_COLUMNS = {f.name for f in dataclasses.fields(RunRecord)}
NOW = f"SELECT {after.NOW}"


class EarlyStore(LiteStore):
    """See the module. Each thread's calls run on that thread's own connection."""

    def __init__(self, url: str, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.url = url
        self._owner = threading.get_ident()
        self._local = threading.local()
        self._others: list[sqlite3.Connection] = []  # other threads' connections, closed with this
        self._full: Store | None = None
        self._lock = threading.Lock()  # guards _others
        self._opening = threading.Lock()  # one opening of the SQL store at a time

    def full(self) -> Store:
        """The SQL store of the same URL, opened (SQLAlchemy imported) on first call."""
        with self._opening:
            if self._full is None:
                from baton.store import open_store

                self._full = open_store(self.url)
            return self._full

    def __getattr__(self, name: str) -> Any:
        # only for what this class does not define: the rest of the Store, from the SQL store
        return getattr(self.full(), name)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection: the one :func:`open_early` checked for the thread that made the
        store, a new one to the same database for any other thread."""
        if threading.get_ident() == self._owner:
            return self.conn
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # closed by close(), on the thread that made the store
            conn = connect_file(Path(self.url[len(PREFIX) :]), check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._others.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cursor = conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            cursor.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _store_error(exc) from exc
            raise
        finally:
            cursor.close()

    # -- the calls of a run before its agent starts ---------------------------------------------------

    def get_session(self, agent: str, repo: str, thread: str) -> SessionRecord | None:
        rows = self._select(f"SELECT * FROM sessions WHERE {KEY_WHERE}", [agent, repo, thread])
        return session_of(rows[0]) if rows else None

    def save_session(self, session: SessionRecord, *, fence: Fence | None = None) -> None:
        with self._tx() as cur:
            _check_fence(cur, fence)
            after.upsert_key(cur, "sessions", session_values(session))

    def add_run(self, run: RunRecord, *, fence: Fence | None = None) -> None:
        values = run_values(run)
        with self._tx() as cur:
            _check_fence(cur, fence)
            cur.execute(
                f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )

    def update_run(self, run_id: str, *, fence: Fence | None = None, **fields: Any) -> None:
        unknown = set(fields) - RUN_COLUMNS
        if unknown:
            raise StoreError(f"store error: runs has no column {', '.join(sorted(unknown))}")
        values = {name: db_value(name, value) for name, value in fields.items()}
        with self._tx() as cur:
            _check_fence(cur, fence)
            if values:
                cur.execute(
                    f"UPDATE runs SET {', '.join(f'{name} = ?' for name in values)} WHERE id = ?",
                    [*values.values(), run_id],
                )

    def list_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        limit: int = 50,
        outcome: Outcome | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        where, params = [], []
        for name, value in (("agent", agent), ("repo", repo), ("thread", thread), ("outcome", outcome)):
            if value is not None:
                where.append(f"{name} = ?")
                params.append(str(value.value) if isinstance(value, Outcome) else value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._select(sql + " ORDER BY started_at DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [run_of(row) for row in rows]

    def get_checkpoint(self, agent: str, repo: str, thread: str) -> CheckpointRecord | None:
        rows = self._select(f"SELECT * FROM checkpoints WHERE {KEY_WHERE}", [agent, repo, thread])
        return CheckpointRecord(**rows[0]) if rows else None

    def get_snapshot(self, agent: str, repo: str, thread: str) -> Snapshot | None:
        rows = self._select(f"SELECT * FROM snapshots WHERE {KEY_WHERE}", [agent, repo, thread])
        return snapshot_of(rows[0]) if rows else None

    def list_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        try:
            return super().list_sessions(agent, repo, status, limit, offset)
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        """As :meth:`baton.store.sql.SQLStore.try_lease`, statement for statement."""
        with self._tx() as cur:
            existing = Lease(**_lease_row(cur, lease.key))
            now = float(cur.execute(NOW).fetchone()[0])
            if existing.holder and existing.holder != lease.holder and not can_take(existing, now):
                return existing
            lease.acquired_at, lease.expires_at = now, now + ttl
            lease.fence = existing.fence if existing.holder == lease.holder else existing.fence + 1
            values = lease.__dict__
            cur.execute(
                f"UPDATE leases SET {', '.join(f'{name} = ?' for name in values)} WHERE key = ?",
                [*values.values(), lease.key],
            )
            return None

    # -- the calls of a run once its agent started (statements: baton.store.early_after) --------------

    def renew_lease(self, key: str, holder: str, ttl: float) -> bool:
        with self._tx() as cur:
            return after.renew_lease(cur, key, holder, ttl)

    def release_lease(self, key: str, holder: str) -> None:
        with self._tx() as cur:
            after.release_lease(cur, key, holder)

    def put_blob(self, digest: str, data: bytes, size: int) -> None:
        with self._tx() as cur:
            after.put_blob(cur, digest, data, size)

    def get_blob(self, digest: str) -> bytes | None:
        with self._tx() as cur:
            return after.get_blob(cur, digest)

    def save_snapshot(self, snapshot: Snapshot, *, fence: Fence | None = None) -> None:
        with self._tx() as cur:
            _check_fence(cur, fence)
            after.save_snapshot(cur, snapshot)

    def save_checkpoint(self, record: CheckpointRecord, data: bytes, fence: Fence | None = None) -> None:
        if fence is not None:
            record.fence = fence.token
        with self._tx() as cur:
            _check_fence(cur, fence)
            after.save_checkpoint(cur, record, data)

    def find_run_ids(self, fragment: str, limit: int = 20) -> list[str]:
        with self._tx() as cur:
            return after.find_ids(cur, "runs", "started_at", fragment, limit)

    def find_job_ids(self, fragment: str, limit: int = 20) -> list[str]:
        with self._tx() as cur:
            return after.find_ids(cur, "jobs", "submitted_at", fragment, limit)

    def _select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        try:
            return self._rows(sql, params)
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc

    def close(self) -> None:
        super().close()
        with self._lock:
            others, self._others = self._others, []
        for conn in others:
            conn.close()
        if self._full is not None:
            self._full.close()


def open_early(url: str) -> EarlyStore | None:
    """An :class:`EarlyStore` for ``url``; None when only the SQL store will do (see the module)."""
    conn = connect_current(url)
    return EarlyStore(url, conn) if conn is not None else None


def _lease_row(cur: sqlite3.Cursor, key: str) -> dict[str, Any]:
    """:func:`baton.store.tables.locked_lease_row` (``BEGIN IMMEDIATE`` holds the database already)."""
    for _ in range(2):
        cur.execute("SELECT * FROM leases WHERE key = ?", [key])
        row = cur.fetchone()
        if row is not None:
            return dict(zip([d[0] for d in cur.description], row, strict=True))
        cur.execute(
            "INSERT INTO leases (key, holder, host, pid, acquired_at, expires_at, fence) "
            "VALUES (?, '', '', 0, 0.0, 0.0, 0) ON CONFLICT (key) DO NOTHING",
            [key],
        )
    raise StoreError(f"the lease row of {key} could not be made")


def _check_fence(cur: sqlite3.Cursor, fence: Fence | None) -> None:
    """:func:`baton.store.tables.check_fence`, inside the write's transaction."""
    if fence is None:
        return
    seen = int(_lease_row(cur, fence.key)["fence"])
    if seen > fence.token:
        raise Fenced(f"{fence.key}: the lease was granted again (token {seen} > {fence.token}); stopping")
    if seen < fence.token:
        cur.execute("UPDATE leases SET fence = ? WHERE key = ?", [fence.token, fence.key])


def _store_error(exc: sqlite3.Error) -> BatonError:
    """:func:`baton.store.engine.store_error` for SQLite's own errors."""
    words = " ".join(str(exc).split())
    if "disk is full" in words or "No space left" in words:
        return DiskFull(f"the disk holding the store is full ({words}); free some space and retry")
    return StoreError(f"store error: {words}")
