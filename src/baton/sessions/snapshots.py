"""Transcript snapshots: a session's transcript files, compressed and content-addressed in the store, so any
machine (or the same machine after its agent home was wiped) can resume the conversation. A snapshot maps
each file's path relative to the agent home to the SHA-256 digests of its chunks, each stored once,
zlib-compressed (:func:`chunks`), so a turn costs only what it appended; only the latest snapshot of a
key is kept. :func:`take_snapshot` and :func:`hydrate` never follow a link in the agent's home
(:mod:`baton.workspace.nofollow`), and both mark beside the home which snapshot its copy is in step
with (:mod:`baton.sessions.marks`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zlib
from pathlib import Path

from baton import tracing
from baton.agents.base import Agent
from baton.errors import StoreError
from baton.keys import Key
from baton.models import Fence, Snapshot
from baton.sessions.chunking import chunks
from baton.sessions.marks import mark
from baton.store.base import BlobStore, SnapshotStore
from baton.workspace import nofollow

# zlib's fastest level: the last chunk is compressed again every turn (256 KiB of JSONL: ~2 ms at level
# 1, ~4.5 ms at 6, for 8 % more bytes); smaller chunks would cost a hydration more blobs to read
LEVEL = 1
log = logging.getLogger("baton.sessions")


@tracing.traced("run.snapshot")
def take_snapshot(
    store: SnapshotStore, agent: Agent, key: Key, session_id: str, fence: Fence | None = None
) -> Snapshot | None:
    """Copy the session's transcript files into the store; None when there are none. Only chunks the
    previous snapshot does not already hold are compressed and written; with ``fence``, the store
    refuses the snapshot (:class:`baton.errors.Fenced`) of a runner whose lease was taken over. Blobs
    no snapshot uses any more are dropped by the store."""
    try:
        previous = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    except StoreError:
        previous = None  # unreadable: this snapshot replaces it whole
    known = previous.digests() if previous else set()
    files: dict[str, list[str]] = {}
    total = 0
    for path in agent.transcript_files(session_id):
        data = _read_transcript(agent, key, path)
        if data is None:
            continue
        digests = []
        for chunk in chunks(data):
            digest = hashlib.sha256(chunk).hexdigest()
            if digest not in known:
                store.put_blob(digest, zlib.compress(chunk, LEVEL), len(chunk))
                known.add(digest)
            digests.append(digest)
        files[str(path.relative_to(agent.home))] = digests
        total += len(data)
    if not files:
        return None
    snapshot = Snapshot(key.agent, key.repo.slug, key.thread, session_id, files, total, time.time())
    store.save_snapshot(snapshot, fence=fence)
    mark(agent, snapshot)
    return snapshot


def _read_transcript(agent: Agent, key: Key, path: Path) -> bytes | None:
    """A transcript file's bytes, read below the agent home without following a link; None (logged)
    for one that is a link, below one, not a regular file or outside the home: the agent home is the
    agent's to write, and a transcript replaced by a link to ``baton.db``, a private key or another key's
    transcript is left out of the snapshot."""
    try:
        return nofollow.read_beneath(agent.home, path.relative_to(agent.home))
    except (OSError, ValueError) as exc:
        log.warning("snapshot of %s: %s is left out (%s)", key, path, exc)
        return None


def _read_chunk(store: BlobStore, key: Key, digest: str) -> bytes:
    blob = store.get_blob(digest)
    if blob is None:
        raise StoreError(f"snapshot of {key} is missing blob {digest[:12]}")
    try:
        data = zlib.decompress(blob)
    except zlib.error as exc:
        raise StoreError(f"snapshot of {key}: blob {digest[:12]} is corrupt ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise StoreError(f"snapshot of {key}: blob {digest[:12]} is corrupt")
    return data


def _local_chunks(home: Path, rel: str, limit: int) -> dict[str, memoryview]:
    """The chunks of the local copy of ``rel`` by digest (none when it is missing, a link or below
    one): an older copy of an append-mostly transcript holds all but the last chunks of the snapshot,
    which then need not be read from the store and decompressed. A chunk is used only for its digest;
    a copy longer than ``limit`` bytes (the snapshot's) is not read."""
    try:
        if os.lstat(home / rel).st_size > limit:
            return {}
        data = nofollow.read_beneath(home, rel)
    except (OSError, ValueError):
        return {}
    return {hashlib.sha256(chunk).hexdigest(): chunk for chunk in chunks(data)}


def hydrate(
    store: SnapshotStore, agent: Agent, key: Key, session_id: str, cwd: Path, overwrite: bool = False
) -> Snapshot | None:
    """Write the key's snapshot of ``session_id`` back into the agent home; None if there is none.
    The chunks a local copy already holds are taken from it (:func:`_local_chunks`). Each file is written
    atomically (a temporary file of its own, then a rename), never through a directory the agent
    replaced by a link (a :class:`~baton.errors.StoreError`: the runner goes on as for an unusable
    snapshot), and never over a local file that is already longer unless ``overwrite``: the caller
    (:func:`baton.runner.decide.ensure_local`) found it damaged."""
    snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    if snapshot is None or snapshot.agent_session_id != session_id:
        return None
    for rel, digests in snapshot.files.items():
        try:
            nofollow.parts_of(rel)
        except nofollow.Unsafe:
            raise StoreError(f"snapshot of {key} names a path outside the agent home: {rel!r}") from None
        local = _local_chunks(agent.home, rel, snapshot.total_bytes)
        data = b"".join(
            local.get(d) or _read_chunk(store, key, d)
            for d in ([digests] if isinstance(digests, str) else digests)
        )
        try:
            nofollow.write_beneath(agent.home, rel, data, keep_longer=not overwrite)
        except nofollow.Unsafe as exc:
            raise StoreError(
                f"snapshot of {key} names a path outside the agent home: {rel!r} ({exc})"
            ) from exc
    agent.after_hydrate(session_id, cwd)
    mark(agent, snapshot)
    return snapshot
