"""A key's checkpoint, and a worktree brought to one: the git jobs
:class:`~baton.workspace.workdirs.Workdirs` hands over (its ``checkpoint`` and ``catch_up`` are these;
:func:`reapply`, a checkpoint re-applied on a branch that moved on while the worktree was gone).

- :func:`take`: the worktree's uncommitted state (tracked and untracked, .gitignore respected) as a commit
  on top of HEAD, under ``refs/baton/checkpoints/<agent>/<thread>`` in the cache clone, staged into a copy
  of the worktree's own index (its stat data spares re-hashing unchanged files) — unless the worktree is
  as the last checkpoint left it (:mod:`~baton.workspace.checkmemo`).
- :func:`catch_up`: the worktree brought to a branch tip with a checkpoint re-applied, after
  :mod:`~baton.workspace.portable` moved the refs to what another machine left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from baton.errors import GitError
from baton.files import archive_stamp
from baton.keys import Key, Repo
from baton.workspace import checkmemo
from baton.workspace.gitcmd import (
    WorktreeGit,
    checkout_changes,
    commit_of,
    parallel_checkout,
    run_git,
    worktree_status,
    worktree_tree,
    worktree_tree_staged,
)


class Dirs(Protocol):
    """What these jobs ask of :class:`~baton.workspace.workdirs.Workdirs`."""

    @property
    def home(self) -> Path: ...
    def cache_path(self, repo: Repo) -> Path: ...
    def checkpoint_ref(self, key: Key) -> str: ...
    def worktree_git(self, key: Key) -> WorktreeGit | None: ...
    def head_commit(self, key: Key, worktree: Path | None = None) -> str | None: ...
    def process_env(self, agent: str) -> dict[str, str]: ...
    @staticmethod
    def read_ref(cache: Path, ref: str) -> str | None: ...


def take(dirs: Dirs, key: Key) -> str | None:
    """Record the key's worktree's uncommitted state; returns the checkpoint commit, or None if clean
    (or there is no usable worktree).

    A clean worktree costs one ``git status`` (which uses the index's stat cache). A dirty one is
    staged into a *copy* of the worktree's own index — stat data included, so only changed files are
    re-hashed — never into the index itself; unless it is as the last checkpoint left it
    (:mod:`~baton.workspace.checkmemo`): then it is that commit, and nothing is staged."""
    wt = dirs.worktree_git(key)
    if wt is None:
        return None
    ref, cache = dirs.checkpoint_ref(key), dirs.cache_path(key.repo)
    status, previous = worktree_status(wt), dirs.read_ref(cache, ref)
    if not status:
        if previous is not None:
            run_git(["update-ref", "-d", ref], cwd=cache)
        return None
    head = dirs.head_commit(key)
    memo = checkmemo.load(dirs.home, key)
    if memo and memo.commit == previous and checkmemo.holds(memo, wt.path, head, status):
        return previous  # the worktree as the last checkpoint left it (see checkmemo)
    if previous and head and (memo is None or memo.commit != previous):  # the ref moved: a take-over
        memo = _memo_of(wt, head, previous, status)
        if memo is not None and checkmemo.holds(memo, wt.path, head, status):
            checkmemo.save(dirs.home, key, memo)
            return previous
    commit, staged = _stage(dirs, key, wt, status, previous)
    if head is not None and staged is not None:
        checkmemo.save(dirs.home, key, checkmemo.Memo(head, status, commit, staged))
    return commit


def _stage(
    dirs: Dirs, key: Key, wt: WorktreeGit, status: str, previous: str | None
) -> tuple[str, dict[str, tuple[str, str] | None] | None]:
    """The checkpoint commit of the worktree (``previous`` when it holds the same tree), and what was
    staged for the paths ``status`` names (None when it cannot be memoised)."""
    env, named = dirs.process_env(key.agent), checkmemo.paths(status)
    if named is None:
        tree, staged = worktree_tree(wt, env, status), None
    else:
        tree, staged = worktree_tree_staged(wt, env, status, named)
    if previous is not None and _same(wt, previous, tree):
        return previous, staged  # unchanged since: the same commit, so nothing new to share
    commit = wt.run(["commit-tree", tree, "-p", "HEAD", "-m", f"baton checkpoint of {key}"], env=env)
    run_git(["update-ref", dirs.checkpoint_ref(key), commit], cwd=dirs.cache_path(key.repo))
    return commit, staged


def _memo_of(wt: WorktreeGit, head: str, commit: str, status: str) -> checkmemo.Memo | None:
    """The memo checkpoint ``commit`` would have left, from its diff with ``head``: what it holds at
    each path it changes; None when its one parent is not ``head`` (then it is staged as usual). When
    the memo holds (:func:`checkmemo.holds`: the status names exactly those paths, the others are
    HEAD's in the worktree too, and each named file hashes to its entry), the worktree is exactly that
    checkpoint. So the first checkpoint after the ref was moved here (a worker that took the key over
    and brought its worktree to the store's checkpoint, a worktree rebuilt from it) costs one git
    process, not a staging."""
    try:
        listed = wt.run(["diff-tree", "-r", "-z", "--no-renames", "--format=%P", commit], raw=True)
    except GitError:
        return None
    fields = listed.split("\0")
    if fields[0] != head:
        return None  # another parent, or more than one
    staged: dict[str, tuple[str, str] | None] = {}
    for meta, rel in zip(fields[1::2], fields[2::2], strict=False):
        parts = meta.lstrip("\n").split(" ")
        if len(parts) != 5:
            return None
        staged[rel] = None if parts[1] == "000000" else (parts[1], parts[3])
    return checkmemo.Memo(head, status, commit, staged)


def _same(wt: WorktreeGit, commit: str, tree: str) -> bool:
    """Whether checkpoint ``commit`` already holds ``tree`` on top of the worktree's HEAD."""
    try:
        found = wt.run(["rev-parse", "HEAD", f"{commit}^{{tree}}", f"{commit}^"]).split()
    except GitError:
        return False
    return found[1:] == [tree, found[0]]


def catch_up(
    dirs: Dirs,
    key: Key,
    branch: str,
    since: tuple[str, str] | None = None,
    target: tuple[str, str] | None = None,
) -> None:
    """Bring the key's existing worktree to ``branch``'s tip with the key's checkpoint re-applied. Files
    git would track that are not in that state are removed (the caller archived them first); ignored
    ones (build outputs, dependencies) stay, as they would on a branch switch.

    ``since``: (HEAD, state) — the worktree is known to be on ``branch`` at that HEAD holding that
    state (its checkpoint commit, or HEAD when clean): then only the files that differ are written.
    ``target``: (tip, state) as the caller just set them (the refs are then not read again)."""
    wt = dirs.worktree_git(key)
    if wt is None:
        raise GitError(f"the worktree of {key} is missing or broken")
    env = dirs.process_env(key.agent)
    tip, state = target or _target(dirs, key, branch)
    on_branch = wt.head() == f"ref: refs/heads/{branch}"
    if since is not None and on_branch:
        if since[0] != tip:
            wt.run(["reset", "--quiet", "--mixed"], env=env)  # the index to the new tip
        checkout_changes(wt, since[1], state)
        return
    if not on_branch:
        wt.run([*parallel_checkout(), "checkout", "--force", "--quiet", branch], env=env)
    wt.run(["reset", "--hard", "--quiet", "HEAD"], env=env)
    wt.run(["clean", "-d", "--force", "--quiet"], env=env)
    if state != tip:
        checkout_changes(wt, tip, state)


def _target(dirs: Dirs, key: Key, branch: str) -> tuple[str, str]:
    """``branch``'s tip and the state to bring a worktree to: the key's checkpoint when it sits on that
    tip, else the tip itself."""
    cache = dirs.cache_path(key.repo)
    tip = commit_of(cache, f"refs/heads/{branch}")
    if tip is None:
        raise GitError(f"branch {branch!r} is missing")
    checkpoint = dirs.read_ref(cache, dirs.checkpoint_ref(key))
    return tip, checkpoint if checkpoint and commit_of(cache, f"{checkpoint}^") == tip else tip


def reapply(dirs: Dirs, key: Key, wt: WorktreeGit, head: str, checkpoint: str, parent: str) -> str:
    """A worktree just rebuilt at ``head``, whose branch moved on from ``parent`` since the key's
    ``checkpoint`` was taken there: the checkpoint's changes written on top (a 3-way merge whose base
    is ``parent``, of a throw-away commit of ``head``'s tree on ``parent`` and the checkpoint) and the
    checkpoint ref moved onto ``head``; when they conflict, the worktree stays ``head``'s and the
    checkpoint is kept under ``refs/baton/archive/...`` (the next checkpoint of a clean worktree drops
    the checkpoint ref). The note that says which. The caller holds the repo's lock."""
    cache, env = dirs.cache_path(key.repo), dirs.process_env(key.agent)
    message = ["-m", f"baton checkpoint of {key}"]
    try:
        ours = run_git(["commit-tree", f"{head}^{{tree}}", "-p", parent, *message], cwd=cache, env=env)
        tree = run_git(["merge-tree", "--write-tree", "--no-messages", ours, checkpoint], cwd=cache)
    except GitError:  # exit 1: a conflict (or a git failure): kept, not applied
        ref = f"refs/baton/archive/{key.agent}/{key.thread}/{archive_stamp()}-checkpoint"
        run_git(["update-ref", ref, checkpoint], cwd=cache)
        return (
            f"the last checkpoint {checkpoint[:12]} (taken on {parent[:12]}) conflicts with the branch's "
            f"commits since: not re-applied, kept at {ref}"
        )
    checkout_changes(wt, head, tree.splitlines()[0])
    moved = run_git(["commit-tree", tree.splitlines()[0], "-p", head, *message], cwd=cache, env=env)
    run_git(["update-ref", dirs.checkpoint_ref(key), moved, checkpoint], cwd=cache)
    return f"the last checkpoint (taken on {parent[:12]}) re-applied on the branch's new tip {head[:12]}"
