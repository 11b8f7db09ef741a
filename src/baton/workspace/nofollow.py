"""Files an agent can write, read and written by baton without following a symbolic link. baton runs
unconfined, and an agent's walls let it write its worktree, its gitdir and its key's home: a transcript
there replaced by a link to ``BATON_HOME/baton.db`` or ``~/.ssh/id_rsa`` must not be read into the
store, and a directory replaced by a link to ``/etc`` must not be where baton writes or deletes. So
every path below an agent-writable ``root`` (itself baton's own path, opened normally) is walked one
component at a time from a descriptor of ``root``, each opened with ``O_NOFOLLOW``: a link anywhere
below fails the call with :class:`Unsafe` (or, for a read, ``ELOOP``), and a link swapped in while
baton works cannot redirect it (the descriptors held are used, never the name again). Only regular
files are read (a FIFO would block, a device is no transcript).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_DIR = _DIR | os.O_NOFOLLOW


class Unsafe(OSError):
    """A path below an agent-writable root that is a link or not a regular file: not used."""


def parts_of(rel: Path | str) -> list[str]:
    """The components of relative path ``rel``; :class:`Unsafe` for an absolute one or one with ``..``."""
    path = PurePosixPath(rel)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or not path.parts:
        raise Unsafe(errno.EINVAL, "not a plain relative path", str(rel))
    return [part for part in path.parts if part != "."]


@contextlib.contextmanager
def directory(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of ``root/parts...``, every component below ``root`` opened without following a
    link (``create``: made, 0o700, when missing, ``root`` too). :class:`Unsafe` when one is a link or
    no directory."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, _DIR)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                inner = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Unsafe(exc.errno, "a link or no directory", part) from exc
                raise
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def read_regular(name: str | Path, dir_fd: int | None = None) -> bytes:
    """The bytes of regular file ``name`` (relative to ``dir_fd`` when given), not through a link:
    :class:`Unsafe` for a link or anything else that is not a regular file."""
    return _read(name, dir_fd)[0]


def _read(name: str | Path, dir_fd: int | None, tail: int | None = None) -> tuple[bytes, os.stat_result]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unsafe(exc.errno, "a symbolic link", str(name)) from exc
        raise
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unsafe(errno.EINVAL, "not a regular file", str(name))
        if tail is not None and st.st_size > tail:
            file.seek(st.st_size - tail)
        return file.read(), st


def read_text(path: Path) -> str | None:
    """Text of regular file ``path`` (its last component not followed); None when it is missing,
    a link or unreadable. For the small files of a gitdir, whose directory baton has checked."""
    try:
        return read_regular(path).decode("utf-8", "replace")
    except OSError:
        return None


def read_beneath(root: Path, rel: Path | str, tail: int | None = None) -> bytes:
    """The bytes of regular file ``root/rel``, no component below ``root`` followed (:class:`Unsafe`);
    only its last ``tail`` bytes when given."""
    parts = parts_of(rel)
    with directory(root, parts[:-1]) as fd:
        return _read(parts[-1], fd, tail)[0]


@contextlib.contextmanager
def opened_beneath(root: Path, rel: Path | str) -> Iterator[tuple[int, os.stat_result]]:
    """A read-only descriptor of regular file ``root/rel`` and its stat, no component below ``root``
    followed (:class:`Unsafe`): for reading parts of a file (``os.pread``) rather than all of it."""
    parts = parts_of(rel)
    with directory(root, parts[:-1]) as dir_fd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Unsafe(exc.errno, "a symbolic link", parts[-1]) from exc
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unsafe(errno.EINVAL, "not a regular file", parts[-1])
        yield fd, st
    finally:
        os.close(fd)


def write_beneath(
    root: Path,
    rel: Path | str,
    data: bytes,
    mode: int | None = None,
    times_ns: tuple[int, int] | None = None,
    keep_longer: bool = False,
) -> bool:
    """Write ``data`` to ``root/rel`` atomically (a temporary file of its own, then a rename), making
    its directories, no component below ``root`` followed (:class:`Unsafe`). ``mode`` and ``times_ns``
    (atime, mtime) are set before the rename. ``keep_longer``: leave a regular file that is at least
    as long alone. True when written."""
    parts = parts_of(rel)
    with directory(root, parts[:-1], create=True) as fd:
        name = parts[-1]
        if keep_longer and _size(name, fd) >= len(data):
            return False
        tmp = f".{name[:64]}.{secrets.token_hex(6)}.baton-tmp"
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd
        )
        try:
            with os.fdopen(out, "wb") as file:
                file.write(data)
                file.flush()
                if mode is not None:
                    os.fchmod(out, stat.S_IMODE(mode))
                if times_ns is not None:
                    os.utime(out, ns=times_ns)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
    return True


def _size(name: str, dir_fd: int) -> int:
    """The size of regular file ``name``; -1 when there is none (a link or anything else is replaced)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return -1
    return st.st_size if stat.S_ISREG(st.st_mode) else -1


def copy_beneath(
    source_root: Path, rel: Path | str, target_root: Path, target_rel: Path | str, keep_longer: bool = False
) -> bool:
    """Copy regular file ``source_root/rel`` to ``target_root/target_rel`` with its mode and times,
    atomically, neither side followed below its root (:class:`Unsafe`); ``keep_longer``: not over a
    file at least as long. True when copied."""
    parts = parts_of(rel)
    with directory(source_root, parts[:-1]) as fd:
        data, st = _read(parts[-1], fd)
    times = (st.st_atime_ns, st.st_mtime_ns)
    return write_beneath(target_root, target_rel, data, st.st_mode, times, keep_longer)


def remove_beneath(root: Path, rel: Path | str) -> bool:
    """Delete the file or link ``root/rel`` (never a directory), then its parents while they are empty,
    up to ``root``; no component below ``root`` followed. False when a parent is a link (nothing
    removed) or there was nothing to remove."""
    parts = parts_of(rel)
    try:
        with directory(root, parts[:-1]) as fd:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return False
            os.unlink(parts[-1], dir_fd=fd)
    except (Unsafe, FileNotFoundError, NotADirectoryError):
        return False
    for depth in range(len(parts) - 1, 0, -1):
        try:
            with directory(root, parts[: depth - 1]) as fd:
                os.rmdir(parts[depth - 1], dir_fd=fd)
        except OSError:
            break
    return True


def scrub(root: Path) -> list[str]:
    """Remove every entry below ``root`` that is neither a regular file nor a directory (links, FIFOs,
    sockets, devices), without following links; the relative paths removed."""
    removed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        gone = {name for name in [*dirnames, *filenames] if _unlink_odd(os.path.join(dirpath, name))}
        removed += sorted(os.path.relpath(os.path.join(dirpath, name), root) for name in gone)
        dirnames[:] = [name for name in dirnames if name not in gone]
    return removed


def _unlink_odd(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            return False
        os.unlink(path)
    except OSError:
        return False
    return True


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def read_ref(cache: Path, ref: str) -> str | None:
    """The commit ``ref`` names in the git dir ``cache``, without a git process: a loose file, or a
    line of packed-refs after a gc. None when there is no such ref, or it names no commit id. An agent
    can write the refs of its branches: a link is not followed and a name leaving ``refs/`` is not read."""
    try:
        loose = read_beneath(cache, ref).decode("ascii", "replace").strip()
    except OSError:  # none, a directory, a link, or no plain relative name
        loose = None
    if loose is not None:
        return loose if _SHA.fullmatch(loose) else None
    try:
        packed = (cache / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    at = packed.find(f" {ref}\n")
    return packed[packed.rfind("\n", 0, at) + 1 : at] if at >= 0 else None
