"""A key's worktree's git for reads only (a measurement, a diff): its admin dir found by the key's name,
its links not repaired, so nothing is written; what a prune's dry run and a thread's diff read through.
"""

from __future__ import annotations

import os
from pathlib import Path

from baton.keys import Key
from baton.settings import Settings
from baton.workspace import gitlinks
from baton.workspace.gitcmd import WorktreeGit
from baton.workspace.workdirs import Workdirs


def readonly_git(settings: Settings, key: Key) -> WorktreeGit | None:
    """The key's worktree's git for reads only (a measurement): its admin dir found by the key's name,
    its links not repaired (nothing written); None without a worktree, an admin dir of that name, or
    with a link or a FIFO in it."""
    workdirs = Workdirs(settings)
    path, cache = workdirs.worktree_path(key), workdirs.cache_path(key.repo)
    if not gitlinks.is_real_dir(path):
        return None
    admin = gitlinks.find(cache, key)
    if admin is None or not _plain(admin):
        return None
    return WorktreeGit(path, admin, cache)


def _plain(admin: Path) -> bool:
    """Whether the admin dir holds only files and directories: git would read a link's target as its
    ``index`` and block on a FIFO; a run's repair (:func:`baton.workspace.gitlinks.repair`) removes
    them, a measurement does not."""
    try:
        with os.scandir(admin) as entries:
            return all(e.is_file(follow_symlinks=False) or e.is_dir(follow_symlinks=False) for e in entries)
    except OSError:
        return False
