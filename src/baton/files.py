"""Files baton writes: settings files it shares with an agent CLI, merged and written atomically, and
what it keeps of its runs, private to its user.

:func:`merge` forces baton's keys into the user's, key by key into nested tables, so every other key
a user (or a mock's provider table) set is kept; :func:`atomic_write_text` writes a temporary file
next to the target (``.<name>.*.baton-tmp``: same file system, recognisably baton's) and renames it
over the target. :func:`make_private_dir` makes each directory it has to make 0700, so whichever writer
makes ``BATON_HOME`` first makes it private under any umask; :func:`create_private` and
:func:`open_private_append` make the store's file and the event logs 0600. None changes the mode of
what exists (a home shared on purpose is ``baton doctor``'s to name: :mod:`baton.housekeeping.privacy`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR = 0o700  # BATON_HOME and what baton makes inside it for its store and logs
PRIVATE_FILE = 0o600  # the SQLite store (its -wal and -shm follow it) and every event log


def merge(base: dict[str, Any], forced: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every value of ``forced`` set, tables merged key by key (``base`` is unchanged)."""
    out = dict(base)
    for key, value in forced.items():
        current = out.get(key)
        out[key] = merge(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically, creating its directory: a temporary file of its own in
    the same directory (two writers never share one), then a rename. The temporary file is removed if
    anything fails. ``mode`` (default: mkstemp's 0o600) is set before the rename, so the file never
    appears without it (an executable script is never seen half-permitted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".baton-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if mode is not None:
                os.fchmod(out.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_private_dir(path: Path) -> None:
    """``path`` as a directory: each missing directory on the way to it (``path`` included) is made
    :data:`PRIVATE_DIR`, which the umask can only narrow. One that exists is left as it is.
    FileExistsError when something that is not a directory is in the way."""
    missing: list[Path] = []
    probe = path.absolute()
    while not probe.is_dir() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another writer, or a file in the way
            if not directory.is_dir():
                raise


def create_private(path: Path) -> None:
    """``path`` as an empty file made :data:`PRIVATE_FILE` (its directory by :func:`make_private_dir`),
    unless it exists: then it is left as it is."""
    make_private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))


def open_private_append(path: Path) -> IO[str]:
    """``path`` opened to append UTF-8 text, made :data:`PRIVATE_FILE` when it is new (its directory by
    :func:`make_private_dir`)."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
    try:
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (:func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def archive_stamp(now: float | None = None) -> str:
    """A UTC time stamp for what is archived (``20261123T174700Z``): sorts by time, safe in a path."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def archive_path(
    home: Path, parts: tuple[str, str, str], stamp: str, prefix: str = "", suffix: str = ""
) -> Path:
    """A path not yet taken (nothing there, not even a link) under ``home/archive/<agent>/<slug>/<thread>``
    (``parts``), named ``<prefix><stamp><suffix>``, with ``-2``, ``-3``, ... after the stamp when that
    is taken; its directory is made."""
    folder = home.joinpath("archive", *parts)
    make_private_dir(folder)
    path, n = folder / f"{prefix}{stamp}{suffix}", 1
    while os.path.lexists(path):
        n += 1
        path = folder / f"{prefix}{stamp}-{n}{suffix}"
    return path
