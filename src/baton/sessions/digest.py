"""What a transcript file held at the end of a turn, kept with its marks (:mod:`baton.sessions.marks`),
so that damage which leaves its size, mtime and inode as they were (bit rot, a restore or an in-place
write that puts the mtime back) is found by content before the next resume. :func:`take` reads a file
once through one descriptor (no link below the agent home followed): its stat, its ctime, the digest
of all of it (:func:`root`: the snapshot's own when it holds the same bytes) and, for one longer than
:data:`FULL`, a sample (the SHA-256 of its size and :data:`BLOCKS` blocks of :data:`BLOCK` bytes:
head, tail, evenly spaced between; 1 MiB read whatever its length). The end of a turn pays for the
whole digest, as the snapshot just did; a resume for :func:`check`, whole up to 8 MiB, else sampled.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from baton.sessions.chunking import chunks
from baton.workspace import nofollow

FULL = 8 * 1024 * 1024  # files up to this are hashed whole before a resume; longer ones are sampled
BLOCK = 64 * 1024
BLOCKS = 16  # head, tail and 14 between
SAMPLE = f"{BLOCK}x{BLOCKS}"  # names the sampling rule a sample was taken under


@dataclass(frozen=True)
class Seen:
    """A transcript file as read once: its size, mtime and inode (a mark's stat), its ctime, and the
    digests of its bytes (``whole``: :func:`root`; ``sample``: ``"<rule>:<hex>"``, only for one longer
    than :data:`FULL`)."""

    stat: list[int]
    ctime: int
    whole: str | None
    sample: str | None

    def to_json(self) -> dict[str, object]:
        return {"ctime": self.ctime, "whole": self.whole, "sample": self.sample}


def root(digests: list[str] | str) -> str:
    """The digest of a whole file: the SHA-256 of its chunks' SHA-256 digests, cut as a snapshot cuts
    them (:func:`baton.sessions.chunking.chunks`). So a mark's digest and a snapshot's file (the digests
    it lists) tell, without a byte read, whether the snapshot holds the bytes the mark saw."""
    listed = [digests] if isinstance(digests, str) else digests
    return hashlib.sha256("".join(listed).encode("ascii")).hexdigest()


def offsets(size: int) -> list[int]:
    """Where the sample's blocks start: the head, the tail and evenly spaced ones between."""
    last = max(size - BLOCK, 0)
    return [last * i // (BLOCKS - 1) for i in range(BLOCKS)]


def take(home: Path, rel: str, whole: bool = True, sample: bool = True) -> Seen | None:
    """``home/rel`` as it is now; None when it is missing, a link or below one, not a regular file, or
    changed while it was read. ``whole``: hash all of it; ``sample``: sample one longer than
    :data:`FULL`."""
    try:
        with nofollow.opened_beneath(home, rel) as (fd, before):
            everything = _whole(fd, before.st_size) if whole else None
            sampled = _sample(fd, before.st_size) if sample and before.st_size > FULL else None
            after = os.fstat(fd)
    except (OSError, ValueError):
        return None
    marks = [before.st_size, before.st_mtime_ns, before.st_ino]
    if [after.st_size, after.st_mtime_ns, after.st_ino] != marks or after.st_ctime_ns != before.st_ctime_ns:
        return None  # written to while it was read: nothing true to say of it
    return Seen(marks, before.st_ctime_ns, everything, sampled)


def _whole(fd: int, size: int) -> str | None:
    parts, at = [], 0
    while at < size:
        part = os.pread(fd, size - at, at)
        if not part:
            return None  # shorter than it said: changed while read
        parts.append(part)
        at += len(part)
    return root([hashlib.sha256(chunk).hexdigest() for chunk in chunks(b"".join(parts))])


def _sample(fd: int, size: int) -> str | None:
    digest = hashlib.sha256(size.to_bytes(8, "big"))
    for at in offsets(size):
        part = os.pread(fd, BLOCK, at)
        if len(part) != BLOCK:
            return None
        digest.update(part)
    return f"{SAMPLE}:{digest.hexdigest()}"


def check(home: Path, rel: str, marked: list[int], kept: object) -> str | None:
    """Why ``home/rel``, whose size, mtime and inode are still ``marked``, no longer holds the bytes
    ``kept`` describes (what :func:`take` gave at the end of the last turn); None when it does, or when
    it cannot be told (``kept`` by an older baton, a file unreadable or changing now: then the mark's
    stat alone judges, as before).

    Hashed whole when it is at most :data:`FULL` bytes (a Claude transcript of a few hundred turns is
    ~4 MB), when its ctime moved (something wrote it and set its mtime back: no one can set a ctime
    back), or when its sample was taken under another rule; else sampled (a Gemini chat, tens of MiB).
    A sample misses only damage that lies wholly between its blocks and left the ctime alone (bit rot,
    a block device restored under the filesystem); any damaged run longer than the gap between blocks
    (the size / 15: 2 MiB of a 30 MiB file) meets one."""
    if not isinstance(kept, dict) or not isinstance(kept.get("whole"), str):
        return None
    sampled = kept.get("sample")
    cheap = isinstance(sampled, str) and sampled.startswith(f"{SAMPLE}:")
    now = take(home, rel, whole=False, sample=True) if cheap else None
    if now is not None and now.stat == marked:
        if now.sample != sampled:
            return "its sampled blocks differ"
        if now.ctime == kept.get("ctime"):
            return None  # the sample agrees, and nothing wrote to it through the filesystem
    now = take(home, rel, whole=True, sample=False)
    if now is not None and now.stat == marked and now.whole != kept["whole"]:
        return "its bytes differ"
    return None
