"""The plans room's records: a plan's stored progress (:class:`PlanRecord`) and each task's
(:class:`TaskState`), with their statuses. They are the plans room's alone (its runner writes them, the
CLI and the dashboard above it show them), so they live here rather than on the ground floor's
:mod:`baton.models`; their table and store role are in :mod:`baton.plans.tables`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from baton.models import iso


class TaskStatus(StrEnum):
    """Progress of one task of a plan."""

    PENDING = "pending"  # not run yet (or to be re-run)
    RUNNING = "running"  # its run is under way, or its runner died (re-run with the interrupted note)
    SUCCEEDED = "succeeded"  # done; never re-run unless asked with --from
    FAILED = "failed"  # its run failed (after its retries)
    WAITING = "waiting"  # its turn waits on a person (needs_input: at a spending cap, or a question)
    SKIPPED = "skipped"  # passed over by --from


@dataclass
class TaskState:
    """What is stored of one task: its prompt's hash (to notice edits), status, run and result."""

    id: str
    prompt_sha: str
    status: TaskStatus = TaskStatus.PENDING
    run_id: str | None = None
    outcome: str | None = None
    result: str | None = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None


class PlanStatus(StrEnum):
    """Progress of a whole plan."""

    PENDING = "pending"  # stored, not started
    RUNNING = "running"  # a runner works through its tasks (or died doing so: run it again)
    SUCCEEDED = "succeeded"  # every task succeeded or was skipped
    FAILED = "failed"  # a task failed (and the plan stops on failure), or tasks were left unfinished
    WAITING = "waiting"  # a task waits on a person (at a spending cap: `baton budget` raises and resumes)


@dataclass
class PlanRecord:
    """A plan's stored progress: one key (thread ``plan-<id>``), its tasks in order."""

    id: str
    agent: str
    repo: str  # slug
    thread: str
    file: str
    status: PlanStatus
    tasks: list[TaskState]
    session_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"], data["updated_at"] = iso(self.created_at), iso(self.updated_at)
        for task in data["tasks"]:
            task["started_at"], task["ended_at"] = iso(task["started_at"]), iso(task["ended_at"])
        return data
