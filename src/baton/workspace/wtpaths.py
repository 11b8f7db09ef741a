"""What is found at a key's worktree path before a rebuild, and what is left above it after a removal.

A worktree's stable path (``worktrees/<agent>/<slug>/<thread>``) can hold, when baton comes to rebuild
it, a directory without git links of its own (a broken worktree: its files are the agent's work and
become the key's checkpoint, :func:`salvage`), a half-made directory, or something that is no
directory at all: a file, a link, a FIFO, which is neither baton's to delete nor to follow
(:func:`clear` moves it under ``archive/``). :func:`remove_empty_parents` tidies the directories
above a removed worktree or key space. The callers (:class:`~baton.workspace.workdirs.Workdirs`) hold
the repo's lock.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from baton.files import archive_path, archive_stamp
from baton.keys import Key
from baton.workspace import gitlinks
from baton.workspace.gitcmd import commit_of, directory_tree, run_git

log = logging.getLogger("baton.workspace")


def salvage(cache: Path, path: Path, key: Key, branch: str, ref: str, env: dict[str, str]) -> str | None:
    """A broken worktree at ``path`` (a ``.git`` but no admin dir of its own) about to be rebuilt: its
    files become the key's checkpoint ``ref`` on the branch's tip, staged against the cache clone itself
    (nothing the agent wrote is taken for a git dir), so the rebuild restores them. A note for the run;
    None otherwise."""
    tip = commit_of(cache, f"refs/heads/{branch}")
    if not gitlinks.is_real_dir(path) or not os.path.lexists(path / ".git") or tip is None:
        return None
    tree = directory_tree(cache, path, tip, env)
    if tree == run_git(["rev-parse", f"{tip}^{{tree}}"], cwd=cache):
        if commit_of(cache, ref) is not None:
            run_git(["update-ref", "-d", ref], cwd=cache)
    else:
        message = f"baton checkpoint of {key} (a broken worktree)"
        commit = run_git(["commit-tree", tree, "-p", tip, "-m", message], cwd=cache, env=env)
        run_git(["update-ref", ref, commit], cwd=cache)
    log.warning("the worktree of %s had lost its git links: its files are checkpointed; rebuilt", key)
    return f"the worktree had lost its git links (its admin dir): rebuilt on {branch} with its files"


def clear(home: Path, key: Key, path: Path) -> str | None:
    """Empty the key's worktree ``path`` before a rebuild. A directory (half-made, or salvaged) is
    deleted; anything else there — a file, a link, a FIFO — is not baton's to delete nor to follow: it
    is moved as it is under ``archive/`` and the note says where."""
    if gitlinks.is_real_dir(path):
        shutil.rmtree(path)
        return None
    if not os.path.lexists(path):
        return None
    what = "symlink" if path.is_symlink() else "file" if path.is_file() else "special file"
    kept = archive_path(home, (key.agent, key.repo.slug, key.thread), archive_stamp(), "worktree-")
    os.rename(path, kept)
    log.warning("the worktree path of %s was a %s: archived at %s, rebuilt", key, what, kept)
    return f"the worktree path was a {what}, not a directory: archived at {kept}, the worktree rebuilt"


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while they are empty, up to (not including) ``stop``."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent
