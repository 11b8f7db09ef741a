"""Parking: how two keys of one machine share one branch. git checks a branch out in one worktree of a
repository at a time, and every key's worktree is a linked worktree of the repo's one cache clone. Under
the branch's lease (:mod:`baton.store.branchlease`), the key about to write the branch parks every other
key's worktree still on it (:func:`park`): its uncommitted state checkpointed first, its HEAD detached
at the commit it was on (no file changes), and ``refs/baton/parked/<agent>/<thread>`` in the cache
clone recording where. The parked key takes the branch back at its own next turn
(:mod:`baton.sync.sharing`); a key alone on its branch is never parked, its worktree stays on it between
turns. A branch's holders are read from the cache clone's admin dirs as git counts them (:func:`holders`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from baton.errors import GitError
from baton.keys import Key
from baton.workspace import gitlinks, nofollow
from baton.workspace.gitcmd import run_git
from baton.workspace.locks import file_lock
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.workspace")

# where git records the branch of an operation that holds it while HEAD is detached (worktree.c)
_HELD_BY = ("rebase-merge/head-name", "rebase-apply/head-name")


def holders(cache: Path, branch: str) -> list[str]:
    """The admin dirs (by name, :func:`gitlinks.admin_name` for a key's) of the linked worktrees that
    have ``branch`` checked out as ``git worktree add`` counts it: HEAD on it, or a rebase or bisect of
    it in progress. Read from the files, without a git process and never through a link."""
    ref = f"refs/heads/{branch}"
    found = []
    for name in sorted(gitlinks.names(cache)):
        admin = cache / gitlinks.ADMIN / name
        if not gitlinks.is_real_dir(admin):
            continue
        held = [_text(admin, rel) for rel in _HELD_BY]
        if (
            _text(admin, "HEAD") == f"ref: {ref}"
            or ref in held
            or _text(admin, "BISECT_START") in (branch, ref)
        ):
            found.append(name)
    return found


def _text(admin: Path, rel: str) -> str:
    """A small file of an admin dir, stripped ("" when missing, a link or through one)."""
    try:
        return nofollow.read_beneath(admin, rel).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def park(workdirs: Workdirs, key: Key, branch: str) -> str | None:
    """Detach the key's worktree from ``branch`` at the commit it is on, its uncommitted state
    checkpointed first; the commit it was parked at (None: its worktree is missing or broken, or was
    not on ``branch``). The caller holds ``branch``'s lease, so no run of the key is writing there.

    The parked ref is written before HEAD: a kill between the two leaves the worktree on the branch
    (the next writer parks it again) and a parked ref its own next turn drops."""
    wt = workdirs.worktree_git(key)
    if wt is None:
        return None
    workdirs.checkpoint(key)  # before anything moves: the parked key's work is in its checkpoint ref
    cache = workdirs.cache_path(key.repo)
    with file_lock(workdirs.home, f"repo:{key.repo.slug}"):
        if wt.head() != f"ref: refs/heads/{branch}":
            return None  # moved on meanwhile (removed, reset): nothing to park
        commit = workdirs.read_ref(cache, f"refs/heads/{branch}")
        if commit is None:
            raise GitError(f"branch {branch!r} is missing from {cache}")
        run_git(["update-ref", workdirs.parked_ref(key), commit], cwd=cache)
        wt.run(["update-ref", "--no-deref", "-m", f"baton: parked off {branch}", "HEAD", commit])
    log.info("parked the worktree of %s at %s: %s is another key's now", key, commit[:12], branch)
    return commit


def drop_parked(workdirs: Workdirs, key: Key) -> None:
    """Forget where the key's worktree was parked (it is on its branch again, or gone)."""
    cache = workdirs.cache_path(key.repo)
    if (cache / "HEAD").is_file() and workdirs.read_ref(cache, workdirs.parked_ref(key)) is not None:
        run_git(["update-ref", "-d", workdirs.parked_ref(key)], cwd=cache)
