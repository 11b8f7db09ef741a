"""Session management: look up, reset, export and import the sessions of keys.

Reset takes the key's lease (a running key cannot be reset under its runner) and is audited; a reset
of the conversation removes the key's whole space (:mod:`baton.workspace.keyspace`: its agent home,
with the CLI's other files of that conversation, and its temp dir), after exporting it. Export
writes one self-contained JSON document — the session, its runs, its transcript snapshot with the
blobs inline and its worktree's checkpoint (a thin git bundle: what the remote lacks) — that
:func:`import_session` restores into another ``BATON_HOME`` (another machine): the next run there
hydrates the transcript, rebuilds the worktree and resumes the same conversation.
"""

from __future__ import annotations

import base64
import getpass
import json
import re
import shlex
import time
import zlib
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from baton.agents import AGENTS
from baton.errors import BadInput, NotFound
from baton.files import archive_path, write_json
from baton.keys import Key, Repo, parse_repo, validate_agent, validate_thread
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus, Snapshot
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store.base import CheckpointStore, KeyStore, RunStore, SnapshotStore
from baton.store.leases import held, key_lease
from baton.workspace import keyspace
from baton.workspace.archives import archive_stamp, archive_worktree
from baton.workspace.portable import checkpoint_from, export_checkpoint
from baton.workspace.workdirs import Workdirs

EXPORT_FORMAT = "baton.session/1"


class Scope(StrEnum):
    """What a reset removes."""

    CONVERSATION = "conversation"  # the agent conversation (transcript + snapshot); the worktree stays
    WORKTREE = "worktree"  # the worktree, its branch and checkpoint; the conversation stays
    ALL = "all"  # both, plus the session's record, runs and logs


def resolve_key(store: RunStore, agent: str, repo: str, thread: str) -> Key:
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


def get_session(store: RunStore, key: Key) -> SessionRecord:
    session = store.get_session(key.agent, key.repo.slug, key.thread)
    if session is None:
        raise NotFound(f"no session for {key}")
    return session


@dataclass
class ResetResult:
    """What a reset kept and what it removed. ``to_json()`` for scripts, ``describe()`` for people."""

    key: str
    scope: Scope
    archive_ref: str | None = None  # the worktree, branch tip and checkpoint, kept in the cache clone
    archive_commit: str | None = None
    cache: str | None = None  # the cache clone that holds archive_ref
    restore: str | None = None  # the git command that checks the archive out again
    conversation_archive: str | None = None  # the session's export (transcript snapshot, runs)
    worktree: bool = False  # a worktree directory was removed
    branch: str | None = None  # the branch that was deleted
    checkpoint: bool = False  # the checkpoint ref was deleted
    transcript_files: int = 0  # transcript (and leftover) files removed with the key's agent home
    snapshot: bool = False  # the transcript snapshot was removed from the store
    runs: int = 0  # run records removed (scope all), with their event logs
    session: bool = False  # the session record itself was removed (scope all)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "scope": self.scope.value}

    def describe(self) -> str:
        """One sentence: what was removed, and where what it held is kept."""
        removed = self._removed()
        said = f"Reset {self.key} ({self.scope.value}): " + (
            f"removed {_join(removed)}" if removed else "there was nothing to remove"
        )
        kept = []
        if self.archive_ref:
            kept.append(f"the worktree's work is kept at {self.archive_ref} (get it back: {self.restore})")
        if self.conversation_archive:
            kept.append(
                f"the conversation is kept in {self.conversation_archive} "
                f"(get it back: baton sessions import {shlex.quote(self.conversation_archive)} --replace)"
            )
        return said + ("; " + "; ".join(kept) if kept else "") + "."

    def _removed(self) -> list[str]:
        parts = []
        if self.worktree:
            parts.append("the worktree")
        if self.branch:
            parts.append(f"branch {self.branch}")
        if self.checkpoint:
            parts.append("its checkpoint")
        if self.transcript_files:
            parts.append(f"{self.transcript_files} transcript file(s)")
        if self.snapshot:
            parts.append("the transcript snapshot")
        if self.session:
            parts.append(f"the session record with {self.runs} run(s) and their logs")
        return parts


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def reset_session(
    store: KeyStore, settings: Settings, key: Key, scope: Scope, actor: str | None = None, wait: float = 0.0
) -> ResetResult:
    """Reset one key under its lease: validate, archive what would be lost, then remove (module doc).

    Always audited: ``reset`` with the result, or ``reset-failed`` with what was done before the error
    and the error itself. Raises Busy while a run holds the key."""
    actor = actor or local_actor()
    result = ResetResult(str(key), scope)
    try:
        get_session(store, key)  # an unknown key is NotFound, not Busy
        with held(key_lease(settings, store, key.id), wait, settings.heartbeat):
            session = get_session(store, key)  # read again under the lease: a run may just have saved it
            _reset(store, settings, key, session, result)
    except Exception as exc:
        store.audit("reset-failed", str(key), actor, {**result.to_json(), "error": str(exc)})
        raise
    store.audit("reset", str(key), actor, result.to_json())
    return result


def _reset(
    store: KeyStore, settings: Settings, key: Key, session: SessionRecord, result: ResetResult
) -> None:
    """Validate, archive, remove — in that order, so a refusal or a failed archive removes nothing."""
    workdirs = Workdirs(settings)
    stamp = archive_stamp()
    worktree = result.scope in (Scope.WORKTREE, Scope.ALL)
    conversation = result.scope in (Scope.CONVERSATION, Scope.ALL)
    tip = None
    if worktree:
        _check_branch_is_its_own(store, workdirs, key, session)
        tip = _archive_worktree(workdirs, key, session, stamp, result)
    if conversation:
        result.conversation_archive = _archive_conversation(store, settings, key, session, stamp)
    if worktree:  # git first: the likeliest to fail, while nothing of the conversation is gone yet
        result.worktree = workdirs.remove_worktree_dir(key)
        if tip and workdirs.delete_branch(key.repo, session.branch, expected=tip):
            result.branch = session.branch
        result.checkpoint = _drop_checkpoints(store, workdirs, key)
    if conversation:
        _forget_conversation(store, settings, key, session, result)
    if result.scope == Scope.ALL:
        _forget_records(store, key, result)
    else:
        store.save_session(session)


def _archive_worktree(
    workdirs: Workdirs, key: Key, session: SessionRecord, stamp: str, result: ResetResult
) -> str | None:
    """Archive the worktree into ``result``; returns the branch tip it kept (None: no branch)."""
    archive = archive_worktree(workdirs, key, session.branch, stamp)
    if archive is None:
        return None
    result.archive_ref, result.archive_commit = archive.ref, archive.commit
    result.cache, result.restore = str(archive.cache), archive.restore_command()
    return archive.branch_tip


def _drop_checkpoints(store: CheckpointStore, workdirs: Workdirs, key: Key) -> bool:
    """The key's checkpoint here and in the store (where other machines would rebuild it from)."""
    shared = store.get_checkpoint(key.agent, key.repo.slug, key.thread) is not None
    store.delete_checkpoint(key.agent, key.repo.slug, key.thread)
    return workdirs.drop_checkpoint(key) or shared


def _forget_records(store: RunStore, key: Key, result: ResetResult) -> None:
    runs = store.delete_runs(key.agent, key.repo.slug, key.thread)
    for record in runs:
        Path(record.log_path).unlink(missing_ok=True)
    result.runs = len(runs)
    store.delete_session(key.agent, key.repo.slug, key.thread)
    result.session = True


def _check_branch_is_its_own(store: RunStore, workdirs: Workdirs, key: Key, session: SessionRecord) -> None:
    """Refuse (before anything is written) to delete a branch another session or worktree works on."""
    own = workdirs.worktree_path(key)
    users = [str(p) for p in workdirs.branch_worktrees(key.repo, session.branch) if p != own]
    users += [
        f"session {other.agent}:{other.repo}:{other.thread}"
        for other in store.list_sessions(repo=key.repo.slug)
        if other.branch == session.branch and (other.agent, other.thread) != (key.agent, key.thread)
    ]
    if users:
        raise BadInput(
            f"branch {session.branch!r} of {key} is also used by {', '.join(users)}; nothing was reset "
            "(reset with --scope conversation, or reset the other key first)"
        )


def _archive_conversation(
    store: KeyStore, settings: Settings, key: Key, session: SessionRecord, stamp: str
) -> str | None:
    """Write the session's export (its latest transcript snapshotted first) under ``archive/``; None
    when there is no conversation to keep."""
    if not session.agent_session_id:
        return None
    sid = session.agent_session_id
    take_snapshot(store, keyspace.holder(settings, key, sid), key, sid)
    path = archive_path(settings.home, (key.agent, key.repo.slug, key.thread), stamp, suffix=".json")
    write_json(path, export_session(store, key, checkpoint=False))  # the worktree has its own archive
    return str(path)


def _forget_conversation(
    store: SnapshotStore, settings: Settings, key: Key, session: SessionRecord, result: ResetResult
) -> None:
    if session.agent_session_id:
        for path in keyspace.conversation_files(settings, key, session.agent_session_id):
            path.unlink(missing_ok=True)
            result.transcript_files += 1
    keyspace.remove_space(settings, key)  # the rest of the key's agent home: prompts, caches, temp files
    result.snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread) is not None
    store.delete_snapshot(key.agent, key.repo.slug, key.thread)
    session.agent_session_id = None


def local_actor() -> str:
    """The audit's actor for local commands: the user running baton."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def export_session(store: KeyStore, key: Key, checkpoint: bool = True) -> dict[str, Any]:
    """The session, its runs, its snapshot (blobs inline, base64) and, with ``checkpoint``, its
    worktree's checkpoint (a git bundle, base64) as one JSON-able document."""
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
        "checkpoint": export_checkpoint(store, key) if checkpoint else None,
    }


def import_session(
    store: KeyStore, settings: Settings, document: dict[str, Any], replace: bool = False
) -> SessionRecord:
    """Restore an exported session into this store; its worktree is rebuilt at this home's stable path.
    The document is hostile input: every name that becomes a path is validated, and paths in it
    (worktree, run logs) are replaced by this home's own."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise BadInput(f"not a baton session export (expected format {EXPORT_FORMAT!r})")
    try:
        session, key = _session_from(document["session"], settings)
        runs = [_run_from(r, settings) for r in document.get("runs", [])]
        snap = document.get("snapshot")
        snapshot = Snapshot(**snap) if snap else None
        blobs = {d: base64.b64decode(b["zlib_b64"]) for d, b in document.get("blobs", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput(f"malformed session export: {exc}") from exc
    found = document.get("checkpoint")
    checkpoint = checkpoint_from(found, key, session.branch) if found is not None else None
    if store.get_session(key.agent, key.repo.slug, key.thread) is not None and not replace:
        raise BadInput(f"a session for {key} already exists here; pass --replace to overwrite it")
    _store_import(store, key, session, runs, snapshot, blobs)
    if checkpoint is not None:  # after the session: a checkpoint without its session would be an orphan
        store.save_checkpoint(*checkpoint)
    return session


def _session_from(data: dict[str, Any], settings: Settings) -> tuple[SessionRecord, Key]:
    data = dict(data)
    data["status"] = SessionStatus.ACTIVE
    data["last_outcome"] = Outcome(data["last_outcome"]) if data.get("last_outcome") else None
    session = SessionRecord(**data)
    validate_agent(session.agent, AGENTS)
    validate_thread(session.thread)
    _check_lineage_fields(session)
    _check_slug(session.repo)
    key = Key(
        session.agent, Repo(session.repo_url, session.repo, session.repo_url.startswith("/")), session.thread
    )
    session.worktree = str(Workdirs(settings).worktree_path(key))
    return session, key


def _check_lineage_fields(session: SessionRecord) -> None:
    """The stacking and lineage fields of an export (hostile input): a base thread is a valid thread, a
    base commit a commit id, origin and pending sync JSON objects (or absent)."""
    if session.base_thread is not None:
        validate_thread(session.base_thread)
    if session.base_sha is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", str(session.base_sha)):
        raise BadInput("malformed session export: base_sha is not a commit id")
    for name in ("origin", "pending_sync"):
        if getattr(session, name) is not None and not isinstance(getattr(session, name), dict):
            raise BadInput(f"malformed session export: {name} is not an object")


def _check_slug(slug: str) -> None:
    """A slug names directories under BATON_HOME: plain path components only."""
    parts = slug.split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") or not re.fullmatch(r"[\w.@:+~-]+", p) for p in parts):
        raise BadInput(f"malformed session export: {slug!r} is not a repository slug")


def _store_import(
    store: KeyStore,
    key: Key,
    session: SessionRecord,
    runs: list[RunRecord],
    snapshot: Snapshot | None,
    blobs: dict[str, bytes],
) -> None:
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
    store.audit("import", str(key), local_actor(), {"runs": len(runs), "snapshot": snapshot is not None})


def _run_from(data: dict[str, Any], settings: Settings) -> RunRecord:
    data = dict(data)
    if not re.fullmatch(r"[0-9a-f]{8,64}", str(data["id"])):
        raise ValueError(f"run id {str(data['id'])[:80]!r} is not a baton run id")
    data["log_path"] = str(settings.home / "logs" / f"{data['id']}.jsonl")  # never a path from the file
    data["mode"] = Mode(data["mode"])
    data["prompt_kind"] = PromptKind(data["prompt_kind"])
    data["outcome"] = Outcome(data["outcome"])
    if data["outcome"] == Outcome.RUNNING:
        data["outcome"] = Outcome.CRASHED
    return RunRecord(**data)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return plain
