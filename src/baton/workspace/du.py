"""Allocated bytes under a directory, counted as ``du -s --block-size=1`` counts them — and, on a file
system with reflinks, how many of them are shared. Every entry's allocated blocks count (files,
directories' own blocks, symlinks themselves; a hard-linked file once), and with ``extents=True`` each
file's extents are read too (``FS_IOC_FIEMAP``), so a reflinked worktree's bytes split into shared
and exclusive and the **physical** total counts each shared extent once: what the volume really
holds, where twenty reflinked worktrees are not twenty checkouts (:func:`measure`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from baton.workspace.cow import reflink


@dataclass
class Usage:
    """One measurement: allocated bytes, of which shared, and the physical bytes behind them."""

    allocated: int = 0
    shared: int = 0  # on extents another file also uses (only measured with extents=True)
    physical: int = 0  # allocated, each shared extent counted once within this measurement
    _linked: set[tuple[int, int]] = field(default_factory=set, repr=False)  # (dev, ino), hard links
    _extents: set[tuple[int, int]] = field(default_factory=set, repr=False)  # (dev, physical offset)

    @property
    def exclusive(self) -> int:
        return self.allocated - self.shared


def disk_usage(path: Path) -> int:
    """Allocated bytes under ``path`` (itself included; hard links once), 0 when it does not exist."""
    return measure(path).allocated


def measure(
    path: Path, extents: bool = False, into: Usage | None = None, marks: dict[str, int] | None = None
) -> Usage:
    """The usage under ``path``; ``into``: add to an earlier measurement, so extents shared between the
    two are counted once in its ``physical``; ``marks``: relative paths below ``path`` whose bytes are
    also added up apart (allocated bytes).

    Every entry's allocated blocks (``st_blocks * 512``): files, **directories' own blocks** (a worktree
    of a few thousand directories holds 4 KiB in each, a sixth of a typical worktree's use), and
    symlinks themselves (never followed). A file with several hard links is counted once per
    measurement, as ``du`` does; directories are not deduplicated (they cannot be hard-linked).
    ``path`` itself is followed when it is a symlink, so a ``BATON_HOME`` that points at a volume is
    measured there.

    With ``extents=True`` (the caller found the volume clones files: :mod:`baton.workspace.cow.reflink`),
    bytes on an extent flagged ``FIEMAP_EXTENT_SHARED`` are **shared** (a reflinked worktree's untouched
    files share the pristine checkout's blocks; an edited file's new blocks are its own), the rest
    **exclusive**. Without it, nothing is shared and physical is allocated (``du``'s number; the ioctl
    per file is skipped where it can only answer "not shared").

    ``marks`` (the rebuildable artefacts :mod:`baton.workspace.artefacts` found) maps each relative path
    to 0, and the walk adds every byte under it there as well as to the total, so a worktree's split
    costs no second walk. The walk is an explicit stack over :func:`os.scandir`: one ``lstat`` per
    entry, the directory test from the entry's cached type, no recursion limit; an entry that vanishes
    or cannot be read mid-walk counts 0 (a measurement never fails because a run removed a file
    meanwhile)."""
    usage = into if into is not None else Usage()
    try:
        top = os.stat(path)
    except OSError:
        return usage
    _add(usage, os.fspath(path), top, extents)
    if not stat.S_ISDIR(top.st_mode):
        return usage
    root = os.fspath(path)
    marks = marks if marks is not None else {}
    stack: list[tuple[str, str | None]] = [(root, None)]  # (directory, the mark it is under)
    while stack:
        directory, under = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    mark = under
                    if marks and mark is None and (rel := entry.path[len(root) + 1 :]) in marks:
                        mark = rel
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((entry.path, mark))
                    size = _add(usage, entry.path, st, extents)
                    if mark is not None:
                        marks[mark] += size
        except OSError:
            continue  # vanished or unreadable: counts what was read
    return usage


def _add(usage: Usage, path: str, st: os.stat_result, extents: bool) -> int:
    """Count one entry; the allocated bytes it added (0: a hard link counted before)."""
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        ident = (st.st_dev, st.st_ino)
        if ident in usage._linked:
            return 0
        usage._linked.add(ident)
    size = int(st.st_blocks) * 512
    usage.allocated += size
    usage.physical += size
    if extents and stat.S_ISREG(st.st_mode) and size:
        shared, seen = _shared(path, st.st_dev, usage._extents)
        shared = min(shared, size)
        usage.shared += shared
        usage.physical -= min(seen, size)
    return size


def _shared(path: str, device: int, known: set[tuple[int, int]]) -> tuple[int, int]:
    """The file's shared bytes, and how many of them are on extents this measurement counted before."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0, 0
    shared = seen = 0
    try:
        for physical, length, flags in reflink.extents(fd):
            if not flags & reflink.EXTENT_SHARED or flags & reflink.EXTENT_UNKNOWN:
                continue
            shared += length
            if (device, physical) in known:
                seen += length
            else:
                known.add((device, physical))
    except OSError:
        pass  # the file changed or went away mid-read: what was read
    finally:
        os.close(fd)
    return shared, seen
