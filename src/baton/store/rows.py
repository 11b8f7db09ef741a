"""Rows and records, both ways, without SQLAlchemy: what the SQL store writes for a record
(:func:`run_values`, :func:`db_value`) and the record a row holds (:func:`run_of`, :func:`session_of`).

Apart from :mod:`baton.store.tables` so that :mod:`baton.cli.fast.lite`, which reads the SQLite store
through the standard library's ``sqlite3`` for fast commands, turns rows into records exactly as the
SQL store does.
"""

from __future__ import annotations

import json
from typing import Any

from baton.errors import StoreError
from baton.models import Access, Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus, Snapshot


def db_value(name: str, value: Any) -> Any:
    if isinstance(value, Mode | PromptKind | Outcome | SessionStatus | Access):
        return value.value
    if name == "usage":
        return json.dumps(value or {})
    if name in JSON_OR_NULL:
        return None if value is None else json.dumps(value)
    return value


JSON_OR_NULL = ("sync", "origin", "pending_sync", "question")  # JSON documents that may be absent (NULL)


def _json_or_none(text: str | None) -> Any:
    """A stored JSON document, None when absent or unreadable (a damaged one must not wedge a key)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


def run_values(run: RunRecord) -> dict[str, Any]:
    return {k: db_value(k, v) for k, v in run.__dict__.items()}


def run_of(row: Any) -> RunRecord:
    data = dict(row)
    data["mode"] = Mode(data["mode"])
    data["prompt_kind"] = PromptKind(data["prompt_kind"])
    data["outcome"] = Outcome(data["outcome"])
    data["usage"] = json.loads(data["usage"] or "{}")
    data["sync"] = _json_or_none(data["sync"])
    data["question"] = _json_or_none(data.get("question"))
    data["access"] = _access_or_none(data["access"])
    data["confined"] = None if data["confined"] is None else bool(data["confined"])
    return RunRecord(**data)


def _access_or_none(text: str | None) -> Access | None:
    """A stored access level; None for a run from before access levels (or an unknown word)."""
    try:
        return Access(text) if text else None
    except ValueError:
        return None


def session_of(row: Any) -> SessionRecord:
    data = dict(row)
    data["status"] = SessionStatus(data["status"])
    data["last_outcome"] = Outcome(data["last_outcome"]) if data["last_outcome"] else None
    for name in ("origin", "pending_sync"):
        data[name] = _json_or_none(data[name])
    return SessionRecord(**data)


def session_values(session: SessionRecord) -> dict[str, Any]:
    """The row of ``session``, as the SQL store saves it."""
    return {
        "agent": session.agent,
        "repo": session.repo,
        "thread": session.thread,
        "repo_url": session.repo_url,
        "branch": session.branch,
        "base": session.base,
        "worktree": session.worktree,
        "agent_session_id": session.agent_session_id,
        "status": session.status.value,
        "attempts": session.attempts,
        "last_outcome": session.last_outcome.value if session.last_outcome else None,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "expires_at": session.expires_at,
        "base_thread": session.base_thread,
        "base_sha": session.base_sha,
        "origin": db_value("origin", session.origin),
        "pending_sync": db_value("pending_sync", session.pending_sync),
    }


def snapshot_of(row: Any) -> Snapshot:
    """A stored snapshot; StoreError when its ``files`` are not what a snapshot holds."""
    data = dict(row)
    try:
        data["files"] = _files_of(json.loads(data["files"]))
    except ValueError as exc:
        raise StoreError(
            f"the snapshot of {data['agent']}:{data['repo']}:{data['thread']} is corrupt ({exc})"
        ) from exc
    return Snapshot(**data)


def _files_of(files: Any) -> dict[str, list[str]]:
    """A snapshot's ``files`` as parsed JSON, checked for its shape (path → digest or list of digests);
    ValueError for any other shape, so the runner treats it as it treats a corrupt blob (recover)."""
    if not isinstance(files, dict):
        raise ValueError(f"files is a JSON {type(files).__name__}, not an object")
    for rel, digests in files.items():
        chunks = [digests] if isinstance(digests, str) else digests
        if not isinstance(chunks, list) or not all(isinstance(d, str) for d in chunks):
            raise ValueError(f"the digests of {rel!r} are not a list of strings")
    return files


def snapshot_digests(files_json: str) -> set[str]:
    """The blobs a stored snapshot (its ``files`` column) uses; none for a corrupt one (its blobs go
    with the blob GC)."""
    try:
        files = json.loads(files_json)
        return {d for v in files.values() for d in ([v] if isinstance(v, str) else v)}
    except (ValueError, AttributeError, TypeError):
        return set()
