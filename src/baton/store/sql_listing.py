"""Reads that walk a whole table without holding it: sessions and runs in pages for ``baton sessions
ls`` and ``baton runs ls`` (counted, and streamed with ``--all``), and the snapshots' sizes for ``baton
du``. A page after the first starts *after the last row of the one before* (a keyset page, never an
``OFFSET``: :meth:`ListingQueries.iter_sessions`), so walking 100,000 rows costs the same per page at
the end as at the start, and a row written between two pages neither repeats nor hides another; the
snapshots' sizes are two queries a batch (:meth:`ListingQueries.snapshot_sizes`), not one a session.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from baton.models import Outcome, RunRecord, SessionRecord, SessionStatus
from baton.store.rows import snapshot_digests
from baton.store.schema import jobs
from baton.store.tables import blobs, run_of, runs, session_of, sessions, snapshots

BATCH = 500  # rows a page reads: large enough that the query is a small part, small enough to hold


def session_where(agent: str | None, repo: str | None, status: SessionStatus | None) -> Any:
    """The filter ``baton sessions ls`` takes."""
    where = [sessions.c[name] == value for name, value in (("agent", agent), ("repo", repo)) if value]
    if status is not None:
        where.append(sessions.c.status == status.value)
    return sa.and_(sa.true(), *where)


def run_where(agent: str | None, repo: str | None, thread: str | None, outcome: Outcome | None) -> Any:
    """The filter ``baton runs ls`` takes."""
    given = (("agent", agent), ("repo", repo), ("thread", thread), ("outcome", outcome))
    return sa.and_(sa.true(), *[runs.c[name] == value for name, value in given if value is not None])


class ListingQueries:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def count_sessions(
        self, agent: str | None = None, repo: str | None = None, status: SessionStatus | None = None
    ) -> int:
        query = sa.select(sa.func.count()).select_from(sessions).where(session_where(agent, repo, status))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_sessions(
        self,
        agent: str | None = None,
        repo: str | None = None,
        status: SessionStatus | None = None,
        batch: int = BATCH,
    ) -> Iterator[SessionRecord]:
        """Every matching session, most recently used first (then by thread, agent, repo), read a
        keyset page of ``batch`` at a time (one short transaction each: no lock is held between).

        Each page is one range read of the ``sessions_recent`` (``last_used_at DESC, thread``) index
        (``runs_started`` for :meth:`iter_runs`), starting after the previous page's last sort key. The
        order ends in the primary key (sessions: ``thread, agent, repo``; runs: ``id``), so it is total
        and a page boundary between two rows of the same time is exact. The condition is spelled
        ``time <= t AND NOT (time = t AND rest <= last)``, not as one row-value comparison, so both
        SQLite and PostgreSQL scan the index from ``t`` down."""
        order = (sessions.c.last_used_at.desc(), sessions.c.thread, sessions.c.agent, sessions.c.repo)
        where = session_where(agent, repo, status)
        after: SessionRecord | None = None
        while True:
            query = sa.select(sessions).where(where).order_by(*order).limit(batch)
            if after is not None:
                rest = sa.tuple_(sessions.c.thread, sessions.c.agent, sessions.c.repo)
                last = sa.tuple_(sa.literal(after.thread), sa.literal(after.agent), sa.literal(after.repo))
                query = query.where(
                    sessions.c.last_used_at <= after.last_used_at,
                    sa.not_(sa.and_(sessions.c.last_used_at == after.last_used_at, rest <= last)),
                )
            with self._tx() as conn:
                page = [session_of(row) for row in _dicts(conn.execute(query))]
            yield from page
            if len(page) < batch:
                return
            after = page[-1]

    def count_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        outcome: Outcome | None = None,
    ) -> int:
        query = sa.select(sa.func.count()).select_from(runs).where(run_where(agent, repo, thread, outcome))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_runs(
        self,
        agent: str | None = None,
        repo: str | None = None,
        thread: str | None = None,
        outcome: Outcome | None = None,
        batch: int = BATCH,
    ) -> Iterator[RunRecord]:
        """Every matching attempt, newest first (then by id), a keyset page of ``batch`` at a time."""
        where = run_where(agent, repo, thread, outcome)
        after: RunRecord | None = None
        while True:
            query = sa.select(runs).where(where).order_by(runs.c.started_at.desc(), runs.c.id).limit(batch)
            if after is not None:
                query = query.where(
                    runs.c.started_at <= after.started_at,
                    sa.not_(sa.and_(runs.c.started_at == after.started_at, runs.c.id <= after.id)),
                )
            with self._tx() as conn:
                page = [run_of(row) for row in _dicts(conn.execute(query))]
            yield from page
            if len(page) < batch:
                return
            after = page[-1]

    def ids_sharing(self, fragments: Collection[str]) -> dict[str, set[str]]:
        """The fragments that two or more attempt or job ids start or end with, and those ids. An
        id's tail has no index: ``find_run_ids`` scans the table for each fragment (30 ms over
        100,000 runs), so a table of 30 runs' short ids took a second. A page's fragments are matched
        in one query per table (``substr``/``right`` of the id ``IN`` them: the database scans once
        and sends only what matches); more than a batch of them (``runs ls --all``) in one pass over
        the ids, in Python. A fragment only one id has is not in the answer."""
        by_length: dict[int, set[str]] = {}
        for fragment in fragments:
            by_length.setdefault(len(fragment), set()).add(fragment)
        if len(fragments) > BATCH:
            return _sharing(self._all_ids(), by_length)
        return _sharing(self._ids_with(by_length), by_length)

    def _all_ids(self) -> Iterator[str]:
        with self._tx() as conn:
            for column in (runs.c.id, jobs.c.id):
                yield from conn.execute(sa.select(column)).scalars()

    def _ids_with(self, by_length: dict[int, set[str]]) -> Iterator[str]:
        with self._tx() as conn:
            tail = sa.func.right if conn.dialect.name == "postgresql" else _sqlite_tail
            for column in (runs.c.id, jobs.c.id):
                for size, wanted in by_length.items():
                    near = sa.or_(sa.func.substr(column, 1, size).in_(wanted), tail(column, size).in_(wanted))
                    yield from conn.execute(sa.select(column).where(near)).scalars()

    def snapshot_sizes(self, batch: int = BATCH) -> Iterator[tuple[tuple[str, str, str], int]]:
        """``((agent, repo, thread), bytes)`` of every stored snapshot: the stored length of each of
        its blobs (a blob another snapshot shares counts for both; a missing one, or a snapshot whose
        file list is unreadable, counts 0), a batch of snapshots at a time. What
        :func:`baton.housekeeping.disk.snapshot_bytes` reads one key at a time is here a batch of
        snapshots and the lengths of their blobs, two queries (``length`` of a blob is read from its
        header, the data is not sent), instead of one query per session and every blob's data."""
        key = (snapshots.c.agent, snapshots.c.repo, snapshots.c.thread)
        after: tuple[str, str, str] | None = None
        while True:
            query = sa.select(*key, snapshots.c.files).order_by(*key).limit(batch)
            if after is not None:
                query = query.where(sa.tuple_(*key) > sa.tuple_(*map(sa.literal, after)))
            with self._tx() as conn:
                rows = [((a, r, t), snapshot_digests(files)) for a, r, t, files in conn.execute(query)]
                wanted = sorted({d for _key, digests in rows for d in digests})
                lengths = self._blob_lengths(conn, wanted)
            for found, digests in rows:
                yield found, sum(lengths.get(d, 0) for d in digests)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    @staticmethod
    def _blob_lengths(conn: Connection, digests: list[str]) -> dict[str, int]:
        lengths: dict[str, int] = {}
        for i in range(0, len(digests), BATCH):  # bounded IN lists (SQLite's variable limit)
            chunk = digests[i : i + BATCH]
            query = sa.select(blobs.c.digest, sa.func.length(blobs.c.data)).where(blobs.c.digest.in_(chunk))
            lengths.update((d, int(n)) for d, n in conn.execute(query))
        return lengths


def _dicts(result: CursorResult[Any]) -> Iterator[dict[str, Any]]:
    """Each row as a dict, zipped from the plain row: ``dict(row._mapping)`` costs three times as
    much (3.6 µs a row, a third of reading 100,000 sessions)."""
    names = list(result.keys())
    for row in result:
        yield dict(zip(names, row, strict=True))


def _sqlite_tail(column: Any, size: int) -> Any:
    """SQLite's spelling of PostgreSQL's ``right(column, size)``: the last ``size`` characters (the
    whole string when it is shorter)."""
    return sa.func.substr(column, -size)


def _sharing(ids: Iterable[str], by_length: dict[int, set[str]]) -> dict[str, set[str]]:
    """The fragments of ``by_length`` that two or more distinct ``ids`` start or end with."""
    first: dict[str, str] = {}  # fragment → the first id that had it
    shared: dict[str, set[str]] = {}
    for ident in ids:
        for size, wanted in by_length.items():
            for part in {ident[:size], ident[-size:]} & wanted:
                seen = first.setdefault(part, ident)
                if seen != ident:
                    shared.setdefault(part, {seen}).add(ident)
    return shared
