"""A key's relation to the rest of the repository: the base its branch follows (the default branch, a
named one, or another thread's branch when stacked: :func:`base_ref`) and bringing what moved there
into its worktree: before a turn (``--sync merge|rebase``: :func:`sync_before_turn`, its report going
into the turn's prompt and onto its run), and between turns (``baton sync``: :func:`sync_thread`; a
merged upstream thread: :func:`restack`, whose report waits in the session, ``pending_sync``, until
the next turn tells the agent). A stacked key's session records the thread it is stacked on and the
commit it started from (``base_sha``, where a later rebase replays from).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from baton.errors import BadInput, BatonError
from baton.keys import Key, key_of
from baton.models import OnConflict, SessionRecord, SessionStatus, SyncHow
from baton.settings import Settings
from baton.store.base import KeyStore, RunStore
from baton.store.branchlease import branch_lease
from baton.store.leases import held, key_lease
from baton.sync.engine import SyncReport, recover_interrupted_sync, sync_worktree
from baton.sync.report import join_notes
from baton.sync.sharing import take_branch
from baton.workspace import portable
from baton.workspace.workdirs import Workdirs


def upstream_session(store: RunStore, key: Key, thread: str) -> SessionRecord:
    """The session a new key of ``key``'s repo stacks on: thread ``thread`` of the same agent, else of the
    one agent that has it. BadInput (nothing written) when there is none or it is ambiguous."""
    if thread == key.thread:
        raise BadInput(f"thread {thread!r} cannot be stacked on itself")
    own = store.get_session(key.agent, key.repo.slug, thread)
    if own is not None:
        return own
    found = [s for s in store.list_sessions(repo=key.repo.slug) if s.thread == thread]
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInput(f"thread {thread!r} has no session in {key.repo.slug}: there is no branch to stack on")
    agents = ", ".join(sorted(s.agent for s in found))
    raise BadInput(
        f"thread {thread!r} has sessions of several agents ({agents}) in {key.repo.slug}: ambiguous"
    )


def base_ref(session: SessionRecord) -> str | None:
    """What a key's branch follows: the upstream thread's local branch when stacked, else the base's name
    (the remote's branch of that name, or a tag: :func:`baton.sync.engine.sync_worktree` resolves it), or None
    for the repository's default branch."""
    if session.base_thread and session.base:
        return f"refs/heads/{session.base}"
    return session.base


def sync_before_turn(
    workdirs: Workdirs, key: Key, session: SessionRecord, how: SyncHow, on_conflict: OnConflict
) -> tuple[SyncReport | None, str | None]:
    """Finish what a killed sync left, then sync (``how`` off: only the former). Returns the report (None:
    no sync asked) and a note for the run when an interrupted sync had to be undone. The sync fetches and
    integrates the remote branch (people's pushes) and the moved base, keeping the agent's uncommitted
    work; a conflict with the default ``stop`` ends the run ``conflict`` before the agent starts, the
    worktree exactly as it was."""
    worktree = workdirs.worktree_path(key)
    note = recover_interrupted_sync(workdirs, key, worktree)
    if how == SyncHow.OFF:
        return None, note
    report = sync_worktree(
        workdirs,
        key,
        worktree,
        session.branch,
        base_ref(session),
        session.base_sha,
        how,
        on_conflict,
    )
    if report.base_sha:
        session.base_sha = report.base_sha
    return report, note


# -- stacked threads: the upstream was merged --------------------------------------------------------


@dataclass
class Synced:
    """What a sync between turns did for one key (None report: the key had no session any more)."""

    key: Key
    report: SyncReport | None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        failed = self.error is not None
        return {
            "key": str(self.key),
            "result": "failed" if failed else (self.report.result if self.report else "skipped"),
            "summary": self.error if failed else (self.report.summary() if self.report else "no session"),
            "sync": self.report.to_json() if self.report else None,
        }


def downstream(
    store: RunStore, repo: str, thread: str | None = None, branch: str | None = None
) -> list[SessionRecord]:
    """The sessions of ``repo`` stacked on thread ``thread``, or on a thread whose branch is ``branch``."""
    return [
        s
        for s in store.list_sessions(repo=repo)
        if s.base_thread
        and s.status != SessionStatus.CLOSED  # a closed one keeps its state (an archived one is never stored)
        and (s.base_thread == thread or (branch is not None and s.base == branch))
    ]


def restack(
    settings: Settings,
    store: KeyStore,
    repo: str,
    thread: str | None = None,
    branch: str | None = None,
    wait: float = 600.0,
) -> list[Synced]:
    """A thread (by name, or by its branch) was merged: rebase each thread stacked on it onto the default
    branch (under its lease, waiting up to ``wait`` s for a running turn), record the default branch as its
    base and keep the report for its next turn. A conflict leaves that worktree as it was; the next turn
    with ``--sync rebase`` tries again (``--on-conflict agent`` lets the agent resolve it)."""
    sessions = downstream(store, repo, thread, branch)
    return [_guarded(settings, store, s, SyncHow.REBASE, True, wait) for s in sessions]


def sync_thread(
    settings: Settings,
    store: KeyStore,
    repo: str,
    thread: str,
    how: SyncHow,
    merged: bool = False,
    wait: float = 0.0,
) -> list[Synced]:
    """``baton sync``: sync every key of ``thread`` with upstream now (no turn), then its downstream
    threads: restacked onto the default branch when ``merged``, else brought onto its branch's new tip."""
    own = [s for s in store.list_sessions(repo=repo) if s.thread == thread]
    if not own:
        raise BadInput(f"thread {thread!r} has no session in {repo}")
    done = [_guarded(settings, store, s, how, False, wait) for s in own]
    return done + [_guarded(settings, store, s, how, merged, wait) for s in downstream(store, repo, thread)]


def _guarded(
    settings: Settings, store: KeyStore, session: SessionRecord, how: SyncHow, onto_default: bool, wait: float
) -> Synced:
    key = key_of(session)
    try:
        return Synced(key, sync_key(settings, store, key, how, onto_default, wait))
    except (BatonError, OSError) as exc:  # busy, git, the remote: said for people
        return Synced(key, None, str(exc))
    except Exception as exc:
        return Synced(key, None, f"{type(exc).__name__}: {exc}")


def sync_key(
    settings: Settings, store: KeyStore, key: Key, how: SyncHow, onto_default: bool = False, wait: float = 0.0
) -> SyncReport | None:
    """Sync one key's worktree with upstream between turns, under its lease and its branch's (``wait``
    seconds for both; BranchBusy while another key's run writes the branch) (``onto_default``: its stacked
    upstream was merged, so rebase it onto the default branch and make that its base). A conflict leaves
    the worktree as it was. The report waits in the session for the next turn's prompt."""
    lease = key_lease(settings, store, key.id)
    deadline = time.monotonic() + wait
    with contextlib.ExitStack() as leases:
        lost = leases.enter_context(held(lease, wait, settings.heartbeat, threading.Event()))
        session = store.get_session(key.agent, key.repo.slug, key.thread)
        if session is None:
            return None  # reset meanwhile
        # it moves the key's branch: one writer per branch, as a run (baton.store.branchlease)
        branch = branch_lease(settings, store, key.repo.slug, session.branch, key.id, "sync")
        left = max(0.0, deadline - time.monotonic())
        leases.enter_context(held(branch, left, settings.heartbeat, threading.Event(), on_loss=lost))
        workdirs = Workdirs(settings)
        taken = take_branch(workdirs, store, key, session.branch)  # another key of this machine had it
        made, _note = portable.worktree_from_store(store, workdirs, key, session.branch, session.base)
        ref = base_ref(session)
        if onto_default:
            ref = workdirs.default_base(workdirs.cache_path(key.repo))
            session.base_thread = None  # the default branch is the base from now on
            session.base = ref.removeprefix("refs/remotes/origin/").removeprefix("refs/heads/")
            how = SyncHow.REBASE
        report = sync_worktree(
            workdirs, key, made.path, session.branch, ref, session.base_sha, how, OnConflict.STOP
        )
        session.base_sha = report.base_sha or session.base_sha
        report.note = join_notes(taken.note, report.note)
        if report.result != "unchanged":
            session.pending_sync = report.to_json()
        store.save_session(session, fence=lease.proof)
        if report.result == "integrated":
            portable.publish_checkpoint(store, workdirs, key, made.path, session.branch, lease.proof)
        return report
