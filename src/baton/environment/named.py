"""The inputs a repository names itself, beyond the lock files and manifests baton knows
(:func:`baton.environment.discover.is_input`): ``.baton/inputs``, one path a line, relative to the
repository's root (``#`` starts a comment), each a file or a directory (then every file under it,
no link followed). What the setup reads that no lock file says (a ``scripts/bootstrap.sh`` it runs,
a ``tools/`` it builds) so makes a new preparation when it changes. A path it lacks counts as
missing, so making it later changes the key too. The file itself is read as a setup file is (a
regular file, no link, at most 64 KiB; a bad line is refused with the line)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from baton.environment import BATON_INPUTS
from baton.workspace import nofollow

MAX_NAMED = 64  # lines
MAX_FILES = 10_000  # files under one named directory
LIMIT = 64 << 10  # the file's own size
LARGEST = 256 << 20  # a named file larger than this counts by its size


class BadNames(ValueError):
    """A line of ``.baton/inputs`` that names no path inside the repository."""


def names(text: str) -> list[str]:
    """The paths ``text`` (the file's) names, in order; :class:`BadNames` for one that is absolute,
    climbs out (``..``) or holds a control character, and for more than :data:`MAX_NAMED`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        path = line.split("#", 1)[0].strip().rstrip("/")
        if not path:
            continue
        parts = PurePosixPath(path).parts
        if path.startswith("/") or ".." in parts or not path.isprintable() or "\\" in path:
            raise BadNames(f"{BATON_INPUTS}, line {number}: {path!r} is not a path inside the repository")
        found.append("/".join(p for p in parts if p != "."))
    if len(found) > MAX_NAMED:
        raise BadNames(f"{BATON_INPUTS} names {len(found)} paths: at most {MAX_NAMED}")
    return found


def digest(worktree: Path, rel: str) -> str:
    """The sha256 of what ``rel`` holds in ``worktree``: a file's bytes, a directory's files (each
    path and its bytes, in order), or that it is missing or a link (never followed)."""
    summed = hashlib.sha256()
    path = worktree / rel
    if os.path.islink(path) or not os.path.lexists(path):
        summed.update(b"link" if os.path.islink(path) else b"missing")
    elif path.is_dir():
        budget = LARGEST  # read per turn: past it, a file counts by its size (a hostile tree stays cheap)
        for name in _files(worktree, rel):
            data = _bytes(worktree, name) if budget > 0 else _size(worktree, name)
            budget -= len(data)
            summed.update(name.encode() + b"\0" + data + b"\0")
    else:
        summed.update(_bytes(worktree, rel))
    return summed.hexdigest()


def _files(worktree: Path, rel: str) -> list[str]:
    """The regular files under directory ``rel``, sorted, links neither followed nor counted."""
    found: list[str] = []
    for directory, dirs, files in os.walk(worktree / rel):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(directory, d)))
        base = os.path.relpath(directory, worktree)
        found += [f"{base}/{f}" for f in files if not os.path.islink(os.path.join(directory, f))]
        if len(found) > MAX_FILES:
            break
    return sorted(found)[:MAX_FILES]


def _size(worktree: Path, rel: str) -> bytes:
    try:
        return f"size {os.lstat(worktree / rel).st_size}".encode()
    except OSError:
        return b"unreadable"


def _bytes(worktree: Path, rel: str) -> bytes:
    """A file's bytes; of one larger than :data:`LARGEST`, its size alone (as a lock file's is not
    read past it)."""
    try:
        size = os.lstat(worktree / rel).st_size
        return f"size {size}".encode() if size > LARGEST else nofollow.read_beneath(worktree, rel)
    except OSError:
        return b"unreadable"
