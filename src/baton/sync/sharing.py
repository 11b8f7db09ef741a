"""One branch, several keys, one machine: the key about to write a branch takes it under the branch's
lease (:func:`take_branch`; the runner before it prepares a turn, ``baton sync`` and the forge's
publish before they move the branch): every other key's worktree still on the branch is parked
(:mod:`baton.workspace.parking`), and the key's own worktree, if it was parked, is brought back onto the
branch's tip — which the other key may have moved — with its uncommitted work re-applied on top
(a 3-way merge from where it was parked), or refused with nothing changed (:class:`BranchConflict`).
Nothing happens at the end of a turn: a worktree a turn left on its branch stays on it (a key alone on
its branch sees no change), and one a run killed with SIGKILL left there is parked like any other.
The order of the writes makes a take killed at any step finished by the next (:func:`_follow`).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from baton.errors import BranchConflict
from baton.keys import Key, key_of
from baton.models import SessionRecord
from baton.sync.engine import recover_interrupted_sync
from baton.sync.fetch import prefetch
from baton.sync.git import SHA, SyncGit
from baton.sync.plan import is_ancestor, reapply
from baton.sync.report import join_notes
from baton.workspace import gitlinks, parking
from baton.workspace.archives import archive_stamp, archive_worktree
from baton.workspace.gitcmd import WorktreeGit, checkout_changes, run_git
from baton.workspace.locks import file_lock
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.sync")
SHOWN = 20  # the new commits a turn is told about, at most


Stop = Callable[[Key], object]


class Sessions(Protocol):
    def list_sessions(self, agent: str | None = None, repo: str | None = None) -> list[SessionRecord]: ...


@dataclass(frozen=True)
class Taken:
    """What taking the branch did: a note for the run's record, and what the agent is told (the
    branch moved under its conversation) before its instruction."""

    note: str | None = None
    text: str = ""


def take_branch(
    workdirs: Workdirs, store: Sessions, key: Key, branch: str, stop: Stop | None = None
) -> Taken:
    """Make ``branch`` the key's: park every other worktree of this machine on it, and bring the key's
    own worktree back onto it if it was parked. The caller holds the branch's lease.

    1. **Other holders parked** (:func:`baton.workspace.parking.park`: checkpointed, HEAD detached at the
       same commit, no file changed). A holder that is no key working on this branch (its agent switched
       there, a worktree made by hand), or one with a merge, rebase, cherry-pick or bisect in progress,
       is not touched: :class:`BranchConflict`.
    2. **The key's own worktree back on the branch** when it was parked: at the branch's tip with its
       uncommitted work re-applied on top (:func:`baton.sync.plan.reapply`, whose merge base is the
       commit it was parked at); only the files that differ are written. Commits made in a parked
       worktree (by hand) fast-forward the branch when they descend from its tip. A branch rewritten
       since (a rebase, a reset) is followed, the worktree's old state archived first. Uncommitted work
       that conflicts with the new commits, or commits the branch lacks while it moved on too:
       :class:`BranchConflict`, the worktree left as it was.

    :class:`BranchConflict` when it cannot (nothing changed). ``stop``: called with each key whose
    worktree is about to be parked, to end what its dead runs left running there (the runner's
    :func:`~baton.runner.crashed.stop_left_running`); without it, that key's next run ends them."""
    cache = workdirs.cache_path(key.repo)
    if not (cache / "HEAD").is_file():
        return Taken()  # no cache clone yet: no worktree of the repo either
    # the key's own worktree first: one whose first run was killed after ``git worktree add`` still has
    # git's name for its admin dir, and is adopted here, not refused below as a stranger's
    wt = workdirs.worktree_git(key)
    own = gitlinks.admin_name(key)
    others = [name for name in parking.holders(cache, branch) if name != own]
    parked = _park_others(workdirs, store, key, branch, others, stop) if others else []
    taken = _unpark(workdirs, key, wt, branch) if wt is not None else Taken()
    if parked:
        said = f"parked the worktree of {', '.join(parked)} (on {branch!r}, which this key writes now)"
        taken = Taken(join_notes(said, taken.note), taken.text)
    return taken


# -- 1. the other holders ---------------------------------------------------------------------------------


def _park_others(
    workdirs: Workdirs, store: Sessions, key: Key, branch: str, names: list[str], stop: Stop | None
) -> list[str]:
    """Park the keys' worktrees ``names`` (admin dirs holding ``branch``); the keys parked."""
    keys = {gitlinks.admin_name(k): k for k in _keys_on(store, key, branch)}
    strangers = [name for name in names if name not in keys]
    if strangers:  # a worktree gone without a prune still names the branch: prune, then look again
        cache = workdirs.cache_path(key.repo)
        with file_lock(workdirs.home, f"repo:{key.repo.slug}"):
            run_git(["worktree", "prune"], cwd=cache)
        strangers = [name for name in parking.holders(cache, branch) if name in strangers]
    if strangers:
        raise BranchConflict(
            f"branch {branch!r} of {key.repo.slug} is checked out in the worktree {strangers[0]!r} of "
            f"{workdirs.cache_path(key.repo)}, which belongs to no key working on that branch (its agent "
            "switched to it, or it was made by hand): switch that worktree to another branch, or remove it"
        )
    done = []
    for name in names:
        holder = keys.get(name)
        if holder is not None and _park_one(workdirs, holder, branch, stop):
            done.append(str(holder))
    return done


def _keys_on(store: Sessions, key: Key, branch: str) -> Iterable[Key]:
    """The other keys of the repository whose sessions work on ``branch`` (their runs take its lease)."""
    for session in store.list_sessions(repo=key.repo.slug):
        if session.branch == branch and (session.agent, session.thread) != (key.agent, key.thread):
            yield key_of(session)


def _park_one(workdirs: Workdirs, holder: Key, branch: str, stop: Stop | None) -> bool:
    """Park one holder's worktree: what its dead runs left running is ended and a sync of it that was
    killed is undone first; one with an operation in progress is refused."""
    wt = workdirs.worktree_git(holder)
    if wt is None:  # its directory is gone (or broken): git's record of it, which claims the branch, too
        with file_lock(workdirs.home, f"repo:{holder.repo.slug}"):
            run_git(["worktree", "prune"], cwd=workdirs.cache_path(holder.repo))
        return False
    if stop is not None:
        stop(holder)  # an agent whose runner was killed mid-turn must not write on in a parked worktree
    note = recover_interrupted_sync(workdirs, holder, wt.path)
    if note:
        log.warning("%s, before parking the worktree of %s", note, holder)
    busy = SyncGit(workdirs, holder, wt, branch).in_progress()
    if busy is not None:
        raise BranchConflict(
            f"branch {branch!r} is checked out in the worktree of {holder} with a {busy} in progress "
            f"({wt.path}): that key's next turn finishes it, or finish or abort it there; then run again"
        )
    return parking.park(workdirs, holder, branch) is not None


# -- 2. the key's own worktree ----------------------------------------------------------------------------


def _unpark(workdirs: Workdirs, key: Key, wt: WorktreeGit, branch: str) -> Taken:
    """Bring the key's worktree back onto ``branch`` when it was parked (see the module docstring)."""
    head = wt.head() or ""
    parked = workdirs.read_ref(wt.common, workdirs.parked_ref(key))
    if head == f"ref: refs/heads/{branch}":
        if parked is not None:
            parking.drop_parked(workdirs, key)  # put back on it, then killed before the ref went
        return Taken()
    if parked is None or not SHA.fullmatch(head):
        return Taken()  # on another branch, or detached by its agent: its choice, kept
    g = SyncGit(workdirs, key, wt, branch)
    busy = g.in_progress()
    if busy is not None:
        raise BranchConflict(
            f"the worktree of {key} was parked off {branch!r} and has a {busy} in progress since "
            f"({wt.path}): finish or abort it there, then run again"
        )
    tip = g.ref(f"refs/heads/{branch}")
    if tip is None:
        g.git("update-ref", f"refs/heads/{branch}", head, "")
        _attach(g, workdirs, key, branch)
        return Taken(f"branch {branch!r} was gone: made again at {head[:12]}, where this worktree was")
    if tip == head:
        _attach(g, workdirs, key, branch)
        return Taken()
    if head != parked and is_ancestor(g, tip, head):
        g.git("update-ref", "-m", "baton: commits of a parked worktree", f"refs/heads/{branch}", head, tip)
        _attach(g, workdirs, key, branch)
        return Taken(f"the commits made in this worktree while it was parked moved {branch!r} to {head[:12]}")
    if head != parked and not is_ancestor(g, head, tip):
        raise BranchConflict(
            f"the worktree of {key} is at {head[:12]}, with commits made since it was parked at "
            f"{parked[:12]} that branch {branch!r} lacks, and the branch moved on to {tip[:12]} meanwhile: "
            f"rebase them onto it there (`git -C {shlex.quote(str(wt.path))} rebase {shlex.quote(branch)}`), "
            "then run again; nothing was changed"
        )
    return _follow(g, workdirs, key, branch, head, tip)


def _follow(g: SyncGit, workdirs: Workdirs, key: Key, branch: str, head: str, tip: str) -> Taken:
    """The parked worktree at ``head`` brought to the branch's ``tip``, its uncommitted work kept. The
    files first (HEAD still detached where it was parked, so a take killed here merges again from
    there), then index and HEAD at the tip (killed here: HEAD is at the tip, the next take attaches or
    follows from it), then HEAD on the branch, then the parked ref dropped."""
    checkpoint = workdirs.checkpoint(key)
    tree = g.tree_of(tip)
    if checkpoint is not None:
        tree, conflicts = reapply(g, head, tree, checkpoint, labels=False)
        if conflicts:
            shown = ", ".join(conflicts[:10]) + (", ..." if len(conflicts) > 10 else "")
            raise BranchConflict(
                f"another key moved branch {branch!r} from {head[:12]} to {tip[:12]} while the worktree "
                f"of {key} was parked, and its uncommitted changes conflict with those commits in "
                f"{shown}: undo them there, or put them aside (`git -C {shlex.quote(str(g.worktree))} "
                f"stash`; they are also kept in {workdirs.checkpoint_ref(key)}), then run again; nothing was "
                "changed"
            )
    rewritten = not is_ancestor(g, head, tip)
    kept = archive_worktree(workdirs, key, branch, archive_stamp()) if rewritten else None
    old = checkpoint or head
    prefetch(g, old, tree)
    checkout_changes(g.wt, old, tree)  # the files first: a kill here leaves HEAD where it was parked
    g.git("reset", "--quiet", "--mixed", tip)
    _attach(g, workdirs, key, branch)
    workdirs.checkpoint(key)  # its checkpoint ref on the new tip
    commits = g.git("log", f"--max-count={SHOWN}", "--format=- %h %s", f"{head}..{tip}")
    count = int(g.git("rev-list", "--count", f"{head}..{tip}"))
    how = "was rewritten" if rewritten else f"gained {count} commit{'s' * (count != 1)}"
    note = f"{branch!r} {how} while this worktree was parked: brought from {head[:12]} to {tip[:12]}"
    if kept is not None:
        note += f"; its former state is kept at {kept.ref}"
    text = (
        f"Branch {branch} {how} since your last turn: another conversation works on it too. Your "
        f"working directory was brought from {head[:12]} to {tip[:12]}"
        + (", your uncommitted changes kept on top" if checkpoint else "")
        + (f". The new commits:\n{commits}" if commits and not rewritten else ".")
    )
    return Taken(note, text)


def _attach(g: SyncGit, workdirs: Workdirs, key: Key, branch: str) -> None:
    """HEAD back on ``branch`` (which nobody else holds: the caller parked them under the lease),
    then the parked ref dropped."""
    with file_lock(workdirs.home, f"repo:{key.repo.slug}"):
        others = [n for n in parking.holders(g.cache, branch) if n != gitlinks.admin_name(key)]
        if others:  # taken meanwhile by something that does not hold the lease
            raise BranchConflict(f"branch {branch!r} was checked out in {others[0]!r} meanwhile: run again")
        g.git("symbolic-ref", "-m", "baton: back on its branch", "HEAD", f"refs/heads/{branch}")
    parking.drop_parked(workdirs, key)
