"""Closing the sessions of a branch or PR that is gone (a webhook), and of an expired key (the sweeper),
without losing work: under the key's lease (a running key is closed after its run ends, never mid-run)
the worktree is checkpointed, the transcript snapshotted, then the worktree and the key's space
removed, and the session marked ``closed`` and audited with where the checkpoint is
(:func:`close_locked`). Until the end of its grace period (``closed_grace_days``) a new run of the key
resumes the same conversation in a worktree rebuilt from the checkpoint, the runner's ordinary path
for a lost worktree and a missing transcript; after it, the sweeper purges what the store kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.errors import BatonError, NotFound
from baton.housekeeping.disk import local_bytes, local_transcript
from baton.keys import Key, key_of
from baton.models import Fence, SessionRecord, SessionStatus
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store.base import KeyStore
from baton.store.leases import held, key_lease
from baton.workspace import keyspace
from baton.workspace.gitcmd import commit_of, worktree_status
from baton.workspace.workdirs import Workdirs, disk_usage

CLOSE_WAIT = 3600.0  # seconds a close waits for a running run of the key to end


@dataclass
class CloseResult:
    """What closing one key removed and kept."""

    key: str
    worktree: str  # the worktree's path
    worktree_removed: bool = False
    worktree_bytes: int = 0
    transcript_files: int = 0  # local transcript and leftover files removed
    transcript_bytes: int = 0  # with the rest of the key's space
    checkpoint: str | None = None  # the checkpoint commit (None: the worktree was clean or gone)
    checkpoint_ref: str | None = None  # where it is kept, in ``cache``
    cache: str = ""
    snapshot: bool = False  # the store holds the conversation's snapshot
    session_id: str | None = None  # the conversation a new run resumes
    purge_after: float = 0.0  # when the sweeper purges what was kept

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def close_branch(
    store: KeyStore, settings: Settings, repo_slug: str, branch: str, actor: str
) -> dict[str, Any]:
    """Close every session of ``repo_slug`` working on ``branch`` (checkpoint first; a running key
    after its run); returns a JSON-able report ``{"closed": [keys], "checkpoints": {key: ref}, ...}``.
    A key that fails to close is reported under ``errors``; the others are still closed."""
    short = branch.removeprefix("refs/heads/")
    report: dict[str, Any] = {
        "repo": repo_slug,
        "branch": short,
        "closed": [],
        "checkpoints": {},
        "results": [],
        "already_closed": [],
        "errors": {},
    }
    for session in store.list_sessions(repo=repo_slug):
        if session.branch != short:
            continue
        key = key_of(session)
        if session.status == SessionStatus.CLOSED:
            report["already_closed"].append(str(key))
            continue
        try:
            result = close_session(store, settings, key, actor)
        except (BatonError, OSError) as exc:
            report["errors"][str(key)] = str(exc)
            continue
        report["closed"].append(str(key))
        report["checkpoints"][str(key)] = result.checkpoint_ref
        report["results"].append(result.to_json())
    return report


def close_session(
    store: KeyStore, settings: Settings, key: Key, actor: str, wait: float = CLOSE_WAIT
) -> CloseResult:
    """Close one key (:func:`close_locked`), waiting up to ``wait`` seconds for a run of it to end (Busy
    after that). Audited as ``close`` (or ``close-failed`` with the error)."""
    lease = key_lease(settings, store, key.id)
    try:
        with held(lease, wait, settings.heartbeat):
            session = store.get_session(key.agent, key.repo.slug, key.thread)
            if session is None:
                raise NotFound(f"no session for {key}")
            result = close_locked(store, settings, key, session, fence=lease.proof)
    except Exception as exc:
        store.audit("close-failed", str(key), actor, {"error": str(exc)})
        raise
    store.audit("close", str(key), actor, result.to_json())
    return result


def close_locked(
    store: KeyStore,
    settings: Settings,
    key: Key,
    session: SessionRecord,
    files: list[Path] | None = None,
    fence: Fence | None = None,
) -> CloseResult:
    """Checkpoint, snapshot, remove, mark closed: the caller holds the key's lease (``fence``, its
    proof for the store's writes). ``files``: the session's local transcript files when the caller
    has listed them already (a listing can cost milliseconds: Claude's is a glob over every project
    folder of its home). In this order, so nothing is lost:

    1. **checkpoint** the worktree: its uncommitted state becomes
       ``refs/baton/checkpoints/<agent>/<thread>`` in the repo's cache clone (no ref when the worktree
       is clean: its branch holds everything);
    2. **snapshot** the agent's transcript into the store;
    3. remove the worktree directory (the branch and the checkpoint ref stay) and the key's space (its
       agent home, with the transcript, and its temp dir; :mod:`baton.workspace.keyspace`), and any
       files of the conversation a run before key spaces left in the agent's base home;
    4. mark the session ``closed``, keeping its conversation id, its ``expires_at`` the end of its
       grace period (``closed_grace_days`` from now). The caller audits it with the actor, what was
       removed and where the checkpoint is (:func:`close_session` as ``close``; a sweep's expiry in
       its ``sweep`` record)."""
    workdirs = Workdirs(settings)
    path = workdirs.worktree_path(key)
    result = CloseResult(str(key), str(path), cache=str(workdirs.cache_path(key.repo)))
    result.checkpoint = kept_checkpoint(workdirs, key, path)
    result.checkpoint_ref = workdirs.checkpoint_ref(key) if result.checkpoint else None
    if session.agent_session_id:
        sid = session.agent_session_id
        take_snapshot(store, keyspace.holder(settings, key, sid), key, sid, fence)
        result.snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread) is not None
    result.session_id = session.agent_session_id
    result.worktree_bytes = disk_usage(path)
    result.worktree_removed = workdirs.remove_worktree_dir(key)
    _remove_local(settings, session, local_transcript(settings, session) if files is None else files, result)
    session.status = SessionStatus.CLOSED
    session.expires_at = result.purge_after = time.time() + settings.closed_grace_days * 86400
    store.save_session(session, fence=fence)
    return result


def kept_checkpoint(workdirs: Workdirs, key: Key, path: Path) -> str | None:
    """Checkpoint the worktree; the checkpoint commit kept for the key afterwards — also one an earlier
    eviction left when the worktree is gone now (None: clean, the branch holds everything)."""
    commit = workdirs.checkpoint(key, path)
    cache = workdirs.cache_path(key.repo)
    if commit is None and (cache / "HEAD").is_file():
        commit = commit_of(cache, workdirs.checkpoint_ref(key))
    return commit


def would_checkpoint(workdirs: Workdirs, key: Key, path: Path) -> bool:
    """Whether :func:`kept_checkpoint` would leave a checkpoint, changing nothing (for dry runs)."""
    wt = workdirs.worktree_git(key)
    if wt is not None:
        return bool(worktree_status(wt))
    cache = workdirs.cache_path(key.repo)
    return (cache / "HEAD").is_file() and commit_of(cache, workdirs.checkpoint_ref(key)) is not None


def _remove_local(settings: Settings, session: SessionRecord, paths: list[Path], result: CloseResult) -> None:
    """The conversation's local files (``paths``) and the key's whole space."""
    result.transcript_bytes = local_bytes(settings, session, paths)
    for path in paths:
        path.unlink(missing_ok=True)
    keyspace.remove_space(settings, key_of(session))
    result.transcript_files = len(paths)
