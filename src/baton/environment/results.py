"""What a setup made in its prepared tree, given to a key's worktree. The **results** are the paths the
tree holds that its commit does not track (``.venv``, ``node_modules``, build directories), found from
the commit's own file list in the cache clone (:func:`tracked`), never from the tree's ``.git``, which
the setup could write (:func:`find`). :func:`give` copies them into the worktree copy-on-write (``cp -a
--reflink=auto``: a clone of each file where the file system makes them, a plain copy elsewhere), never
over anything the worktree already has nor through a link in it, then :func:`relocate` replaces the
prepared tree's path with the worktree's in the copied text files (venv shebangs, ``pyvenv.cfg``, an
editable install's ``.pth`` and finder, ``direct_url.json``), as conda relocates a prefix: binary files
are left as they are and counted apart.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from baton.files import atomic_write_bytes
from baton.workspace.gitcmd import run_git

SNIFF = 8192  # a NUL in a file's first bytes makes it binary: not rewritten
# What a setup installs under its home that a thread needs, given to the thread's agent home like the
# worktree's results: user installs (pip --user, pipx and uv tools, their scripts: ~/.local), `go install`'s
# binaries (~/go/bin; Go's module cache is the repository's shared one), RubyGems' --user-install. Never
# the home's caches (the package managers' are shared apart) nor the agents' own configuration.
HOME_RESULTS = (".local/lib", ".local/bin", ".local/share/pipx", ".local/share/uv", "go/bin", ".gem")
LARGEST = 64 << 20  # text files larger than this are not read (no result of a setup is one)


@dataclass
class Given:
    """What :func:`give` did: the results copied, those the worktree already had, files rewritten."""

    copied: list[str]
    kept: list[str]  # the worktree has them already (or a parent of them is not a directory): untouched
    rewritten: int = 0  # text files whose prepared tree's path became the worktree's
    links: int = 0  # symbolic links retargeted the same way
    binary: int = 0  # binary files under the results, not rewritten

    def summary(self) -> str:
        kept = f", {len(self.kept)} kept as the worktree had them" if self.kept else ""
        return (
            f"{len(self.copied)} result(s) copied ({', '.join(self.copied[:4]) or 'none'}"
            f"{', …' if len(self.copied) > 4 else ''}){kept}; {self.rewritten} file(s) and {self.links} "
            f"link(s) relocated, {self.binary} binary file(s) left as they are"
        )


def tracked(cache: Path, commit: str) -> set[str]:
    """Every path the commit tracks (files, links, submodules), from the cache clone's own objects."""
    out = run_git(["ls-tree", "-r", "-z", "--name-only", commit], cwd=cache, raw=True)
    return {name for name in out.split("\0") if name}


def find(tree: Path, files: set[str]) -> list[str]:
    """The results in ``tree``: its paths that ``files`` (what the commit tracks) neither names nor
    lies under, each as high up as possible (``.venv``, not every file of it); ``.git`` is not one."""
    above = {str(p) for f in files for p in Path(f).parents if str(p) != "."}
    found: list[str] = []

    def walk(rel: str) -> None:
        with os.scandir(tree / rel if rel else tree) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = f"{rel}/{entry.name}" if rel else entry.name
                if path in files or path == ".git":
                    continue
                if path in above and entry.is_dir(follow_symlinks=False):
                    walk(path)
                else:
                    found.append(path)

    walk("")
    return found


def in_home(home: Path) -> list[str]:
    """The :data:`HOME_RESULTS` a setup made in ``home``: directories, none reached through a link."""
    return [rel for rel in HOME_RESULTS if _real_dirs(home, Path(rel)) and (home / rel).is_dir()]


def give(tree: Path, worktree: Path, results: list[str]) -> Given:
    """Copy ``results`` from ``tree`` into ``worktree`` and relocate them (see the module docstring)."""
    given = Given([], [])
    for rel in results:
        target = worktree / rel
        if os.path.lexists(target) or not _real_dirs(worktree, Path(rel).parent):
            given.kept.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(tree / rel, target)
        given.copied.append(rel)
    old, new = os.fsencode(tree), os.fsencode(worktree)
    for rel in given.copied:
        relocate(worktree / rel, old, new, given)
    return given


def remove(worktree: Path, results: list[str], files: set[str]) -> list[str]:
    """Remove ``results`` (an earlier setup's) from ``worktree``: never one that ``files`` (what its
    commit tracks) names or holds a file of, never through a link in it; those removed."""
    above = {str(p) for f in files for p in Path(f).parents if str(p) != "."}
    removed = []
    for rel in results:
        target = worktree / rel
        if rel in files or rel in above or not _real_dirs(worktree, Path(rel).parent):
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        else:
            continue
        removed.append(rel)
    return removed


def spellings(old: bytes, new: bytes) -> list[tuple[bytes, bytes]]:
    """The ways a path is written in the files a setup makes, each with its relocated form: as it is,
    percent-encoded (a ``file://`` URL: an editable install's ``direct_url.json`` writes ``@`` as
    ``%40``) and JSON-escaped (a non-ASCII name as ``\\uXXXX``)."""
    found = [(old, new)]
    text_old, text_new = os.fsdecode(old), os.fsdecode(new)
    for pair in (
        (quote(text_old, safe="/"), quote(text_new, safe="/")),
        (json.dumps(text_old)[1:-1], json.dumps(text_new)[1:-1]),
    ):
        encoded = (pair[0].encode(), pair[1].encode())
        if encoded[0] != old and encoded not in found:
            found.append(encoded)
    return found


def _real_dirs(root: Path, rel: Path) -> bool:
    """Whether every component of ``rel`` under ``root`` is a directory, not a link, or is missing
    (made by the copy): a link the worktree holds is never written through."""
    path = root
    for part in rel.parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(mode):
            return False
    return True


def _copy(source: Path, target: Path) -> None:
    """``cp -a --reflink=auto``: attributes, links as links, hard links kept, a clone where possible."""
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--", str(source), str(target)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise OSError(f"copying {source.name} failed: {done.stderr.strip()[-300:]}")


def relocate(root: Path, old: bytes, new: bytes, given: Given) -> None:
    """Replace ``old`` with ``new`` in the text files and link targets under ``root`` (or ``root``
    itself), counted in ``given``; nothing is followed through a link."""
    if root.is_symlink() or root.is_file():
        _relocate_one(root, old, new, given)
        return
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            _relocate_one(Path(directory, name), old, new, given)


def _relocate_one(path: Path, old: bytes, new: bytes, given: Given) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(os.fsencode(path))
        if old in target:
            os.unlink(path)
            os.symlink(target.replace(old, new), os.fsencode(path))
            given.links += 1
        return
    if not stat.S_ISREG(info.st_mode) or info.st_size > LARGEST:
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        head = file.read(SNIFF)
        if b"\0" in head:
            given.binary += 1
            return
        data = head + file.read()
    pairs = [(o, n) for o, n in spellings(old, new) if o in data]
    if pairs:
        for written, relocated in pairs:
            data = data.replace(written, relocated)
        atomic_write_bytes(path, data, stat.S_IMODE(info.st_mode))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
        given.rewritten += 1
