"""The plans room's data in the store: its table (``plans``, built by migration 2 of the central
append-only list in :mod:`baton.store.migrations`), its role (:class:`PlanStore`) and the role over the
SQL store (:func:`plan_store`). One row per plan, its tasks' states as a JSON list: a plan has a handful
to a few dozen tasks and is written by one runner at a time (it holds the plan's lease, whose fence its
writes may carry), so rewriting the row (an upsert) on each task change is simple and atomic. Reads and
writes run in the store's own transactions, so a fenced save is checked against the lease row in the
same transaction as any other fenced write.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Protocol

import sqlalchemy as sa

from baton.models import Fence
from baton.plans.records import PlanRecord, PlanStatus, TaskState, TaskStatus
from baton.store.base import Transactions
from baton.store.schema import Real, Text, key_columns, metadata
from baton.store.tables import check_fence, upsert

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", Text, primary_key=True),
    *key_columns(),
    sa.Column("file", Text, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("session_id", Text),
    sa.Column("tasks", Text, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("updated_at", Real, nullable=False),
)


class PlanStore(Protocol):
    """Plans' progress, one record per plan."""

    def save_plan(self, plan: PlanRecord, *, fence: Fence | None = None) -> None: ...
    def get_plan(self, plan_id: str) -> PlanRecord | None: ...
    def list_plans(self) -> list[PlanRecord]: ...


def plan_store(store: Transactions) -> PlanStore:
    """The plans' role over ``store`` (cheap: it holds nothing but the store)."""
    return SQLPlans(store)


class SQLPlans:
    """:class:`PlanStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def save_plan(self, plan: PlanRecord, *, fence: Fence | None = None) -> None:
        values = {**asdict(plan), "tasks": json.dumps([asdict(t) for t in plan.tasks])}
        with self._store.transaction() as conn:
            check_fence(conn, fence)
            upsert(conn, plans, values, ["id"])

    def get_plan(self, plan_id: str) -> PlanRecord | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(plans).where(plans.c.id == plan_id)).first()
        return _plan(row._mapping) if row else None

    def list_plans(self) -> list[PlanRecord]:
        with self._store.transaction() as conn:
            return [
                _plan(r._mapping) for r in conn.execute(sa.select(plans).order_by(plans.c.updated_at.desc()))
            ]


def _plan(row: Any) -> PlanRecord:
    data = dict(row)
    data["tasks"] = [TaskState(**{**t, "status": TaskStatus(t["status"])}) for t in json.loads(data["tasks"])]
    data["status"] = PlanStatus(data["status"])
    return PlanRecord(**data)
