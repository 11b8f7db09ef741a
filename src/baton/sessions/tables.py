"""Quarantined conversations: the sessions room's record of agent session ids whose resume failed at
once, and of the ones that failed so twice in a row and are never resumed again.

One row per (key, agent session id) that has failed at least once (``session_strikes``, built by the
central append-only list in :mod:`baton.store.migrations`): its strikes in a row, the last failure
and, from the second, when it was quarantined. A turn of that conversation that reached the model
removes the row (the failures were not in a row). The rule that decides what counts as a strike and
what a quarantined id does to a run is :mod:`baton.runner.quarantine`'s; this module only keeps the
rows. A quarantined id stays in the store (its transcript and snapshot are kept for export).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from baton.keys import Key
from baton.store.base import Transactions
from baton.store.schema import Int, Real, Text, metadata
from baton.store.tables import upsert

session_strikes = sa.Table(
    "session_strikes",
    metadata,
    sa.Column("agent", Text, nullable=False),
    sa.Column("repo", Text, nullable=False),
    sa.Column("thread", Text, nullable=False),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("strikes", Int, nullable=False),  # resumes in a row that failed at once
    sa.Column("run_id", Text, nullable=False),  # the attempt of the last one
    sa.Column("why", Text, nullable=False),  # what the agent said then
    sa.Column("at", Real, nullable=False),
    sa.Column("quarantined_at", Real),  # set at the second strike: never resumed again
    sa.PrimaryKeyConstraint("agent", "repo", "thread", "session_id"),
    sa.Index("session_strikes_quarantined", "quarantined_at"),
)


@dataclass(frozen=True)
class Strikes:
    """A conversation's resumes in a row that failed at once, and whether it is quarantined."""

    agent: str
    repo: str
    thread: str
    session_id: str
    strikes: int
    run_id: str
    why: str
    at: float
    quarantined_at: float | None = None

    @property
    def quarantined(self) -> bool:
        return self.quarantined_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "strikes": self.strikes,
            "run_id": self.run_id,
            "why": self.why,
            "at": self.at,
            "quarantined_at": self.quarantined_at,
        }


class StrikeStore(Protocol):
    """The strikes of a key's conversations."""

    def strikes(self, key: Key, session_id: str) -> Strikes | None: ...
    def strike(self, key: Key, session_id: str, run_id: str, why: str, limit: int) -> Strikes: ...
    def clear(self, key: Key, session_id: str) -> None: ...
    def of_key(self, key: Key) -> list[Strikes]: ...
    def quarantined_by_agent(self) -> dict[str, int]: ...


def strike_store(store: Transactions) -> StrikeStore:
    """The strikes' role over ``store`` (cheap: it holds nothing but the store)."""
    return SQLStrikes(store)


class SQLStrikes:
    """:class:`StrikeStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def strikes(self, key: Key, session_id: str) -> Strikes | None:
        """The conversation's strikes (None: its last resume did not fail at once)."""
        with self._store.reading() as conn:
            row = conn.execute(sa.select(session_strikes).where(_row(key, session_id))).first()
        return _strikes(row._mapping) if row is not None else None

    def strike(self, key: Key, session_id: str, run_id: str, why: str, limit: int) -> Strikes:
        """One more resume of the conversation failed at once (run ``run_id``, ``why``); at ``limit``
        strikes in a row it is quarantined (once: the first time stays). The row as it is now."""
        now = time.time()
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(session_strikes).where(_row(key, session_id))).first()
            before = _strikes(row._mapping) if row is not None else None
            count = (before.strikes if before else 0) + 1
            since = before.quarantined_at if before else None
            values = {
                "agent": key.agent,
                "repo": key.repo.slug,
                "thread": key.thread,
                "session_id": session_id,
                "strikes": count,
                "run_id": run_id,
                "why": why,
                "at": now,
                "quarantined_at": since if since is not None else (now if count >= limit else None),
            }
            upsert(conn, session_strikes, values, ["agent", "repo", "thread", "session_id"])
        return _strikes(values)

    def clear(self, key: Key, session_id: str) -> None:
        """A resume of the conversation reached the model: its failures were not in a row. A
        quarantined conversation stays quarantined (nothing resumes it to clear it)."""
        where = _row(key, session_id) & session_strikes.c.quarantined_at.is_(None)
        with self._store.transaction() as conn:  # a read first: most turns have nothing to clear
            if conn.execute(sa.select(session_strikes.c.strikes).where(where)).first() is not None:
                conn.execute(sa.delete(session_strikes).where(where))

    def of_key(self, key: Key) -> list[Strikes]:
        """The key's conversations with strikes, the oldest failure first."""
        query = sa.select(session_strikes).where(
            (session_strikes.c.agent == key.agent)
            & (session_strikes.c.repo == key.repo.slug)
            & (session_strikes.c.thread == key.thread)
        )
        with self._store.transaction() as conn:
            rows = conn.execute(query.order_by(session_strikes.c.at)).all()
        return [_strikes(row._mapping) for row in rows]

    def quarantined_by_agent(self) -> dict[str, int]:
        """How many conversations are quarantined, per agent (the metric)."""
        query = (
            sa.select(session_strikes.c.agent, sa.func.count())
            .where(session_strikes.c.quarantined_at.is_not(None))
            .group_by(session_strikes.c.agent)
        )
        with self._store.transaction() as conn:
            return {str(agent): int(n) for agent, n in conn.execute(query).all()}


def _row(key: Key, session_id: str) -> sa.ColumnElement[bool]:
    return (
        (session_strikes.c.agent == key.agent)
        & (session_strikes.c.repo == key.repo.slug)
        & (session_strikes.c.thread == key.thread)
        & (session_strikes.c.session_id == session_id)
    )


def _strikes(row: Any) -> Strikes:
    return Strikes(
        str(row["agent"]),
        str(row["repo"]),
        str(row["thread"]),
        str(row["session_id"]),
        int(row["strikes"]),
        str(row["run_id"]),
        str(row["why"]),
        float(row["at"]),
        None if row["quarantined_at"] is None else float(row["quarantined_at"]),
    )
