"""The core tables (from :mod:`baton.store.schema`, where every table is stated once) and the
conversions between their rows and baton's records."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus
from baton.store.schema import audit as audit_log
from baton.store.schema import blobs, leases, runs, sessions, snapshots

__all__ = ["audit_log", "blobs", "leases", "runs", "sessions", "snapshots"]


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
