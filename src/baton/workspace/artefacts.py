"""A worktree's rebuildable artefacts: which ignored, untracked directories can go, and removing them.
An *artefact* is an entry of a worktree that git ignores and does not track, whose name is one of the
*kinds* the caller gives (``node_modules``, ``.venv``, ``target``, ...: :mod:`baton.housekeeping.prune`
resolves them). Removing one loses nothing that a checkpoint would keep (a checkpoint takes tracked
and untracked files, never ignored ones), and the next build or install makes it again. :func:`find`
asks git three questions, each once per worktree, reading only; :func:`remove` deletes without
following any link of the agent's.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from baton.workspace import nofollow
from baton.workspace.du import measure
from baton.workspace.gitcmd import WorktreeGit

_READ_ONLY = {"GIT_OPTIONAL_LOCKS": "0"}
GIT_TIMEOUT = 60.0  # seconds one of git's answers may take before the worktree is left as it is


@dataclass(frozen=True)
class Artefact:
    """One rebuildable entry of a worktree: its path relative to the worktree, its kind (its name)."""

    path: str
    kind: str
    link: bool = False  # a symbolic link: only the link is removed


def find(wt: WorktreeGit, kinds: frozenset[str]) -> list[Artefact]:
    """The worktree's artefacts of ``kinds``, sorted by path; none without kinds. Three questions are
    asked of git, each once per worktree, never per entry:

    1. ``git ls-files --others --ignored --exclude-standard --directory``: git stops at a directory
       that an ignore rule matches and lists it alone (``dist/``); a directory that is merely untracked
       with nothing but ignored files inside is listed *and descended* (``target/`` then
       ``target/a.o``). Only the first is an ignored directory: a listed directory with entries below
       it is not one.
    2. ``git check-ignore --stdin``: each candidate itself matches an ignore rule (the same answer by
       another path of git's code; an entry both disagree on is kept).
    3. ``git ls-files -- <candidates>``: nothing tracked lies beneath (a file force-added under an
       ignored ``build/`` makes git descend, so 1 already drops it; this is the check that does not
       rely on it).

    Pathspecs are literal (``GIT_LITERAL_PATHSPECS``): a directory the agent named ``*`` is a name, not
    a glob. Git runs through :class:`~baton.workspace.gitcmd.WorktreeGit` (``GIT_DIR`` and friends
    named, no link of the agent's followed) with ``GIT_OPTIONAL_LOCKS=0``: these are reads, and nothing
    in the admin dir is written. Each answer has a time limit (a FIFO planted as a ``.gitignore`` would
    block git): past it, the worktree has no artefacts. A regular file with a kind's name is not an
    artefact."""
    if not kinds:
        return []
    listed = _listed(wt)
    nexts = [*listed[1:], ""]  # each entry's successor in the sorted listing
    found = [a for e, n in zip(listed, nexts, strict=False) if (a := _candidate(wt.path, e, n, kinds))]
    if not found:
        return []
    ignored = _ignored(wt, [a.path for a in found])
    tracked = _tracked(wt, [a.path for a in found])
    return sorted(
        (a for a in found if a.path in ignored and not _holds(a.path, tracked)), key=lambda a: a.path
    )


def _git(wt: WorktreeGit, args: list[str], stdin: bytes | None = None, literal: bool = True) -> list[str]:
    """git's NUL-separated answer as paths; a failure answers nothing (so nothing is removed)."""
    extra = {} if stdin is None else {"input": stdin}
    env = {**os.environ, **_READ_ONLY, **({"GIT_LITERAL_PATHSPECS": "1"} if literal else {})}
    try:
        done = wt.call(args, env=env, timeout=GIT_TIMEOUT, **extra)
    except subprocess.TimeoutExpired:  # a FIFO the agent named .gitignore blocks git's open()
        return []
    if done.returncode not in (0, 1):  # check-ignore says 1 when nothing is ignored
        return []
    return [p for p in done.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _listed(wt: WorktreeGit) -> list[str]:
    return sorted(_git(wt, ["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"]))


def _candidate(root: Path, entry: str, following: str, kinds: frozenset[str]) -> Artefact | None:
    """``entry`` of the sorted listing (``following``: the next one) as an artefact: a directory git
    did not descend into, or a link."""
    rel = entry.rstrip("/")
    name = rel.rpartition("/")[2]
    if name not in kinds or name in (".", "..", ".git"):
        return None
    try:
        st = os.lstat(root / rel)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Artefact(rel, name, link=True)
    if not entry.endswith("/") or not stat.S_ISDIR(st.st_mode):
        return None
    if following.startswith(entry):
        return None  # git descended: untracked with ignored files inside, not itself ignored
    return Artefact(rel, name)


def _ignored(wt: WorktreeGit, paths: list[str]) -> set[str]:
    """Those of ``paths`` an ignore rule matches. check-ignore takes no literal pathspecs: each path is
    given as ``./path`` (echoed so), which no pathspec magic (``:(...)``) can begin."""
    data = "".join(f"./{p}\0" for p in paths).encode("utf-8", "surrogateescape")
    answer = _git(wt, ["check-ignore", "-z", "--stdin"], stdin=data, literal=False)
    return {p.removeprefix("./").rstrip("/") for p in answer}


def _tracked(wt: WorktreeGit, paths: list[str]) -> list[str]:
    return _git(wt, ["ls-files", "-z", "--", *paths])


def _holds(path: str, tracked: list[str]) -> bool:
    return any(t == path or t.startswith(path + "/") for t in tracked)


def size(root: Path, artefact: Artefact) -> int:
    """Allocated bytes of the artefact (a link: the link's own), 0 when it is gone or a parent is a link."""
    parts = nofollow.parts_of(artefact.path)
    try:
        with nofollow.directory(root, parts[:-1]) as fd:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except OSError:
        return 0
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return int(st.st_blocks) * 512
    return measure(root / artefact.path).allocated


def remove(root: Path, artefact: Artefact) -> bool:
    """Delete the artefact below ``root``; False when it was gone, is no directory or link any more, or
    a parent is a link (nothing removed then). The walk starts from a descriptor of the worktree, every
    component opened with ``O_NOFOLLOW`` (:mod:`baton.workspace.nofollow`): a parent swapped for a link
    fails the removal. The entry itself is ``lstat``-ed: a link (an agent's ``node_modules ->
    /home/me``) is unlinked, never followed; a directory is removed by :func:`shutil.rmtree` relative to
    the parent's descriptor, which on Linux walks by descriptors and refuses a top that changed into a
    link between the ``lstat`` and the ``open``."""
    parts = nofollow.parts_of(artefact.path)
    try:
        with nofollow.directory(root, parts[:-1]) as fd:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                os.unlink(parts[-1], dir_fd=fd)
            elif stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=fd)
            else:
                return False
    except FileNotFoundError:
        return False
    except OSError as exc:
        if isinstance(exc, nofollow.Unsafe) or exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return False
        raise
    return True
