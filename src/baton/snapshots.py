"""Transcript snapshots: a session's transcript files, compressed and content-addressed in the store,
so any machine (or the same machine after its agent home was wiped) can resume the conversation.

A snapshot maps each file's path *relative to the agent home* to the SHA-256 of its content; the
content is stored once per digest, zlib-compressed. Only the latest snapshot of a key is kept; blobs
no snapshot uses are dropped by the store. Hydration writes the files back atomically (temp + rename)
and never overwrites a local file that is already newer and longer — the local transcript wins.
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from pathlib import Path

from baton.agents.base import Agent
from baton.errors import StoreError
from baton.keys import Key
from baton.models import Snapshot
from baton.store.base import Store


def take_snapshot(store: Store, agent: Agent, key: Key, session_id: str) -> Snapshot | None:
    """Copy the session's transcript files into the store; None when there are none."""
    files: dict[str, str] = {}
    total = 0
    for path in agent.transcript_files(session_id):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        store.put_blob(digest, zlib.compress(data, 6), len(data))
        files[str(path.relative_to(agent.home))] = digest
        total += len(data)
    if not files:
        return None
    snapshot = Snapshot(key.agent, key.repo.slug, key.thread, session_id, files, total, time.time())
    store.save_snapshot(snapshot)
    return snapshot


def hydrate(
    store: Store, agent: Agent, key: Key, session_id: str, cwd: Path, overwrite: bool = False
) -> Snapshot | None:
    """Write the key's snapshot of ``session_id`` back into the agent home; None if there is none.

    ``overwrite``: replace local files even when they are longer (the caller found them unusable)."""
    snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    if snapshot is None or snapshot.agent_session_id != session_id:
        return None
    home = agent.home.resolve()
    for rel, digest in snapshot.files.items():
        target = (home / rel).resolve()
        if home not in target.parents:
            raise StoreError(f"snapshot of {key} names a path outside the agent home: {rel!r}")
        blob = store.get_blob(digest)
        if blob is None:
            raise StoreError(f"snapshot of {key} is missing blob {digest[:12]}")
        try:
            data = zlib.decompress(blob)
        except zlib.error as exc:
            raise StoreError(f"snapshot of {key}: blob {digest[:12]} is corrupt ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"snapshot of {key}: blob {digest[:12]} is corrupt")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite and target.exists() and target.stat().st_size >= len(data):
            continue
        tmp = target.with_name(f".{target.name}.baton-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    agent.after_hydrate(session_id, cwd)
    return snapshot
