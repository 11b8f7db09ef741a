"""What a thread, a repository or an API token has spent, computed from the store's runs on each check
(one query per scope, its caps' raises read in the same query; never a running counter that could
drift from what the runs say): USD from the cost each turn's agent reported (else its cost at the
operator's ``model_prices``: :func:`baton.caps.prices.turn_cost`), tokens as input plus
output of each run's ``usage`` (each the larger of its agent's count and the wire's: :func:`reconciled`;
its ``wire`` counts when the agent reported none), minutes from each
turn's start to its end (to its last heartbeat while it runs), and turns: the runs whose agent started
(a turn parked at a cap or stopped by a conflict before its agent ran spends nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.caps.model import Measure, Scope, split_thread
from baton.caps.tables import cap_raises
from baton.store.base import Transactions
from baton.store.schema import Real, jobs, runs

TOKENS = ("input_tokens", "output_tokens")  # the usage counters a tokens cap counts (never cached reads)


def reconciled(usage: dict[str, Any], wire: dict[str, int]) -> dict[str, Any]:
    """A run's usage as recorded: what its agent reported, each counter a tokens cap counts raised to
    what baton's model gateway read on the wire where that is more (an agent can under-report, or never
    count a request its tool fired with the run's token), the wire's own counts kept as ``wire`` and,
    when one was raised, the agent's as ``reported``."""
    raised = {n: wire[n] for n in TOKENS if isinstance(wire.get(n), int) and wire[n] > (usage.get(n) or 0)}
    found = {**usage, **raised, "wire": wire}
    if raised:
        found["reported"] = {n: usage.get(n) for n in TOKENS}
    return found


@dataclass(frozen=True)
class Spend:
    """One scope's spend, in each measure, and the sum of the raises of each of its caps."""

    usd: float = 0.0
    tokens: float = 0.0
    minutes: float = 0.0
    turns: float = 0.0
    raised: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # in the order of Measure

    def raised_of(self, measure: Measure) -> float:
        return self.raised[list(Measure).index(measure)]

    def get(self, measure: Measure) -> float:
        value: float = getattr(self, measure.value)
        return value

    def to_json(self) -> dict[str, float]:
        return {m.value: self.get(m) for m in Measure}


def spent(store: Transactions, scope: Scope, subject: str) -> Spend:
    """The spend of ``subject`` (agent:repo:thread, a repo's slug, a token's name) and its caps'
    raises, in one query."""
    with store.transaction() as conn:
        row = conn.execute(_query(conn, scope, subject)).one()
    raised = tuple(float(getattr(row, f"raised_{m.value}") or 0) for m in Measure)
    return Spend(
        float(row.usd or 0),
        float(row.tokens or 0),
        float(row.seconds or 0) / 60,
        float(row.turns or 0),
        (raised[0], raised[1], raised[2], raised[3]),
    )


def _raised(scope: Scope, subject: str, measure: Measure) -> Any:
    """The sum of the raises of one cap, as a scalar subquery of the spend's query."""
    where = (cap_raises.c.scope == scope.value) & (cap_raises.c.subject == subject)
    query = sa.select(sa.func.sum(cap_raises.c.amount)).where(where & (cap_raises.c.measure == measure.value))
    return query.scalar_subquery().label(f"raised_{measure.value}")


def _query(conn: Connection, scope: Scope, subject: str) -> Any:
    end = sa.func.coalesce(runs.c.ended_at, runs.c.heartbeat_at, runs.c.started_at)
    query = sa.select(
        sa.func.sum(runs.c.cost_usd).label("usd"),
        sa.func.sum(_tokens(conn)).label("tokens"),
        sa.func.sum(end - runs.c.started_at).label("seconds"),
        sa.func.count(runs.c.agent_pid).label("turns"),
        *(_raised(scope, subject, m) for m in Measure),
    )
    if scope == Scope.THREAD:
        agent, repo, thread = split_thread(subject)
        return query.where(runs.c.agent == agent, runs.c.repo == repo, runs.c.thread == thread)
    if scope == Scope.REPO:
        return query.where(runs.c.repo == subject)
    submitted = sa.select(jobs.c.id).where(jobs.c.actor == subject)
    return query.where(runs.c.job_id.in_(submitted))


def _tokens(conn: Connection) -> sa.ColumnElement[Any]:
    """A run's input + output tokens, read from its ``usage`` JSON in the store's own dialect: as its
    agent reported them, else as baton's model gateway read them on the wire (``usage.wire``: a turn
    stopped before its CLI said its usage)."""
    said: list[sa.ColumnElement[Any]]
    wire: list[sa.ColumnElement[Any]]
    if conn.dialect.name == "postgresql":
        # lazy: the PostgreSQL dialect, on PostgreSQL only
        from sqlalchemy.dialects import postgresql

        usage = sa.cast(runs.c.usage, postgresql.JSONB)
        said = [sa.cast(usage[name].astext, Real) for name in TOKENS]
        wire = [sa.cast(usage["wire"][name].astext, Real) for name in TOKENS]
    else:
        said = [sa.func.json_extract(runs.c.usage, f"$.{name}") for name in TOKENS]
        wire = [sa.func.json_extract(runs.c.usage, f"$.wire.{name}") for name in TOKENS]
    return sa.func.coalesce(said[0], wire[0], 0) + sa.func.coalesce(said[1], wire[1], 0)
