"""Reads for the dashboard's tables and counters: sessions sorted and counted for paging, the keys
to sort by size (sizes come from a disk measurement, not the store), and a day's runs grouped by how
they ended."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import SessionRecord, SessionStatus
from baton.store.schema import jobs as _jobs
from baton.store.tables import runs, session_of, sessions

SESSION_SORTS = {
    "last_used": sessions.c.last_used_at,
    "attempts": sessions.c.attempts,
}


class ViewQueries:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

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
        """One page of sessions in ``sort`` order, and how many match."""
        column = SESSION_SORTS[sort]
        order = sa.nulls_last(column.desc() if descending else column.asc())
        where = _session_filter(agent, repo, status)
        page = (
            sa.select(sessions)
            .where(where)
            .order_by(order, sessions.c.thread, sessions.c.agent, sessions.c.repo)
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(sessions).where(where)
        with self._tx() as conn:
            rows = [session_of(r._mapping) for r in conn.execute(page)]
            return rows, int(conn.execute(count).scalar_one())

    def session_facets(self) -> tuple[list[str], list[str]]:
        """The agents and the repos that have sessions (the dashboard's filter choices)."""
        with self._tx() as conn:
            agents = conn.execute(sa.select(sessions.c.agent).distinct().order_by(sessions.c.agent))
            repos = conn.execute(sa.select(sessions.c.repo).distinct().order_by(sessions.c.repo))
            return [a for (a,) in agents], [r for (r,) in repos]

    def session_keys(
        self, agent: str | None = None, repo: str | None = None, status: SessionStatus | None = None
    ) -> list[tuple[str, str, str]]:
        query = sa.select(sessions.c.agent, sessions.c.repo, sessions.c.thread).where(
            _session_filter(agent, repo, status)
        )
        with self._tx() as conn:
            return [(a, r, t) for a, r, t in conn.execute(query)]

    def overview_counts(self, since: float) -> dict[str, Any]:
        """In one transaction: ``sessions`` {status: n}; ``runs`` started at or after ``since`` as
        (mode, outcome, hydrated, n); ``running`` runs; ``queued`` jobs."""
        hydrated = sa.case((runs.c.note.like("%hydrated%"), 1), else_=0).label("hydrated")
        day = (
            sa.select(runs.c.mode, runs.c.outcome, hydrated, sa.func.count())
            .where(runs.c.started_at >= since)
            .group_by(runs.c.mode, runs.c.outcome, hydrated)
        )
        by_status = sa.select(sessions.c.status, sa.func.count()).group_by(sessions.c.status)
        running = sa.select(sa.func.count()).select_from(runs).where(runs.c.outcome == "running")
        queued = sa.select(sa.func.count()).select_from(_jobs).where(_jobs.c.status == "queued")
        with self._tx() as conn:
            return {
                "sessions": {status: int(n) for status, n in conn.execute(by_status)},
                "runs": [(m, o, bool(h), int(n)) for m, o, h, n in conn.execute(day)],
                "running": int(conn.execute(running).scalar_one()),
                "queued": int(conn.execute(queued).scalar_one()),
            }


def _session_filter(agent: str | None, repo: str | None, status: SessionStatus | None) -> Any:
    clauses: list[Any] = [sa.true()]
    if agent:
        clauses.append(sessions.c.agent == agent)
    if repo:
        clauses.append(sessions.c.repo == repo)
    if status:
        clauses.append(sessions.c.status == status.value)
    return sa.and_(*clauses)
