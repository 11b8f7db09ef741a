"""Instructions that changed under a thread: the agent's instruction files in the worktree (each
adapter's ``instruction_files``: ``CLAUDE.md``, ``AGENTS.md``, ``.claude/``, ``.mcp.json``, ...) are
recorded per conversation after every turn its agent ran (:func:`record`: a digest and a bounded copy
of each file's text), and a resumed turn compares (:func:`check`): the prompt says what changed
(:mod:`baton.runner.instructiondiff`), or ``on_instructions_change = fresh`` starts a new conversation.
The files are the agent's to write: no link followed, only regular files opened, every size bounded
(:data:`MAX_FILES`, :data:`MAX_HASH`, :data:`MAX_TEXT`, :data:`MAX_KEPT`), bytes that are not UTF-8
hashed only; and cheap every turn: a file whose size, times and inode are the record's is not read.
docs/architecture.md, "How a run works", step 4.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.models import InstructionsRecord, Mode, OnInstructions
from baton.runner.instructiondiff import Change, describe
from baton.runner.state import Context
from baton.store.base import InstructionStore
from baton.workspace import nofollow

MAX_FILES = 200  # files recorded in all (a directory of skills is read whole, up to this)
MAX_DEPTH = 4  # levels of a directory walked below the one named
MAX_HASH = 16 * 2**20  # bytes of one file hashed; a longer file is compared by its first ones and size
MAX_TEXT = 64 * 2**10  # bytes of one file's text kept for a diff
MAX_KEPT = 256 * 2**10  # bytes of text kept for all files together; the rest are hashed only
MAX_LINK = 1024  # characters of a link's target recorded

_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Files = dict[
    str, dict[str, Any]
]  # path relative to the worktree → entry (kind, size, stamp, sha256, text, ...)


@dataclass(frozen=True)
class Checked:
    """What a resumed turn does about its instruction files (:func:`check`)."""

    change: Change | None = None  # None: unchanged, or nothing recorded for this conversation
    fresh: bool = False  # on_instructions_change = fresh: start a new conversation instead


def check(ctx: Context, worktree: Path, session_id: str) -> Checked:
    """Compare the agent's instruction files in ``worktree`` with what conversation ``session_id`` saw.
    Nothing recorded for it (a conversation from before baton recorded them, or another's) is no change:
    :func:`record` records them after this turn."""
    key, store = ctx.key, _store(ctx)
    stored = store.get_instructions(key.agent, key.repo.slug, key.thread)
    if stored is None or stored.session_id != session_id:
        return Checked()
    now = scan(worktree, ctx.agent.instruction_files, stored.files)
    change = describe(stored.files, now, _diff_room(ctx))
    if change is None:
        return Checked()
    how = ctx.request.on_instructions_change or OnInstructions(ctx.settings.on_instructions_change)
    # a run that asked to resume (--mode resume) resumes: it is told instead
    return Checked(change, fresh=how == OnInstructions.FRESH and ctx.request.mode == Mode.AUTO)


def record(ctx: Context, worktree: Path, session_id: str | None) -> None:
    """Record the instruction files as conversation ``session_id`` now knows them (after a turn its
    agent ran: what it was told, what it read itself, what it changed)."""
    if not session_id:
        return
    key, store = ctx.key, _store(ctx)
    stored = store.get_instructions(key.agent, key.repo.slug, key.thread)
    files = scan(worktree, ctx.agent.instruction_files, stored.files if stored else {})
    if stored is not None and stored.session_id == session_id and stored.files == files:
        return  # the common turn: nothing written
    made = InstructionsRecord(key.agent, key.repo.slug, key.thread, session_id, time.time(), files)
    store.save_instructions(made, fence=ctx.fence)


def _store(ctx: Context) -> InstructionStore:
    return ctx.store


# characters of a prompt kept for its template's words (as a new conversation's: decide.RESERVED)
_RESERVED = 16_000


def _diff_room(ctx: Context) -> int:
    """Characters the diff may take so that the whole prompt still fits the agent CLI's limits."""
    caps, instruction = ctx.agent.capabilities, ctx.resolved.instruction
    rooms = [32_000]
    if caps.max_prompt_chars is not None:
        rooms.append(caps.max_prompt_chars - len(instruction) - _RESERVED)
    if caps.max_prompt_bytes is not None:  # up to 4 bytes a character
        rooms.append(
            (caps.max_prompt_bytes - len(instruction.encode("utf-8", "replace")) - 4 * _RESERVED) // 4
        )
    return max(0, min(rooms))


# -- the scan ---------------------------------------------------------------------------------------


def scan(worktree: Path, patterns: tuple[str, ...], before: Mapping[str, Mapping[str, Any]]) -> Files:
    """The entries of the files ``patterns`` name in ``worktree`` (``dir/``: every file within, up to
    :data:`MAX_DEPTH` levels); an entry of ``before`` whose stamp is unchanged is taken as it is."""
    found: Files = {}
    kept = [0]  # text bytes kept so far
    for pattern in patterns:
        if len(found) >= MAX_FILES:
            break
        rel = pattern.rstrip("/")
        try:
            parts = nofollow.parts_of(rel)
        except OSError:
            continue  # an adapter's mistake, never a path out of the worktree
        walk = pattern.endswith("/")
        try:
            with nofollow.directory(worktree, parts[:-1]) as fd:
                _one(fd, parts[-1], rel, walk, before, found, kept, 0)
        except nofollow.Unsafe:
            found[rel] = _odd("link", rel)  # a directory on its way is a link (or no directory)
        except OSError:
            continue  # its directory is missing or unreadable: no such file
    return found


def _one(
    fd: int, name: str, rel: str, walk: bool, before: Mapping[str, Mapping[str, Any]], found: Files,
    kept: list[int], depth: int,
) -> None:  # fmt: skip
    """The entry of ``name`` in directory ``fd`` (``walk``: a directory, each of its files)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return  # absent
    if stat.S_ISLNK(st.st_mode):
        found[rel] = _link(fd, name, st)
    elif stat.S_ISDIR(st.st_mode):
        if walk and depth <= MAX_DEPTH:
            _walk(fd, name, rel, before, found, kept, depth)
    elif walk and depth == 0:
        return  # a file where a directory was expected: not what the agent reads
    elif stat.S_ISREG(st.st_mode):
        found[rel] = _file(fd, name, rel, st, before.get(rel), kept)
    else:
        found[rel] = _odd("other", rel, st.st_size)  # a FIFO, a socket, a device: never opened


def _walk(
    fd: int, name: str, rel: str, before: Mapping[str, Mapping[str, Any]], found: Files, kept: list[int],
    depth: int,
) -> None:  # fmt: skip
    try:
        inner = os.open(name, _DIR, dir_fd=fd)
    except OSError:
        return  # swapped for a link, or gone, since the stat: not read
    try:
        with os.scandir(inner) as entries:
            names = sorted(e.name for e in entries)
        for child in names:
            if len(found) >= MAX_FILES:
                return
            if not child.isprintable():
                continue  # a control character or bytes that are not UTF-8: never in a prompt or a table
            _one(inner, child, f"{rel}/{child}", True, before, found, kept, depth + 1)
    except OSError:
        return
    finally:
        os.close(inner)


def _stamp(st: os.stat_result) -> list[int]:
    """What says a file is unchanged without reading it: its size, times and inode (ctime cannot be set
    back by the agent, so a rewrite that restores the size and mtime is still seen)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


# the files whose text is kept: instructions in prose. Configuration (settings.json, .mcp.json, a
# config.toml) may hold credentials (an MCP server's env, an API key), which never reach the database:
# its changes are named, never shown
PROSE = (".md", ".mdc", ".markdown", ".txt")


def _file(
    fd: int, name: str, rel: str, st: os.stat_result, old: Mapping[str, Any] | None, kept: list[int]
) -> dict[str, Any]:
    """A regular file's entry: its digest and, for prose while there is room, its text."""
    if old is not None and old.get("stamp") == _stamp(st) and old.get("kind") in ("text", "binary", "big"):
        return _kept(dict(old), kept)
    try:
        digest, size, head, more, st = _read(fd, name)
    except OSError:
        return _odd("other", name, st.st_size)  # swapped for something else: not read
    entry: dict[str, Any] = {
        "kind": "text",
        "size": size,
        "stamp": _stamp(st),
        "sha256": digest,
        "text": None,
    }
    if more:
        entry["kind"] = "big"
        return entry
    text = _text(head[:MAX_TEXT], cut=len(head) > MAX_TEXT)
    if text is None:
        entry["kind"] = "binary"
        return entry
    if not rel.lower().endswith(PROSE):
        entry["config"] = True
        return entry
    if len(head[:MAX_TEXT]) <= MAX_KEPT - kept[0]:
        entry["text"], entry["cut"] = text, len(head) > MAX_TEXT
        kept[0] += len(head[:MAX_TEXT])
    return entry


def _kept(entry: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """An unchanged file's entry as recorded, its text kept while there is room."""
    text = entry.get("text")
    if isinstance(text, str):
        size = len(text.encode("utf-8"))
        if kept[0] + size > MAX_KEPT:
            entry["text"] = None  # no room left this time
        else:
            kept[0] += size
    return entry


def _read(fd: int, name: str) -> tuple[str, int, bytes, bool, os.stat_result]:
    """sha256 of the first :data:`MAX_HASH` bytes of regular file ``name`` (never through a link), its
    first ``MAX_TEXT + 1`` bytes, and whether there was more; OSError for anything but a regular file."""
    file = os.open(name, _OPEN, dir_fd=fd)
    try:
        st = os.fstat(file)
        if not stat.S_ISREG(st.st_mode):
            raise nofollow.Unsafe(errno.EINVAL, "not a regular file", name)
        hasher, head, total = hashlib.sha256(), bytearray(), 0
        for chunk in _chunks(file, MAX_HASH):
            hasher.update(chunk)
            if len(head) <= MAX_TEXT:
                head += chunk[: MAX_TEXT + 1 - len(head)]
            total += len(chunk)
        more = total >= MAX_HASH and bool(os.read(file, 1))
        size = st.st_size if more else total
        return hasher.hexdigest(), size, bytes(head), more, st
    finally:
        os.close(file)


def _chunks(fd: int, limit: int) -> Iterator[bytes]:
    left = limit
    while left > 0:
        chunk = os.read(fd, min(1 << 20, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _text(data: bytes, cut: bool) -> str | None:
    """``data`` as text, or None when it is not UTF-8 (or holds NUL bytes); a cut file's last,
    incomplete character is dropped."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        return decoder.decode(data, final=not cut)
    except UnicodeDecodeError:
        return None


def _link(fd: int, name: str, st: os.stat_result) -> dict[str, Any]:
    try:
        target = os.readlink(name, dir_fd=fd)[:MAX_LINK]
    except OSError:
        target = "?"
    digest = hashlib.sha256(target.encode("utf-8", "replace")).hexdigest()
    return {"kind": "link", "size": st.st_size, "target": target, "sha256": digest}


def _odd(kind: str, rel: str, size: int = 0) -> dict[str, Any]:
    return {"kind": kind, "size": size, "sha256": None}
