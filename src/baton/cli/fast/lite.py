"""The SQLite store read through the standard library's ``sqlite3``, for the fast path's ``baton sessions
ls``: opening the SQL store imports SQLAlchemy, about 0.2 s, several times what the command needs in
all. It reads only a ``sqlite:///PATH`` store that exists and is at the last migration of
:data:`~baton.store.migrations.MIGRATIONS`; anything else (PostgreSQL, a new or older store, an
unreadable file) is ``None`` from :func:`open_lite`, and the caller takes the full store, which creates,
migrates and explains. Rows become records through :mod:`baton.store.rows`, and the queries keep
:class:`~baton.store.sql.SQLStore`'s order, so both answer alike (``tests/cli/test_cli_fast.py`` compares).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baton.models import SessionRecord, SessionStatus
from baton.store.migrations import MIGRATIONS
from baton.store.rows import session_of
from baton.store.sqlitefile import check_room, configure

PREFIX = "sqlite:///"


class LiteStore:
    """Read-only queries over one SQLite store (see the module's docstring); close it when done."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def list_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        """As :meth:`baton.store.sql.SQLStore.list_sessions`: most recently used first, then by thread."""
        where, params = _filter(agent, repo, status)
        sql = "SELECT * FROM sessions" + where
        sql += " ORDER BY last_used_at DESC, thread, agent, repo"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [session_of(row) for row in self._rows(sql, params)]

    def count_sessions(
        self, agent: str | None = None, repo: str | None = None, status: SessionStatus | None = None
    ) -> int:
        where, params = _filter(agent, repo, status)
        return int(self.conn.execute("SELECT count(*) FROM sessions" + where, params).fetchone()[0])

    def iter_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        batch: int = 500,
    ) -> Iterator[SessionRecord]:
        """As :meth:`baton.store.sql_listing.ListingQueries.iter_sessions`: keyset pages, in
        :meth:`list_sessions`' order."""
        where, params = _filter(agent, repo, status)
        after: SessionRecord | None = None
        while True:
            sql, args = "SELECT * FROM sessions" + where, list(params)
            if after is not None:
                sql += (" AND " if where else " WHERE ") + (
                    "last_used_at <= ? AND NOT (last_used_at = ? AND (thread, agent, repo) <= (?, ?, ?))"
                )
                args += [after.last_used_at, after.last_used_at, after.thread, after.agent, after.repo]
            sql += " ORDER BY last_used_at DESC, thread, agent, repo LIMIT ?"
            page = [session_of(row) for row in self._rows(sql, [*args, batch])]
            yield from page
            if len(page) < batch:
                return
            after = page[-1]

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LiteStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _filter(agent: str | None, repo: str | None, status: SessionStatus | None) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (empty, or with its leading space) of the sessions' filters, and its values."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("agent", agent), ("repo", repo), ("status", status and status.value)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def open_lite(url: str, busy: float) -> LiteStore | None:
    """A :class:`LiteStore` for ``url`` (waiting ``busy`` seconds for a lock, as the setting
    ``store_lock_timeout`` says); None when the full store must answer (see the module)."""
    conn = connect_current(url, busy)
    return LiteStore(conn) if conn is not None else None


def connect_current(url: str, busy: float) -> sqlite3.Connection | None:
    """A connection to the SQLite store of ``url`` when it exists and its schema is at the last
    migration; None otherwise (the full store creates, migrates or explains). DiskFull when its disk
    is too full to open it (:func:`~baton.store.sqlitefile.check_room`)."""
    if not url.startswith(PREFIX) or "?" in url:
        return None
    path = Path(url[len(PREFIX) :])
    if not path.name or path.name == ":memory:" or not path.is_file():
        return None
    check_room(path)  # DiskFull, as the SQL store refuses a full disk before SQLite maps the -shm
    try:
        conn = connect_file(path, busy)
    except sqlite3.Error:
        return None
    try:
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    except sqlite3.Error:
        conn.close()
        return None
    if version != MIGRATIONS[-1][0]:
        conn.close()
        return None
    return conn


def connect_file(path: Path, busy: float) -> sqlite3.Connection:
    """A connection to the existing SQLite database ``path``, configured as the SQL store's are."""
    # mode=rw: never creates the file. Not mode=ro: a WAL database whose -wal and -shm files are
    # gone (the last connection closed cleanly) cannot be opened read-only.
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=busy)
    try:
        configure(conn, busy)  # as every connection of the SQL store
    except sqlite3.Error:
        conn.close()
        raise
    return conn
