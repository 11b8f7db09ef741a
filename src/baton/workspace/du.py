"""Allocated bytes under a directory, counted as ``du -s --block-size=1`` counts them.

Every entry's allocated blocks (``st_blocks * 512``): files, **directories' own blocks** (a worktree of
a few thousand directories holds 4 KiB in each, a sixth of a typical worktree's use), and symlinks
themselves (never followed). A file with several hard links is counted once per measurement, as ``du``
does; directories are not deduplicated (they cannot be hard-linked). ``path`` itself is followed when it
is a symlink, so a ``BATON_HOME`` that points at a volume is measured there.

The walk is an explicit stack over :func:`os.scandir`: one ``lstat`` per entry, the directory test from
the entry's cached type, no recursion limit; an entry that vanishes or cannot be read mid-walk counts 0
(a measurement never fails because a run removed a file meanwhile).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def disk_usage(path: Path) -> int:
    """Allocated bytes under ``path`` (itself included; hard links once), 0 when it does not exist."""
    try:
        top = os.stat(path)
    except OSError:
        return 0
    total = top.st_blocks * 512
    if not stat.S_ISDIR(top.st_mode):
        return total
    linked: set[tuple[int, int]] = set()  # (device, inode) of files with several links, counted once
    stack = [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    total += _entry_bytes(entry, stack, linked)
        except OSError:
            continue  # vanished or unreadable: counts what was read
    return total


def _entry_bytes(entry: os.DirEntry[str], stack: list[str], linked: set[tuple[int, int]]) -> int:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return 0
    if stat.S_ISDIR(st.st_mode):
        stack.append(entry.path)
    elif st.st_nlink > 1:
        ident = (st.st_dev, st.st_ino)
        if ident in linked:
            return 0
        linked.add(ident)
    return int(st.st_blocks) * 512
