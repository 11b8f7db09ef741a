"""Plan progress in the SQL store: one row per plan, its tasks' states as a JSON list.

A plan has a handful to a few dozen tasks and is written by one runner at a time (it holds the plan's
lease, whose fence its writes may carry), so rewriting the row (an upsert) on each task change is simple
and atomic.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import Fence, PlanRecord, PlanStatus, TaskState, TaskStatus
from baton.store.schema import plans
from baton.store.tables import check_fence, upsert


class PlanTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def save_plan(self, plan: PlanRecord, *, fence: Fence | None = None) -> None:
        values = {**asdict(plan), "tasks": json.dumps([asdict(t) for t in plan.tasks])}
        with self._tx() as conn:
            check_fence(conn, fence)
            upsert(conn, plans, values, ["id"])

    def get_plan(self, plan_id: str) -> PlanRecord | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(plans).where(plans.c.id == plan_id)).first()
        return _plan(row._mapping) if row else None

    def list_plans(self) -> list[PlanRecord]:
        with self._tx() as conn:
            return [
                _plan(r._mapping) for r in conn.execute(sa.select(plans).order_by(plans.c.updated_at.desc()))
            ]


def _plan(row: Any) -> PlanRecord:
    data = dict(row)
    data["tasks"] = [TaskState(**{**t, "status": TaskStatus(t["status"])}) for t in json.loads(data["tasks"])]
    data["status"] = PlanStatus(data["status"])
    return PlanRecord(**data)
