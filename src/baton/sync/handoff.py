"""Hand-off between agents: ``--handoff-from AGENT`` starts a key's conversation from another agent's
work on the same repo and thread (one provider's quota or outage, or a second opinion). Two things
carry over: the work (:func:`seed_worktree`: the target's own branch at the source's tip and its
checkpoint ref at the source's uncommitted and untracked files, from which its worktree is built as a
lost one is rebuilt), and the conversation, as text, since no agent can read another's transcript (a
recap, :mod:`baton.sync.recaps`, of the source's instructions and answers and the files it changed:
:func:`changed_files`). The source's conversation, worktree, branch and store records are only read:
it stays resumable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from baton.agents import AGENTS
from baton.errors import BadInput, BatonError, GitError
from baton.keys import Key
from baton.models import CheckpointRecord, SessionRecord, SessionStatus
from baton.store.base import AuditStore, BlobStore, CheckpointStore, KeyStore, RunStore
from baton.sync.recaps import DEFAULT_BUDGET as DEFAULT_BUDGET
from baton.sync.recaps import handoff_recap as handoff_recap
from baton.sync.recaps import recap_budget as recap_budget
from baton.workspace import portable
from baton.workspace.archives import archive_stamp, archive_worktree
from baton.workspace.gitcmd import commit_of, is_ancestor, ref_exists, run_git, worktree_status, worktree_tree
from baton.workspace.locks import file_lock
from baton.workspace.workdirs import Workdirs

__all__ = [
    "DEFAULT_BUDGET",
    "CaughtUp",
    "catch_up",
    "changed_files",
    "check_source_agent",
    "handoff_recap",
    "handoff_source",
    "recap_budget",
    "seed_worktree",
]

MAX_FILES = 200  # changed files listed; the rest are counted


# -- who hands off ----------------------------------------------------------------------------------------


def check_source_agent(agent: str, source_agent: str) -> None:
    """BadInput unless ``source_agent`` is a known agent other than ``agent`` (needs no store: the
    runner checks it with the rest of a request, before anything is written)."""
    if source_agent not in AGENTS:
        known = ", ".join(AGENTS)
        raise BadInput(f"unknown agent {source_agent!r} to hand off from: no such agent (known: {known})")
    if source_agent == agent:
        raise BadInput(
            f"{agent} cannot hand off from its own agent: a hand-off comes from another agent (a run "
            "without --handoff-from continues its conversation; --mode fork branches it)"
        )


def handoff_source(store: RunStore, key: Key, source_agent: str) -> tuple[Key, SessionRecord]:
    """The source key (``source_agent``, same repo, same thread) and its session. BadInput (nothing
    written) when the agent is unknown or is the key's own, or the source has no conversation."""
    check_source_agent(key.agent, source_agent)
    source = Key(source_agent, key.repo, key.thread)
    session = store.get_session(source.agent, source.repo.slug, source.thread)
    if session is None:
        raise BadInput(
            f"{source} has no session to hand off: run {source_agent} on this repo and thread first"
        )
    if not session.agent_session_id:
        raise BadInput(f"{source} has no conversation to hand off")
    return source, session


# -- the work ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """The source's work: the branch tip it is on and its state (a checkpoint commit on that tip, or the
    tip itself when nothing is uncommitted), and where it was found, for the run's note."""

    head: str
    commit: str
    where: str


def seed_worktree(
    store: KeyStore, workdirs: Workdirs, source: Key, source_session: SessionRecord, target: Key, branch: str
) -> str | None:
    """Before the target's worktree is prepared (it has no session yet): point ``refs/heads/<branch>``
    at the source's branch tip and the target's checkpoint ref at the source's state, so that
    :meth:`Workdirs.prepare_worktree` builds the target's worktree holding the source's committed,
    uncommitted and untracked work. A worktree of the target left without a session (a hand-off
    refused at launch) is archived and removed first. Returns a note for the run (where the work came
    from); BadInput, before anything is written, when ``branch`` is the source's, is checked out
    elsewhere, or exists at a commit that is not behind the source's tip.

    Two branches, because git checks a branch out in one worktree only, and from here on each agent's
    commits are its own. :meth:`Workdirs.prepare_worktree` checks the branch out and re-applies the
    checkpoint exactly as it rebuilds a lost worktree. A leftover worktree of the target is replaced
    because it would be reused as it is, without the source's work."""
    if branch == source_session.branch:
        raise BadInput(
            f"{target} cannot work on branch {branch!r}: it is {source}'s, and git checks a branch out in "
            "one worktree only; leave --branch out (or name a new branch)"
        )
    cache = workdirs.ensure_cache(source.repo, source.agent, fetch=False)
    state, notes = _source_state(store, workdirs, source, source_session, cache)
    if state is not None:
        _check_branch(workdirs, target, branch, state, cache)
    replaced = _replace_leftover(store, workdirs, target, branch)
    if state is None:
        notes.append(f"no work of {source} was found on this machine or in the store: started from the base")
        return "; ".join([*notes, *replaced])
    _point_refs(workdirs, target, branch, state, cache)
    count = _count_changes(cache, state.head, state.commit)
    uncommitted = f"{count} uncommitted file{'' if count == 1 else 's'}" if count else "nothing uncommitted"
    notes.insert(0, f"handed off from {state.where} at {state.head[:12]} with {uncommitted}")
    if source_session.status == SessionStatus.RUNNING:
        notes.append(f"{source.agent} was running: its work was taken as it was at that moment")
    return "; ".join([*notes, *replaced])


def _replace_leftover(store: AuditStore, workdirs: Workdirs, target: Key, branch: str) -> list[str]:
    """Archive and remove a worktree of the target that has no session (the runner calls this module
    only for a key without one, under its lease): reused, it would not hold the source's work."""
    path = workdirs.worktree_path(target)
    if not path.exists():
        return []
    workdirs.salvage_broken(target, branch)  # a broken one's files: into its checkpoint, archived next
    archive = archive_worktree(workdirs, target, branch, archive_stamp())
    workdirs.remove_worktree_dir(target)
    ref = archive.ref if archive else None
    # lazy: cold CLI
    from baton.sessions.manage import local_actor  # (the session layer: only for a hand-off)

    store.audit("handoff-replace", str(target), local_actor(), {"worktree": str(path), "archive": ref})
    return [f"the worktree {target} had without a session was replaced; it is archived at {ref}"]


def _source_state(
    store: CheckpointStore, workdirs: Workdirs, source: Key, session: SessionRecord, cache: Path
) -> tuple[_State | None, list[str]]:
    """The source's state (see :class:`_State`) and notes on what could not be used. It comes from the
    source's worktree when this machine has it (staged into a throw-away index: the source's index,
    files and refs are never written, since we do not hold its lease), else from the source's branch
    and checkpoint in the cache clone, else from the store's shared checkpoint of another machine
    (:mod:`baton.workspace.portable`). When the store holds a newer state than this machine last
    shared, another machine ran the source since, and the store's state wins (it is what the recap
    describes)."""
    notes: list[str] = []
    record = _store_record(store, source, session.branch, notes)
    newer_elsewhere = record is not None and record.commit_sha != workdirs.read_ref(
        cache, workdirs.shared_ref(source)
    )
    if record is not None and newer_elsewhere:
        found = _store_state(store, workdirs, source, record, cache, notes)
        if found is not None:
            return found, notes
    found = _worktree_state(workdirs, source) or _cache_state(workdirs, source, session.branch, cache)
    if found is None and record is not None and not newer_elsewhere:
        found = _store_state(store, workdirs, source, record, cache, notes)
    return found, notes


def _store_record(
    store: CheckpointStore, source: Key, branch: str, notes: list[str]
) -> CheckpointRecord | None:
    try:
        record = store.get_checkpoint(source.agent, source.repo.slug, source.thread)
    except (BatonError, TypeError, ValueError) as exc:
        notes.append(f"the store's checkpoint of {source} is unreadable ({exc})")
        return None
    return record if record is not None and record.branch == branch else None


def _store_state(
    store: BlobStore, workdirs: Workdirs, source: Key, record: CheckpointRecord, cache: Path, notes: list[str]
) -> _State | None:
    """The store's checkpoint of the source, fetched into the cache (best effort: None with a note)."""
    try:
        head = portable.fetch_commit(store, workdirs, source, record, cache)
    except (BatonError, OSError, ValueError) as exc:
        notes.append(f"the store's checkpoint {record.commit_sha[:12]} of {source} is unusable ({exc})")
        return None
    return _State(head, record.commit_sha, f"{source.agent}'s checkpoint in the store (another machine's)")


def _worktree_state(workdirs: Workdirs, source: Key) -> _State | None:
    """The state of the source's worktree on this machine, committed with a throw-away index (its own
    index and its checkpoint ref untouched); None when there is no worktree."""
    wt = workdirs.worktree_git(source)
    head = wt.commit_of("HEAD") if wt else None
    if wt is None or head is None:
        return None
    where = f"{source.agent}'s worktree"
    status = worktree_status(wt)
    if not status:
        return _State(head, head, where)
    env = {**os.environ, **workdirs.git_env(source.agent)}
    tree = worktree_tree(wt, env, status)
    message = f"baton hand-off of {source}"
    commit = run_git(["commit-tree", tree, "-p", head, "-m", message], cwd=wt.common, env=env)
    return _State(head, commit, where)


def _cache_state(workdirs: Workdirs, source: Key, branch: str, cache: Path) -> _State | None:
    """The source's branch in the cache with its last checkpoint when that is on the branch's tip."""
    head = commit_of(cache, f"refs/heads/{branch}")
    if head is None:
        return None
    checkpoint = workdirs.read_ref(cache, workdirs.checkpoint_ref(source))
    commit = checkpoint if checkpoint and commit_of(cache, f"{checkpoint}^") == head else head
    return _State(head, commit, f"{source.agent}'s branch {branch!r} (its worktree is not on this machine)")


def _check_branch(workdirs: Workdirs, target: Key, branch: str, state: _State, cache: Path) -> None:
    """An existing branch is taken at the source's tip, or behind it when no other worktree has it (a
    fast-forward loses nothing: a hand-off refused at launch, asked again after the source moved on)."""
    current = commit_of(cache, f"refs/heads/{branch}")
    if current in (None, state.head):
        return
    own = workdirs.worktree_path(target)
    elsewhere = [p for p in workdirs.branch_worktrees(target.repo, branch) if p != own]
    if elsewhere or not is_ancestor(cache, current, state.head):
        raise BadInput(
            f"branch {branch!r} already exists at {current[:12]}, not at the hand-off's "
            f"{state.head[:12]}: name a new branch with --branch"
        )


def _point_refs(workdirs: Workdirs, target: Key, branch: str, state: _State, cache: Path) -> None:
    """The target's branch at the source's tip, its checkpoint ref at the source's state."""
    ref = f"refs/heads/{branch}"
    current = commit_of(cache, ref)
    checkpoint = workdirs.checkpoint_ref(target)
    with file_lock(workdirs.home, f"repo:{target.repo.slug}"):
        run_git(["update-ref", ref, state.head, current or ""], cwd=cache)
        if state.commit != state.head:
            run_git(["update-ref", checkpoint, state.commit], cwd=cache)
        elif workdirs.read_ref(cache, checkpoint) is not None:
            run_git(["update-ref", "-d", checkpoint], cwd=cache)  # an old session's: not this work


def _count_changes(cache: Path, old: str, new: str) -> int:
    if old == new:
        return 0
    out = run_git(["diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new], cwd=cache, raw=True)
    return sum(1 for name in out.split("\0") if name)


# -- catching up: a key with a conversation takes the other agent's later work -------------------------------


@dataclass(frozen=True)
class CaughtUp:
    """What :func:`catch_up` did: the target's state before (``old``, a commit) and after (``new``), the
    files that changed between them (as :func:`changed_files` lists them), and a note for the run."""

    old: str
    new: str
    changed: list[str]
    note: str


def catch_up(
    store: KeyStore, workdirs: Workdirs, source: Key, source_session: SessionRecord, target: Key, branch: str
) -> CaughtUp | None:
    """Bring the source's later work into the target's worktree (the target has a conversation of its
    own; the fallback agent handing a thread back, or taking it again): its worktree, branch and
    checkpoint are archived first (nothing is lost), then its branch is moved to the source's tip and
    its checkpoint ref to the source's state, so the worktree prepared next holds the source's
    committed, uncommitted and untracked work. None when the source's work is nowhere to be found or is
    the target's already; BadInput, before anything is written, when the target's branch has work the
    source's does not (the two diverged: nothing is moved)."""
    cache = workdirs.ensure_cache(source.repo, source.agent, fetch=False)
    state, notes = _source_state(store, workdirs, source, source_session, cache)
    own = _worktree_state(workdirs, target) or _cache_state(workdirs, target, branch, cache)
    if state is None or (own is not None and own.commit == state.commit):
        return None
    _check_branch(workdirs, target, branch, state, cache)
    old = own.commit if own is not None else state.head
    archive = archive_worktree(workdirs, target, branch, archive_stamp())
    workdirs.remove_worktree_dir(target)
    _point_refs(workdirs, target, branch, state, cache)
    # lazy: cold CLI
    from baton.sessions.manage import local_actor  # (the session layer: only for a catch-up)

    ref = archive.ref if archive else None
    store.audit("handoff-catch-up", str(target), local_actor(), {"from": str(source), "archive": ref})
    changed = _changes(cache, old, state.commit)
    note = f"took {state.where}'s later work at {state.head[:12]}; this key's own state is archived at {ref}"
    return CaughtUp(old, state.commit, changed, "; ".join([note, *notes]))


def _changes(cache: Path, old: str, new: str, limit: int = MAX_FILES) -> list[str]:
    out = run_git(["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new], cwd=cache, raw=True)
    fields = out.split("\0")
    lines = [f"{status} {_printable(path)}" for status, path in zip(fields[0::2], fields[1::2], strict=False)]
    lines = [line for line in lines if line.strip()]
    return [*lines[:limit], f"... and {len(lines) - limit} more"] if len(lines) > limit else lines


# -- what changed -----------------------------------------------------------------------------------------


def changed_files(
    workdirs: Workdirs,
    source: Key,
    source_session: SessionRecord,
    store: CheckpointStore | None = None,
    limit: int = MAX_FILES,
) -> list[str]:
    """Files the source changed: its state (branch tip and uncommitted work) against the merge-base with
    its base (``source_session.base``, else the default branch), as ``"M path"``, ``"A path"`` or
    ``"D path"``; at most ``limit`` of them, then ``"... and N more"``. ``store``: also look at the
    store's checkpoint when another machine ran the source since (it must be in the cache already, as
    :func:`seed_worktree` leaves it). Empty when the source's work is nowhere to be found."""
    cache = workdirs.cache_path(source.repo)
    if not (cache / "HEAD").is_file():
        return []
    state = _local_state(workdirs, source, source_session, store, cache)
    if state is None:
        return []
    return _changes(cache, _merge_base(workdirs, cache, source_session.base, state), state, limit)


def _local_state(
    workdirs: Workdirs, source: Key, session: SessionRecord, store: CheckpointStore | None, cache: Path
) -> str | None:
    """The source's state as far as this machine's cache knows it, without fetching anything."""
    if store is not None:
        notes: list[str] = []
        record = _store_record(store, source, session.branch, notes)
        shared = workdirs.read_ref(cache, workdirs.shared_ref(source))
        if record is not None and record.commit_sha != shared and commit_of(cache, record.commit_sha):
            return record.commit_sha
    found = _worktree_state(workdirs, source) or _cache_state(workdirs, source, session.branch, cache)
    return found.commit if found else None


def _merge_base(workdirs: Workdirs, cache: Path, base: str | None, state: str) -> str:
    """Where the source's work forked from its base; the empty tree when they share no history."""
    candidates = [f"refs/remotes/origin/{base}", base] if base else []
    resolved = next((ref for ref in candidates if ref_exists(cache, ref)), None)
    try:
        return run_git(["merge-base", resolved or workdirs.default_base(cache), state], cwd=cache)
    except GitError:
        return run_git(["hash-object", "-t", "tree", "--stdin"], cwd=cache, stdin="")


def _printable(path: str) -> str:
    """A path on one line: control characters (a newline in a file name) escaped."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")
