"""The core tables as query constructs, stated once for the SQL store and its mixins (the DDL lives in
:mod:`baton.store.migrations`), and the conversions between their rows and baton's records."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus

sessions = sa.table(
    "sessions",
    *(
        sa.column(n)
        for n in (
            "agent",
            "repo",
            "thread",
            "repo_url",
            "branch",
            "base",
            "worktree",
            "agent_session_id",
            "status",
            "attempts",
            "last_outcome",
            "created_at",
            "last_used_at",
            "expires_at",
        )
    ),
)
runs = sa.table(
    "runs",
    *(
        sa.column(n)
        for n in (
            "id",
            "agent",
            "repo",
            "thread",
            "attempt",
            "mode",
            "prompt_kind",
            "prompt",
            "outcome",
            "started_at",
            "ended_at",
            "heartbeat_at",
            "exit_code",
            "session_id_in",
            "session_id_out",
            "result",
            "error",
            "usage",
            "cost_usd",
            "log_path",
            "host",
            "runner_pid",
            "agent_pid",
            "note",
        )
    ),
)
leases = sa.table(
    "leases", *(sa.column(n) for n in ("key", "holder", "host", "pid", "acquired_at", "expires_at"))
)
blobs = sa.table("blobs", sa.column("digest"), sa.column("size"), sa.column("data"))
snapshots = sa.table(
    "snapshots",
    *(
        sa.column(n)
        for n in (
            "agent",
            "repo",
            "thread",
            "agent_session_id",
            "files",
            "total_bytes",
            "created_at",
        )
    ),
)
audit_log = sa.table("audit", *(sa.column(n) for n in ("id", "at", "actor", "action", "key", "detail")))


def key_where(table: Any, agent: str, repo: str, thread: str) -> Any:
    return sa.and_(table.c.agent == agent, table.c.repo == repo, table.c.thread == thread)


def db_value(name: str, value: Any) -> Any:
    if isinstance(value, Mode | PromptKind | Outcome | SessionStatus):
        return value.value
    if name == "usage":
        return json.dumps(value or {})
    return value


def run_values(run: RunRecord) -> dict[str, Any]:
    return {k: db_value(k, v) for k, v in run.__dict__.items()}


def run_of(row: Any) -> RunRecord:
    data = dict(row)
    data["mode"] = Mode(data["mode"])
    data["prompt_kind"] = PromptKind(data["prompt_kind"])
    data["outcome"] = Outcome(data["outcome"])
    data["usage"] = json.loads(data["usage"] or "{}")
    return RunRecord(**data)


def session_of(row: Any) -> SessionRecord:
    data = dict(row)
    data["status"] = SessionStatus(data["status"])
    data["last_outcome"] = Outcome(data["last_outcome"]) if data["last_outcome"] else None
    return SessionRecord(**data)
