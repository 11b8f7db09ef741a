"""A SQLite store that a run can use before SQLAlchemy is imported: ``baton run`` starts its agent
sooner, and SQLAlchemy loads while the agent starts.

A command-line run is one process per turn; importing SQLAlchemy and opening the SQL store costs it
about 0.2 s, all of it before the agent could start. The calls a resumed run makes before its agent
starts — the lease (:meth:`try_lease`), settling runs left ``running`` (:meth:`list_runs`), the
session, its checkpoint and snapshot, the run record (:meth:`add_run`, then :meth:`update_run` with
its agent's pid) and the session's update (:meth:`save_session`) — are answered here through the
standard library's ``sqlite3``: the same rows, the same transactions (``BEGIN IMMEDIATE``, as every
SQL store connection), the same fencing check inside each fenced write, the same conversions
(:mod:`baton.store.rows`). Every other call goes to the full :class:`~baton.store.sql.SQLStore`, opened
on first need (:meth:`full`) or, from the moment the agent started (the run record's first update), in
a thread (:meth:`warm`): the import runs beside the agent's own start-up.

Nothing about durability changes: the lease is held and the run record committed before the agent
starts, by the same statements, so a kill at any moment leaves what the SQL store would have left.
Only a SQLite store at the last migration qualifies (:func:`open_early`; otherwise None, and the caller
opens the SQL store as always); ``tests/test_store_early.py`` runs the same calls on both and compares
the tables.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from baton.store.lite import LiteStore, connect_current
from baton.store.rows import db_value, run_of, run_values, session_of, session_values, snapshot_of

if TYPE_CHECKING:
    from baton.store.base import Store

KEY_WHERE = "agent = ? AND repo = ? AND thread = ?"
RUN_COLUMNS = {f.name for f in dataclasses.fields(RunRecord)}
NOW = "SELECT (julianday('now') - 2440587.5) * 86400.0"  # the SQL store's SQLite clock


class EarlyStore(LiteStore):
    """See the module. Not shared between threads: its own connection serves the thread that made it;
    any other thread's calls (a lease's heartbeat) go to the full store."""

    def __init__(self, url: str, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.url = url
        self._owner = threading.get_ident()
        self._full: Store | None = None
        self._lock = threading.Lock()  # guards _warming
        self._opening = threading.Lock()  # one opening of the SQL store at a time
        self._warming: threading.Thread | None = None

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

    def _here(self) -> bool:
        return threading.get_ident() == self._owner

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        cursor = self.conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            cursor.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _store_error(exc) from exc
            raise
        finally:
            cursor.close()

    # -- the calls of a run before its agent starts ---------------------------------------------------

    def get_session(self, agent: str, repo: str, thread: str) -> SessionRecord | None:
        if not self._here():
            return self.full().get_session(agent, repo, thread)
        rows = self._select(f"SELECT * FROM sessions WHERE {KEY_WHERE}", [agent, repo, thread])
        return session_of(rows[0]) if rows else None

    def save_session(self, session: SessionRecord, *, fence: Fence | None = None) -> None:
        if not self._here():
            return self.full().save_session(session, fence=fence)
        values = session_values(session)
        key = ("agent", "repo", "thread")
        changed = ", ".join(f"{name} = excluded.{name}" for name in values if name not in key)
        with self._tx() as cur:
            _check_fence(cur, fence)
            cur.execute(
                f"INSERT INTO sessions ({', '.join(values)}) VALUES ({', '.join('?' * len(values))}) "
                f"ON CONFLICT (agent, repo, thread) DO UPDATE SET {changed}",
                list(values.values()),
            )

    def add_run(self, run: RunRecord, *, fence: Fence | None = None) -> None:
        if not self._here():
            return self.full().add_run(run, fence=fence)
        values = run_values(run)
        with self._tx() as cur:
            _check_fence(cur, fence)
            cur.execute(
                f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )

    def update_run(self, run_id: str, *, fence: Fence | None = None, **fields: Any) -> None:
        """As the SQL store's. The first one on this thread is the run record's update the moment its
        agent started (its pid): it starts loading the SQL store in a thread, beside the agent."""
        if not self._here():
            return self.full().update_run(run_id, fence=fence, **fields)
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
        self.warm()

    def warm(self) -> None:
        """Start opening the SQL store in a thread (once); :meth:`full` waits for it."""
        with self._lock:
            if self._warming is not None or self._full is not None:
                return
            self._warming = threading.Thread(target=self._warm, name="baton-store-warm", daemon=True)
            self._warming.start()

    def _warm(self) -> None:
        try:
            self.full()
        except Exception:
            return

    def list_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        limit: int = 50,
        outcome: Outcome | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        if not self._here():
            return self.full().list_runs(agent, repo, thread, limit, outcome, offset)
        where, params = [], []
        for name, value in (("agent", agent), ("repo", repo), ("thread", thread), ("outcome", outcome)):
            if value is not None:
                where.append(f"{name} = ?")
                params.append(str(value.value) if isinstance(value, Outcome) else value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._select(sql + " ORDER BY started_at DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [run_of(row) for row in rows]

    def get_checkpoint(self, agent: str, repo: str, thread: str) -> CheckpointRecord | None:
        if not self._here():
            return self.full().get_checkpoint(agent, repo, thread)
        rows = self._select(f"SELECT * FROM checkpoints WHERE {KEY_WHERE}", [agent, repo, thread])
        return CheckpointRecord(**rows[0]) if rows else None

    def get_snapshot(self, agent: str, repo: str, thread: str) -> Snapshot | None:
        if not self._here():
            return self.full().get_snapshot(agent, repo, thread)
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
        if not self._here():
            return self.full().list_sessions(agent, repo, status, limit, offset)
        try:
            return super().list_sessions(agent, repo, status, limit, offset)
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        """As :meth:`baton.store.sql.SQLStore.try_lease`, statement for statement."""
        if not self._here():
            return self.full().try_lease(lease, ttl, can_take)
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

    def _select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        try:
            return self._rows(sql, params)
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc

    def close(self) -> None:
        super().close()
        if self._warming is not None:
            self._warming.join()
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
