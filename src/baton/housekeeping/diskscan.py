"""One session's bytes on this machine and in the store: its worktree, its transcript files (its key
space, and what of its conversation a run before key spaces left in the agent's base home) and its
snapshot's stored blobs; :class:`Scan` measures one session after another on a home, sharing what
does not change between them. The report that adds them up, and what the numbers mean, are
:mod:`baton.housekeeping.disk`'s.

A stored session whose worktree and key space are absent (evicted, expired, or on another machine)
costs two ``stat`` calls here and, when its agent's base home exists, a look there for its
conversation: over a store of 100,000 bare records the walk is the store's read, not the disk's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from baton.agents import get_agent
from baton.agents.base import Agent
from baton.errors import BatonError
from baton.housekeeping.prune import PruneRules, found_in
from baton.keys import Key, key_of
from baton.models import SessionRecord
from baton.settings import Settings
from baton.store.base import SnapshotStore
from baton.workspace.artefacts import Artefact
from baton.workspace.du import Usage, measure
from baton.workspace.keyspace import KEYS, MARK, conversation_files, key_dir
from baton.workspace.workdirs import disk_usage


def files_bytes(paths: list[Path]) -> int:
    """Allocated bytes of ``paths`` (missing ones count 0; hard links once)."""
    total, seen = 0, set()
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def local_transcript(settings: Settings, session: SessionRecord) -> list[Path]:
    """The agent's local files of the session's conversation, transcript and leftover stubs: in the
    key's home, and any a run before key spaces left in the agent's base home."""
    if not session.agent_session_id:
        return []
    try:
        return conversation_files(settings, key_of(session), session.agent_session_id)
    except (BatonError, KeyError):
        return []  # an agent this process does not know (a test's fake): its files cannot be found


def local_bytes(settings: Settings, session: SessionRecord, files: list[Path]) -> int:
    """What the session holds on this machine besides its worktree: its whole key space (the key's
    agent home and temp dir), and those of ``files`` (:func:`local_transcript`) outside it."""
    space = key_dir(settings, key_of(session))
    return disk_usage(space) + files_bytes([p for p in files if space not in p.parents])


def snapshot_bytes(store: SnapshotStore, session: SessionRecord) -> int:
    """Compressed bytes of the session's snapshot blobs in the store; 0 without a snapshot."""
    try:
        snapshot = store.get_snapshot(session.agent, session.repo, session.thread)
    except BatonError:
        return 0  # unreadable: its blobs go with the store's blob collection
    if snapshot is None:
        return 0
    return sum(len(store.get_blob(d) or b"") for d in snapshot.digests())


@dataclass(slots=True)
class SessionUsage:
    key: str
    agent: str
    repo: str
    thread: str
    status: str
    worktree: int  # bytes of the worktree directory
    transcript: int  # bytes of the key's space (its agent home: transcripts and the CLI's other files)
    snapshot: int  # bytes of the store's snapshot blobs
    last_used_at: float
    shared: int = 0  # of the worktree's bytes, those on extents other files share (reflinks)
    rebuildable: int = 0  # of the worktree's bytes, its artefacts' (what pruning frees)
    artefacts: list[dict[str, Any]] = field(default_factory=list)  # {path, kind, bytes}

    @property
    def total(self) -> int:
        return self.worktree + self.transcript + self.snapshot

    def to_json(self) -> dict[str, Any]:
        """Its fields and the derived sizes (by hand, not ``asdict``: its deep copies cost seconds
        over 100,000 sessions)."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["artefacts"] = [dict(a) for a in self.artefacts]
        return {**data, "total": self.total, "exclusive": self.exclusive, "unique": self.unique}

    @property
    def exclusive(self) -> int:
        """The worktree's own bytes: what removing it frees."""
        return self.worktree - self.shared

    @property
    def unique(self) -> int:
        """The worktree's own bytes besides its artefacts: its checkout and the agent's work."""
        return max(0, self.exclusive - self.rebuildable)


_FIELDS = tuple(f.name for f in fields(SessionUsage))


class Scan:
    """Measures sessions one after another on one home, sharing what does not change between them:
    the worktrees' paths, the artefact rules, the extents seen so far, and each agent's base home
    (looked up once: whether it holds anything a session's files could be among)."""

    def __init__(self, settings: Settings, table: PruneRules, extents: bool, into: Usage) -> None:
        self.settings, self.table, self.extents, self.into = settings, table, extents, into
        # the roots of Workdirs.worktree_path and keyspace.key_dir, as strings: joined for every stored
        # session, a pathlib.Path each would be most of the time of a store of bare records
        # (tests/workspace/test_du_scale.py checks them against those functions)
        self.worktrees = os.path.join(settings.home, "worktrees")
        self.spaces = os.path.join(settings.home, KEYS)
        self._bases: dict[str, Agent | None] = {}

    def session(self, session: SessionRecord, snapshot: int) -> SessionUsage:
        key = key_of(session)
        before = (self.into.allocated, self.into.shared)
        found: list[Artefact] = []
        marks: dict[str, int] = {}
        # as os.path.join, without its checks (the key's parts are validated names)
        path = f"{self.worktrees}/{key.agent}/{key.repo.slug}/{key.thread}"
        if os.path.lexists(path):  # most stored sessions have none (evicted, or on another machine)
            found = found_in(self.settings, key, self.table.of(key.repo.slug))
            marks = dict.fromkeys((a.path for a in found), 0)
            measure(Path(path), self.extents, self.into, marks)
        return SessionUsage(
            key=str(key),
            agent=sys.intern(session.agent),  # one string per agent, repo and status, not per session
            repo=sys.intern(session.repo),
            thread=session.thread,
            status=session.status.value,
            worktree=self.into.allocated - before[0],
            transcript=self.transcript(session, key),
            snapshot=snapshot,
            last_used_at=session.last_used_at,
            shared=self.into.shared - before[1],
            rebuildable=sum(marks.values()),
            artefacts=[{"path": a.path, "kind": a.kind, "bytes": marks[a.path]} for a in found],
        )

    def transcript(self, session: SessionRecord, key: Key) -> int:
        """:func:`local_bytes` of the session; without a key space, only its files in the agent's base
        home can hold bytes, looked for through the base adapter kept for the agent."""
        if os.path.isdir(f"{self.spaces}/{key.agent}/{key.repo.slug}/{MARK}{key.thread}"):
            return local_bytes(self.settings, session, local_transcript(self.settings, session))
        base = self.base(session.agent)
        if base is None or not session.agent_session_id:
            return 0
        ident = session.agent_session_id
        try:
            return files_bytes([*base.transcript_files(ident), *base.leftover_files(ident)])
        except (BatonError, KeyError):
            return 0  # as local_transcript: files this process cannot find count 0

    def base(self, agent: str) -> Agent | None:
        """The agent's base adapter; None for an agent this process does not know or a base home
        that does not exist (nothing of any session can be in it)."""
        if agent not in self._bases:
            try:
                found: Agent | None = get_agent(agent, self.settings)
            except (BatonError, KeyError):
                found = None
            self._bases[agent] = found if found is not None and found.home.is_dir() else None
        return self._bases[agent]
