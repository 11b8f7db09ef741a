"""The Claude Agent SDK's session store over the SQL store: transcript entries per (project key,
session id, subpath), appended in order, deduplicated by their ``uuid``. :mod:`baton.sdk` adapts it to
the SDK's ``SessionStore`` protocol; this layer knows nothing of the SDK and keeps entries as JSON text,
one row per entry in ``sdk_entries`` (``seq``, autoincrement, the append order; the main transcript's
subpath ``""``, a subagent's its own). ``mtime`` is the database's clock at the append (seconds), so
workers on several machines agree on which session was written last.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.store.schema import sdk_entries as t
from baton.store.tables import insert_for

MAIN = ""  # the subpath of a session's main transcript


class SdkEntryTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx`` and ``db_now``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def db_now(self, conn: Connection) -> float:
        raise NotImplementedError

    def sdk_append(
        self, project_key: str, session_id: str, subpath: str, entries: Sequence[tuple[str | None, str]]
    ) -> int:
        """Append ``(uuid, entry JSON)`` pairs in order in one transaction, skipping uuids this
        transcript already holds (also repeated ones within the batch); returns how many were added.
        A unique index on (project key, session id, subpath, uuid) makes a repeated uuid a no-op
        (``ON CONFLICT DO NOTHING``, on SQLite and PostgreSQL alike), while entries without a uuid
        (NULL, never equal to another NULL) are always appended."""
        rows, seen = [], set()
        for uuid, entry in entries:
            if uuid is not None and uuid in seen:
                continue
            seen.add(uuid)
            rows.append({"uuid": uuid, "entry": entry})
        if not rows:
            return 0
        with self._tx() as conn:
            key = {"project_key": project_key, "session_id": session_id, "subpath": subpath}
            now = self.db_now(conn)
            insert = insert_for(conn, t)
            # executemany: the rows go in call order (sqlite3 and psycopg run them one after the
            # other), so ``seq`` follows it; a multi-row VALUES is ordered in practice, but nothing
            # promises it.
            params = [{**key, **row, "mtime": now} for row in rows]
            return conn.execute(insert.on_conflict_do_nothing(), params).rowcount

    def sdk_load(self, project_key: str, session_id: str, subpath: str) -> list[str] | None:
        """The transcript's entries (JSON text) in append order; None when it has none."""
        query = sa.select(t.c.entry).where(_key(project_key, session_id, subpath)).order_by(t.c.seq)
        with self._tx() as conn:
            entries = list(conn.execute(query).scalars())
        return entries or None

    def sdk_sessions(self, project_key: str) -> list[tuple[str, float]]:
        """Every session of the project that has a main transcript, with its last append's time."""
        query = (
            sa.select(t.c.session_id, sa.func.max(t.c.mtime))
            .where(t.c.project_key == project_key, t.c.subpath == MAIN)
            .group_by(t.c.session_id)
        )
        with self._tx() as conn:
            return [(sid, float(mtime)) for sid, mtime in conn.execute(query)]

    def sdk_main_entries(self, project_key: str) -> list[tuple[str, float, str]]:
        """``(session id, mtime, entry JSON)`` for every main-transcript entry of the project, by
        session then append order (what a summary is folded from)."""
        query = (
            sa.select(t.c.session_id, t.c.mtime, t.c.entry)
            .where(t.c.project_key == project_key, t.c.subpath == MAIN)
            .order_by(t.c.session_id, t.c.seq)
        )
        with self._tx() as conn:
            return [(sid, float(mtime), entry) for sid, mtime, entry in conn.execute(query)]

    def sdk_subpaths(self, project_key: str, session_id: str) -> list[str]:
        """The session's subagent transcripts (never the main one), sorted."""
        query = (
            sa.select(t.c.subpath)
            .distinct()
            .where(t.c.project_key == project_key, t.c.session_id == session_id, t.c.subpath != MAIN)
            .order_by(t.c.subpath)
        )
        with self._tx() as conn:
            return list(conn.execute(query).scalars())

    def sdk_delete(self, project_key: str, session_id: str, subpath: str | None = None) -> int:
        """Delete one transcript, or with ``subpath=None`` the session with all its subagents'
        transcripts; returns how many entries went."""
        where = sa.and_(t.c.project_key == project_key, t.c.session_id == session_id)
        if subpath is not None:
            where = _key(project_key, session_id, subpath)
        with self._tx() as conn:
            return conn.execute(sa.delete(t).where(where)).rowcount


def _key(project_key: str, session_id: str, subpath: str) -> sa.ColumnElement[bool]:
    return sa.and_(t.c.project_key == project_key, t.c.session_id == session_id, t.c.subpath == subpath)
