"""Settings files that baton shares with an agent CLI: read them, force baton's keys into them, and
write them back so that neither a crash nor a concurrent reader ever sees half a file.

Each adapter owns its file's format and its own error messages; this module holds what they all do
alike. :func:`merge` forces baton's keys into the user's, key by key into nested tables, so every
other key a user (or a mock's provider table) set is kept. :func:`atomic_write_text` writes to a
temporary file next to the target (``.<name>.*.baton-tmp``, so it is on the same file system and
recognisably baton's) and renames it over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


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
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{prefix}{stamp}{suffix}", 1
    while os.path.lexists(path):
        n += 1
        path = folder / f"{prefix}{stamp}-{n}{suffix}"
    return path
