"""Session management: look up, reset, export and import the sessions of keys.

Reset takes the key's lease (a running key cannot be reset under its runner) and is audited. Export
writes one self-contained JSON document — the session, its runs and its transcript snapshot with the
blobs inline — that :func:`import_session` restores into another ``BATON_HOME`` (another machine):
the next run there hydrates the transcript and resumes the same conversation.
"""

from __future__ import annotations

import base64
import getpass
import json
import time
import zlib
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Any

from baton.agents import AGENTS, get_agent
from baton.errors import BadInput, NotFound
from baton.keys import Key, Repo, parse_repo, validate_agent, validate_thread
from baton.leases import LeaseHolder
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus, Snapshot
from baton.settings import Settings
from baton.store.base import Store
from baton.workdirs import Workdirs

EXPORT_FORMAT = "baton.session/1"


class Scope(StrEnum):
    """What a reset removes."""

    CONVERSATION = "conversation"  # the agent conversation (transcript + snapshot); the worktree stays
    WORKTREE = "worktree"  # the worktree, its branch and checkpoint; the conversation stays
    ALL = "all"  # both, plus the session's record, runs and logs


def resolve_key(store: Store, agent: str, repo: str, thread: str) -> Key:
    """A key for lookups: ``repo`` may be a URL, a local path, or the slug of a stored session."""
    validate_agent(agent, AGENTS)
    validate_thread(thread)
    stored = store.get_session(agent, repo, thread)
    if stored is not None:
        return Key(agent, Repo(stored.repo_url, stored.repo, stored.repo_url.startswith("/")), thread)
    try:
        return Key(agent, parse_repo(repo), thread)
    except BadInput:
        raise NotFound(f"no session for {agent}:{repo}:{thread}") from None


def get_session(store: Store, key: Key) -> SessionRecord:
    session = store.get_session(key.agent, key.repo.slug, key.thread)
    if session is None:
        raise NotFound(f"no session for {key}")
    return session


def reset_session(
    store: Store, settings: Settings, key: Key, scope: Scope, actor: str | None = None, wait: float = 0.0
) -> dict[str, Any]:
    """Reset one key; returns what was removed. Raises Busy while a run holds the key."""
    session = get_session(store, key)
    lease = LeaseHolder(store, key.id, settings.lease_ttl)
    lease.acquire(wait)
    try:
        removed: dict[str, Any] = {"key": str(key), "scope": scope.value}
        if scope in (Scope.CONVERSATION, Scope.ALL):
            removed["transcript_files"] = _forget_conversation(store, settings, key, session)
        if scope in (Scope.WORKTREE, Scope.ALL):
            removed["worktree"] = Workdirs(settings).remove_worktree(key, delete_branch=True)
        if scope == Scope.ALL:
            runs = store.delete_runs(key.agent, key.repo.slug, key.thread)
            for record in runs:
                Path(record.log_path).unlink(missing_ok=True)
            removed["runs"] = len(runs)
            store.delete_session(key.agent, key.repo.slug, key.thread)
        else:
            store.save_session(session)
        store.audit("reset", str(key), actor or _actor(), removed)
        return removed
    finally:
        lease.release()


def _forget_conversation(store: Store, settings: Settings, key: Key, session: SessionRecord) -> int:
    count = 0
    if session.agent_session_id:
        agent = get_agent(key.agent, settings)
        sid = session.agent_session_id
        for path in [*agent.transcript_files(sid), *agent.leftover_files(sid)]:
            path.unlink(missing_ok=True)
            count += 1
    store.delete_snapshot(key.agent, key.repo.slug, key.thread)
    session.agent_session_id = None
    return count


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def export_session(store: Store, key: Key) -> dict[str, Any]:
    """The session, its runs and its snapshot (blobs inline, base64) as one JSON-able document."""
    session = get_session(store, key)
    runs = store.list_runs(key.agent, key.repo.slug, key.thread, limit=10_000)
    snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    blobs: dict[str, dict[str, Any]] = {}
    if snapshot is not None:
        for digest in snapshot.digests():
            data = store.get_blob(digest)
            if data is not None:
                blobs[digest] = {"zlib_b64": base64.b64encode(data).decode()}
    return {
        "format": EXPORT_FORMAT,
        "exported_at": time.time(),
        "session": _plain(asdict(session)),
        "runs": [_plain(asdict(r)) for r in runs],
        "snapshot": asdict(snapshot) if snapshot else None,
        "blobs": blobs,
    }


def import_session(
    store: Store, settings: Settings, document: dict[str, Any], replace: bool = False
) -> SessionRecord:
    """Restore an exported session into this store; its worktree is rebuilt at this home's stable path."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise BadInput(f"not a baton session export (expected format {EXPORT_FORMAT!r})")
    try:
        data = dict(document["session"])
        data["status"] = SessionStatus.ACTIVE
        data["last_outcome"] = Outcome(data["last_outcome"]) if data.get("last_outcome") else None
        session = SessionRecord(**data)
        validate_agent(session.agent, AGENTS)
        validate_thread(session.thread)
        key = Key(
            session.agent,
            Repo(session.repo_url, session.repo, session.repo_url.startswith("/")),
            session.thread,
        )
        session.worktree = str(Workdirs(settings).worktree_path(key))
        runs = [_run_from(r) for r in document.get("runs", [])]
        snap = document.get("snapshot")
        snapshot = Snapshot(**snap) if snap else None
        blobs = {d: base64.b64decode(b["zlib_b64"]) for d, b in document.get("blobs", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"malformed session export: {exc}") from exc
    if store.get_session(key.agent, key.repo.slug, key.thread) is not None and not replace:
        raise BadInput(f"a session for {key} already exists here; pass --replace to overwrite it")
    if snapshot is not None:
        for digest in snapshot.digests():
            if digest not in blobs:
                raise BadInput(f"malformed session export: blob {digest[:12]} is missing")
        for digest, blob in blobs.items():
            store.put_blob(digest, blob, len(zlib.decompress(blob)))
    existing = {r.id for r in store.list_runs(key.agent, key.repo.slug, key.thread, limit=10_000)}
    for record in runs:
        if record.id not in existing:
            store.add_run(record)
    if snapshot is not None:
        store.save_snapshot(snapshot)
    store.save_session(session)
    store.audit("import", str(key), _actor(), {"runs": len(runs), "snapshot": snapshot is not None})
    return session


def _run_from(data: dict[str, Any]) -> RunRecord:
    data = dict(data)
    data["mode"] = Mode(data["mode"])
    data["prompt_kind"] = PromptKind(data["prompt_kind"])
    data["outcome"] = Outcome(data["outcome"])
    if data["outcome"] == Outcome.RUNNING:
        data["outcome"] = Outcome.CRASHED
    return RunRecord(**data)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return plain
