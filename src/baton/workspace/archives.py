"""Archives: what baton keeps of a key's work before it removes it (a reset now; cleanup and expiry
next). A worktree archive is one commit under ``refs/baton/archive/<agent>/<thread>/<stamp>`` in the
repo's cache clone (``repos/<slug>.git``), whose tree is the worktree as it is and whose parents keep
the agent's commits reachable (:func:`archive_worktree`). Getting the work back is plain git
(:meth:`WorktreeArchive.restore_command` prints it: ``git -C <cache> worktree add <dir> <ref>``, or
``git -C <cache> branch <name> <ref>`` to continue on a branch); :func:`restore_worktree` does the
first from Python.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from baton.errors import BadInput
from baton.files import archive_stamp as archive_stamp  # re-exported: the reset's stamp
from baton.keys import Key
from baton.workspace.gitcmd import commit_of, run_git, worktree_status, worktree_tree
from baton.workspace.workdirs import Workdirs

ARCHIVE_PREFIX = "refs/baton/archive"


@dataclass(frozen=True)
class WorktreeArchive:
    """One archive: the ref, the commit it names, and the cache clone it lives in."""

    ref: str
    commit: str
    cache: Path
    branch_tip: str | None  # the branch's commit when it was archived (delete the branch only there)

    def restore_command(self, directory: str = "DIR") -> str:
        """The git command that checks the archive out into ``directory``."""
        return f"git -C {shlex.quote(str(self.cache))} worktree add {shlex.quote(directory)} {self.ref}"


def archive_prefix(key: Key) -> str:
    return f"{ARCHIVE_PREFIX}/{key.agent}/{key.thread}"  # the cache clone is the repo's own: no slug


def archive_worktree(workdirs: Workdirs, key: Key, branch: str, stamp: str) -> WorktreeArchive | None:
    """Archive the key's worktree, ``branch`` and checkpoint under a new ref; None when there is no commit
    to keep (no cache clone, no branch, no worktree). Nothing is removed here.

    The archive commit's **tree** is the worktree as it is — uncommitted and untracked files included,
    ``.gitignore`` respected — or, when the worktree is already gone, its last checkpoint. Its
    **parents** are the worktree's ``HEAD``, the key's branch tip when that differs, and (worktree
    gone) the last checkpoint: a force-deleted branch leaves its commits dangling until ``git gc``
    prunes them, and one archive ref keeps the agent's commits *and* its uncommitted work reachable.
    When there is nothing uncommitted and a single parent, the ref points at that commit itself. The
    ref's stamp is the UTC time of the reset (``20250102T030405Z``)."""
    cache = workdirs.cache_path(key.repo)
    if not (cache / "HEAD").is_file():
        return None
    wt = workdirs.worktree_git(key)
    head = wt.commit_of("HEAD") if wt else None
    tip = commit_of(cache, f"refs/heads/{branch}")
    checkpoint = None if wt else commit_of(cache, workdirs.checkpoint_ref(key))
    parents = list(dict.fromkeys(c for c in (head, tip, checkpoint) if c))
    if not parents:
        return None
    env = {**os.environ, **workdirs.git_env(key.agent)}
    if wt and worktree_status(wt):
        tree = worktree_tree(wt, env)
    else:
        tree = run_git(["rev-parse", f"{checkpoint or parents[0]}^{{tree}}"], cwd=cache)
    commit = parents[0]
    if len(parents) > 1 or tree != run_git(["rev-parse", f"{commit}^{{tree}}"], cwd=cache):
        args = ["commit-tree", tree, *(f"-p{p}" for p in parents), "-m", f"baton archive of {key} ({stamp})"]
        commit = run_git(args, cwd=cache, env=env)
    ref = _create_ref(cache, f"{archive_prefix(key)}/{stamp}", commit)
    return WorktreeArchive(ref, commit, cache, tip)


def _create_ref(cache: Path, ref: str, commit: str) -> str:
    """Create ``ref`` (never overwrite one: ``-2``, ``-3``, ... when the name is taken, as a second
    archive in the same second is)."""
    name, n = ref, 1
    while commit_of(cache, name) is not None:
        n += 1
        name = f"{ref}-{n}"
    run_git(["update-ref", name, commit, ""], cwd=cache)
    return name


def list_archives(workdirs: Workdirs, key: Key) -> list[str]:
    """The key's archive refs, oldest first."""
    cache = workdirs.cache_path(key.repo)
    if not (cache / "HEAD").is_file():
        return []
    refs = run_git(["for-each-ref", "--format=%(refname)", f"{archive_prefix(key)}/"], cwd=cache)
    return sorted(refs.splitlines())


def restore_worktree(workdirs: Workdirs, key: Key, ref: str, directory: Path) -> Path:
    """Check archive ``ref`` of ``key`` out into ``directory`` as a detached worktree of the cache."""
    if not ref.startswith(f"{archive_prefix(key)}/"):
        raise BadInput(f"{ref!r} is not an archive of {key}")
    cache = workdirs.cache_path(key.repo)
    if commit_of(cache, ref) is None:
        raise BadInput(f"no archive {ref!r} in {cache}")
    run_git(["worktree", "add", "--quiet", "--detach", str(directory), ref], cwd=cache)
    return directory
