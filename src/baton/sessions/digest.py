"""What a transcript file held at the end of a turn, kept with its marks (:mod:`baton.sessions.marks`)
so that damage which leaves its size, mtime and inode as they were (bit rot, a restore or an in-place
write that puts the mtime back) is found by content before the next resume.

:func:`take` reads the file once, through one descriptor (no link below the agent home followed), and
gives its stat, its ctime, the SHA-256 of all of it and, for a file longer than :data:`FULL`, a
*sample*: the SHA-256 of its size and :data:`BLOCKS` blocks of :data:`BLOCK` bytes (the head, the tail
and evenly spaced ones between), ~1 MiB read whatever the file's length. The end of a turn pays for the
whole hash (the snapshot has just read and hashed the same bytes); a resume checks (:func:`check`):

- a file of at most :data:`FULL` bytes (a Claude transcript of a few hundred turns, ~4 MB) is hashed
  whole: ~2 ms for 4 MB;
- a longer one (a Gemini chat, tens of MiB) is sampled: ~1 ms. A sample misses damage that lies wholly
  between its blocks; any damaged run longer than the gap between them (the size / 15: 2 MiB of a
  30 MiB file) always meets one. A write through the filesystem also moves the ctime, which no one can
  set back: then the file is hashed whole. What a sample can miss is what reaches the bytes but not
  the inode: bit rot, a block device restored under the filesystem, a few bytes between two blocks.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from baton.workspace import nofollow

FULL = 8 * 1024 * 1024  # files up to this are hashed whole before a resume; longer ones are sampled
BLOCK = 64 * 1024
BLOCKS = 16  # head, tail and 14 between
SAMPLE = f"{BLOCK}x{BLOCKS}"  # names the sampling rule a sample was taken under
READ = 1024 * 1024


@dataclass(frozen=True)
class Seen:
    """A transcript file as read once: its size, mtime and inode (a mark's stat), its ctime, and the
    digests of its bytes (``sample``: ``"<rule>:<hex>"``, only for one longer than :data:`FULL`)."""

    stat: list[int]
    ctime: int
    sha256: str | None
    sample: str | None

    def to_json(self) -> dict[str, object]:
        return {"ctime": self.ctime, "sha256": self.sha256, "sample": self.sample}


def offsets(size: int) -> list[int]:
    """Where the sample's blocks start: the head, the tail and evenly spaced ones between."""
    last = max(size - BLOCK, 0)
    return [last * i // (BLOCKS - 1) for i in range(BLOCKS)]


def take(root: Path, rel: str, whole: bool = True, sample: bool = True) -> Seen | None:
    """``root/rel`` as it is now; None when it is missing, a link or below one, not a regular file, or
    changed while it was read. ``whole``: hash all of it; ``sample``: sample one longer than
    :data:`FULL`."""
    try:
        with nofollow.opened_beneath(root, rel) as (fd, before):
            sha = _whole(fd, before.st_size) if whole else None
            sampled = _sample(fd, before.st_size) if sample and before.st_size > FULL else None
            after = os.fstat(fd)
    except (OSError, ValueError):
        return None
    marks = [before.st_size, before.st_mtime_ns, before.st_ino]
    if [after.st_size, after.st_mtime_ns, after.st_ino] != marks or after.st_ctime_ns != before.st_ctime_ns:
        return None  # written to while it was read: nothing true to say of it
    return Seen(marks, before.st_ctime_ns, sha, sampled)


def _whole(fd: int, size: int) -> str | None:
    digest, at = hashlib.sha256(), 0
    while at < size:
        part = os.pread(fd, min(READ, size - at), at)
        if not part:
            return None  # shorter than it said: changed while read
        digest.update(part)
        at += len(part)
    return digest.hexdigest()


def _sample(fd: int, size: int) -> str | None:
    digest = hashlib.sha256(size.to_bytes(8, "big"))
    for at in offsets(size):
        part = os.pread(fd, BLOCK, at)
        if len(part) != BLOCK:
            return None
        digest.update(part)
    return f"{SAMPLE}:{digest.hexdigest()}"


def check(root: Path, rel: str, marked: list[int], kept: object) -> str | None:
    """Why ``root/rel``, whose size, mtime and inode are still ``marked``, no longer holds the bytes
    ``kept`` describes (what :func:`take` gave at the end of the last turn); None when it does, or when
    it cannot be told (``kept`` by an older baton, a file unreadable or changing now: then the mark's
    stat alone judges, as before). Hashed whole when it is at most :data:`FULL` bytes, when its ctime
    moved (something wrote it and set its mtime back), or when its sample was taken under another rule;
    else sampled."""
    if not isinstance(kept, dict) or not isinstance(kept.get("sha256"), str):
        return None
    sampled = kept.get("sample")
    cheap = isinstance(sampled, str) and sampled.startswith(f"{SAMPLE}:")
    now = take(root, rel, whole=False, sample=True) if cheap else None
    if now is not None and now.stat == marked:
        if now.sample != sampled:
            return "its sampled blocks differ"
        if now.ctime == kept.get("ctime"):
            return None  # the sample agrees, and nothing wrote to it through the filesystem
    now = take(root, rel, whole=True, sample=False)
    if now is not None and now.stat == marked and now.sha256 != kept["sha256"]:
        return "its bytes differ"
    return None
