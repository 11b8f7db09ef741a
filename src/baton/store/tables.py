"""The core tables (from :mod:`baton.store.schema`, where every table is stated once), the
conversions between their rows and baton's records, and what every mixin of the SQL store shares:
real upserts in the connection's dialect, and the fencing check of a write.

Fencing: a write carrying a :class:`~baton.models.Fence` calls :func:`check_fence` first, inside its own
transaction. The key's lease row is locked (PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``
holds the whole database already) until the write commits, so a takeover, which updates that row, lands
either before the check (the write is refused) or after the write (the write was the holder's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from baton.errors import Fenced
from baton.models import Fence
from baton.store.rows import db_value, run_of, run_values, session_of
from baton.store.schema import audit as audit_log
from baton.store.schema import blobs, leases, runs, sessions, snapshots

__all__ = [
    "audit_log",
    "blobs",
    "check_fence",
    "db_value",
    "leases",
    "run_of",
    "run_values",
    "runs",
    "session_of",
    "sessions",
    "snapshots",
    "upsert",
]

KEY = ("agent", "repo", "thread")


def insert_for(conn: Connection, table: sa.Table) -> Any:
    """The dialect's ``INSERT`` (with ``on_conflict_do_update``/``_do_nothing``) for ``table``."""
    # imported here: the PostgreSQL dialect alone costs ~50 ms of imports, which a SQLite store
    # never needs
    if conn.dialect.name == "postgresql":
        # lazy: the dialect in use only
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    # lazy: the dialect in use only
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def upsert(
    conn: Connection, table: sa.Table, values: dict[str, Any], keys: Sequence[str], update: bool = True
) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` every other column (``update=False``: ``DO
    NOTHING``): one statement, so two writers of one row never race into a duplicate key."""
    insert = insert_for(conn, table).values(values)
    if not update:
        return conn.execute(insert.on_conflict_do_nothing(index_elements=list(keys)))
    changed = {name: insert.excluded[name] for name in values if name not in keys}
    return conn.execute(insert.on_conflict_do_update(index_elements=list(keys), set_=changed))


# a class of PostgreSQL advisory locks (the two-key form, apart from the migrations' one-key lock)
SNAPSHOT_LOCKS = 727275


def lock_key(conn: Connection, space: int, agent: str, repo: str, thread: str) -> None:
    """Serialise the transactions that lock the same key in ``space`` until they end: PostgreSQL's
    advisory lock (a rare hash collision only makes two keys wait for each other); SQLite's ``BEGIN
    IMMEDIATE`` serialises every writer already. For a read-then-replace of a row that may not exist
    yet (the previous snapshot, whose unused blobs the replacement drops)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
            {"space": space, "key": f"{agent}\n{repo}\n{thread}"},
        )


# Built once, executed with the key as a parameter: every fenced write and lease grant reads this row
# (seven times a turn), and a statement built per call costs SQLAlchemy about a quarter of a
# millisecond to coerce and key for its cache before the database sees it.
_LEASE_ROW = sa.select(leases).where(leases.c.key == sa.bindparam("lease_key"))
_LEASE_ROW_LOCKED = _LEASE_ROW.with_for_update()
_LEASE_ROW_NOWAIT = _LEASE_ROW.with_for_update(nowait=True)


def locked_lease_row(conn: Connection, key: str, *, nowait: bool = False) -> Row[Any]:
    """The key's lease row, locked until the transaction ends; a free one (no holder, token 0) is
    made first when the key has none, so there is always a row to lock. ``nowait``: PostgreSQL fails
    at once (:class:`~baton.errors.StoreBusy`) when another transaction holds it, rather than waiting
    up to ``store_lock_timeout``."""
    if conn.dialect.name != "postgresql":
        query = _LEASE_ROW
    else:
        query = _LEASE_ROW_NOWAIT if nowait else _LEASE_ROW_LOCKED
    row = conn.execute(query, {"lease_key": key}).first()
    if row is None:
        free = {"key": key, "holder": "", "host": "", "pid": 0, "acquired_at": 0.0, "expires_at": 0.0}
        upsert(conn, leases, {**free, "fence": 0}, ["key"], update=False)
        row = conn.execute(query, {"lease_key": key}).one()
    return row


def check_fence(conn: Connection, fence: Fence | None) -> None:
    """Refuse a write whose token is older than the key's (raise :class:`Fenced`; the caller's
    transaction rolls back, so nothing is written); record a newer one (a grant made outside the
    store, by Redis). Call it first in the write's transaction; ``None`` checks nothing."""
    if fence is None:
        return
    seen = int(locked_lease_row(conn, fence.key).fence)
    if seen > fence.token:
        raise Fenced(f"{fence.key}: the lease was granted again (token {seen} > {fence.token}); stopping")
    if seen < fence.token:
        conn.execute(sa.update(leases).where(leases.c.key == fence.key).values(fence=fence.token))


def key_where(table: Any, agent: str, repo: str, thread: str) -> Any:
    return sa.and_(table.c.agent == agent, table.c.repo == repo, table.c.thread == thread)


def id_like(column: sa.Column[str], fragment: str) -> sa.ColumnElement[bool]:
    """``column`` is, starts with or ends with ``fragment`` (LIKE's wildcards in it taken literally):
    the ids people copy are prefixes, or the random tail tables show (``baton.runner.runids``)."""
    text = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(column.like(text + "%", escape="\\"), column.like("%" + text, escape="\\"))
