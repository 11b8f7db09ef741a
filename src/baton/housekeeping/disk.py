"""Disk accounting, quotas and eviction.

Every size here is *allocated* bytes (``st_blocks * 512`` of files, directories and symlinks, hard
links counted once), the measure of :func:`~baton.workspace.du.disk_usage`, which equals
``du -s --block-size=1``; so what ``baton du`` shows, what the sweeper reports as freed, what a quota
compares and what ``du`` says are one number. Store snapshot bytes are the compressed blobs the store
holds for the snapshot (a chunk shared with another snapshot counts for each; that is rare: chunks carry ids).

A session's *transcript* bytes are its whole key space (:mod:`baton.workspace.keyspace`: the key's
agent home, where the CLI keeps the conversation and everything else of it, and its temp dir), plus
any files of the conversation still in the agent's base home from before key spaces. An agent's
*home* bytes are its base home and all its key spaces, so "homes besides transcripts" is the base
homes (and the spaces of keys the store does not know).

**Reflinks.** On a volume that clones files (XFS, btrfs: :mod:`baton.workspace.reflink`, probed once
per volume), worktrees are reflinked copies of pristine checkouts (:mod:`baton.workspace.pristine`) and
their untouched files share blocks. There each worktree's bytes are split into *shared* (on extents
another file also uses) and *exclusive* (its own: what removing it frees), read with ``FIEMAP``; the
home's total and the worktrees' *physical* bytes count each shared extent once (:mod:`baton.workspace.du`),
so twenty reflinked worktrees do not look like twenty checkouts; ``du`` would count them twenty times.
Elsewhere nothing is shared and every number is ``du``'s.

**Quota.** :func:`enforce_quota` compares the use of ``BATON_HOME`` with ``disk_quota`` and the volume's
free space with ``min_free``. Over either limit it evicts the least-recently-used *idle* worktrees (the
key's lease taken with no wait: a running key is never touched): checkpoint first, then remove the
worktree directory only. The session stays active; its branch, checkpoint ref and transcript stay, and
its next run rebuilds the worktree from the checkpoint. Each eviction is logged and audited. Before
any eviction, :func:`relieve` prunes idle keys' rebuildable artefacts (:mod:`baton.housekeeping.prune`),
least recently used first, and evicts only if that did not free enough.

**Rebuildable and unique.** A worktree's *rebuildable* bytes are its artefacts (ignored, untracked
``node_modules``, ``.venv``, ``target``, ...: what pruning frees), counted by the same walk that
measures the worktree (:func:`~baton.workspace.du.measure`'s marks; git is asked once per worktree which
entries they are, without writing anything); its *unique* bytes are the rest of its own (exclusive)
bytes: the checkout and the agent's work, which only eviction frees, after a checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from baton.agents import get_agent
from baton.agents.base import Agent
from baton.errors import BatonError, Busy
from baton.housekeeping.prune import PruneReport, PruneRules, found_in, prune_idle, rules
from baton.keys import Key, key_of
from baton.models import SessionRecord, SessionStatus
from baton.settings import Settings
from baton.store.base import KeyStore, ListingStore, SnapshotStore
from baton.store.leases import held, key_lease
from baton.workspace import reflink
from baton.workspace.artefacts import Artefact
from baton.workspace.du import Usage, measure
from baton.workspace.keyspace import KEYS, MARK, conversation_files, key_dir, repo_caches
from baton.workspace.workdirs import Workdirs, disk_usage

log = logging.getLogger("baton.housekeeping")


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


def free_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (its nearest existing ancestor)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


# -- the report ---------------------------------------------------------------------------------------


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


_TOTALS = ("sessions", "worktree", "transcript", "snapshot")
_FIELDS = tuple(f.name for f in fields(SessionUsage))


@dataclass
class DiskReport:
    """Bytes per session, totals per agent and per repo, cache clones, agent homes, the home's total
    (everything under ``BATON_HOME``) and the volume's free space."""

    home: str
    total: int
    free: int
    quota: int | None
    min_free: int
    sessions: list[SessionUsage] = field(default_factory=list)
    caches: dict[str, int] = field(default_factory=dict)  # repo slug → bytes of its cache clone
    package_caches: dict[str, int] = field(
        default_factory=dict
    )  # repo slug → its threads' shared package caches
    homes: dict[str, int] = field(default_factory=dict)  # agent → bytes of its base home and key homes
    store: int = 0  # bytes of the SQLite database (0 for a remote store)
    worktrees_physical: int = 0  # the worktrees' bytes with each shared extent counted once

    def worktrees(self) -> dict[str, int]:
        """The sessions' worktrees together: allocated (as ``du`` counts), shared, exclusive, and
        physical (what the volume holds for them: shared extents once)."""
        allocated = sum(s.worktree for s in self.sessions)
        shared = sum(s.shared for s in self.sessions)
        physical = self.worktrees_physical or allocated
        return {
            "allocated": allocated,
            "shared": shared,
            "exclusive": allocated - shared,
            "physical": physical,
        }

    def per(self, attr: str) -> dict[str, dict[str, int]]:
        """Totals by ``agent`` or ``repo``: worktree, transcript, snapshot and sessions."""
        out: dict[str, dict[str, int]] = {}
        for s in self.sessions:
            row = out.setdefault(
                getattr(s, attr), {"sessions": 0, "worktree": 0, "transcript": 0, "snapshot": 0}
            )
            row["sessions"] += 1
            row["worktree"] += s.worktree
            row["transcript"] += s.transcript
            row["snapshot"] += s.snapshot
        return out

    def kinds(self) -> dict[str, int]:
        """Bytes by kind, without overlap: worktrees, transcripts, snapshots (in the store), cache
        clones, and the agent homes apart from the transcripts they hold."""
        transcripts = sum(s.transcript for s in self.sessions)
        return {
            "worktrees": sum(s.worktree for s in self.sessions),
            "transcripts": transcripts,
            "snapshots": sum(s.snapshot for s in self.sessions),
            "caches": sum(self.caches.values()),
            "package_caches": sum(self.package_caches.values()),
            "homes": max(0, sum(self.homes.values()) - transcripts),
        }

    def to_json(self, sessions: bool = True) -> dict[str, Any]:
        """Everything, the sessions last (``sessions=False``: without them, for a caller that
        writes them one at a time, :meth:`SessionUsage.to_json`)."""
        data = {
            "home": self.home,
            "total": self.total,
            "free": self.free,
            "quota": self.quota,
            "min_free": self.min_free,
            "store": self.store,
            "agents": self.per("agent"),
            "repos": self.per("repo"),
            "caches": self.caches,
            "package_caches": self.package_caches,
            "homes": self.homes,
            "worktrees": self.worktrees(),
            "rebuildable": sum(s.rebuildable for s in self.sessions),
            "unique": sum(s.unique for s in self.sessions),
        }
        if sessions:
            data["sessions"] = [s.to_json() for s in self.sessions]
        return data


class MeasuredStore(SnapshotStore, ListingStore, Protocol):
    """What :func:`usage` reads: the sessions, a page at a time, and their snapshots' sizes."""


def usage(store: MeasuredStore, settings: Settings, snapshots: bool = True) -> DiskReport:
    """Measure everything ``baton du`` and ``GET /v1/disk`` show (walks the directories: seconds on a
    large home, so the service computes it on request, never per metric scrape). ``snapshots=False``
    leaves the store's snapshot bytes at 0 (a fleet worker's report: they are not on its volume, and
    reading every blob from a shared store on each report would cost more than the walk).

    It costs what is on disk, not what is in the store: the sessions are read a page at a time, their
    snapshots' sizes in batches (:meth:`~baton.store.base.SnapshotStore.snapshot_sizes`), and a
    session whose worktree and key space are absent costs two ``stat`` calls (and a look in its
    agent's base home, only when that home holds conversations from before key spaces): 100,000
    stored sessions with nothing on disk are measured in seconds (bench/bench_scale.py)."""
    home = settings.home
    db = settings.db_path
    extents = clones_files(home)
    report = DiskReport(
        home=str(home),
        total=measure(home, extents).physical,
        free=free_bytes(home),
        quota=settings.disk_quota_bytes,
        min_free=settings.min_free_bytes,
        store=sum(files_bytes([db.with_name(db.name + s)]) for s in ("", "-wal", "-shm")),
    )
    worktrees = Usage()  # every worktree's extents in one set: each shared extent counted once
    scan = Scan(settings, rules(settings), extents, worktrees)
    sizes = dict(store.snapshot_sizes()) if snapshots else {}
    for session in store.iter_sessions():
        key = (session.agent, session.repo, session.thread)
        report.sessions.append(scan.session(session, sizes.get(key, 0)))
    report.worktrees_physical = worktrees.physical
    repos = home / "repos"
    if repos.is_dir():
        for cache in sorted(repos.rglob("*.git")):
            if (cache / "HEAD").is_file():
                report.caches[cache.relative_to(repos).as_posix().removesuffix(".git")] = disk_usage(cache)
    report.homes = home_bytes(settings)
    report.package_caches = {slug: disk_usage(path) for slug, path in repo_caches(settings).items()}
    return report


def home_bytes(settings: Settings) -> dict[str, int]:
    """Bytes per agent of its homes: the base home and every key's (the keys' count as transcripts too)."""
    found: dict[str, int] = {}
    for root in (settings.home / "homes", settings.home / KEYS):
        if root.is_dir():
            for path in sorted(p for p in root.iterdir() if p.is_dir()):
                found[path.name] = found.get(path.name, 0) + disk_usage(path)
    return dict(sorted(found.items()))


def clones_files(home: Path) -> bool:
    """Whether ``home``'s volume clones files, so extents can be shared (probed once per volume)."""
    try:
        return reflink.supported(home, home)
    except OSError:
        return False


def session_usage(
    store: SnapshotStore,
    settings: Settings,
    session: SessionRecord,
    snapshots: bool = True,
    into: Usage | None = None,
    extents: bool = False,
    table: PruneRules | None = None,
) -> SessionUsage:
    """One session's bytes; ``into``: the measurement of all worktrees this one's is added to;
    ``table``: the kinds of artefacts (default: the settings')."""
    scan = Scan(settings, table or rules(settings), extents, into if into is not None else Usage())
    return scan.session(session, snapshot_bytes(store, session) if snapshots else 0)


class Scan:
    """Measures sessions one after another on one home, sharing what does not change between them:
    the worktrees' paths, the artefact rules, the extents seen so far, and each agent's base home
    (looked up once: whether it holds anything a session's files could be among)."""

    def __init__(self, settings: Settings, table: PruneRules, extents: bool, into: Usage) -> None:
        self.settings, self.table, self.extents, self.into = settings, table, extents, into
        # the roots of Workdirs.worktree_path and keyspace.key_dir, as strings: joined for every stored
        # session, a pathlib.Path each would be most of the time of a store of bare records
        # (tests/test_du_scale.py checks them against those functions)
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


# -- quota and eviction -------------------------------------------------------------------------------


@dataclass
class Eviction:
    """One evicted worktree: its bytes, and where its uncommitted work is kept."""

    key: str
    worktree: str
    bytes: int
    checkpoint: str | None  # the checkpoint commit (None: the worktree was clean; its branch holds all)
    checkpoint_ref: str | None
    cache: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def over_limit(settings: Settings) -> int:
    """Bytes to free now to get under ``disk_quota`` and above ``min_free``; 0 when within both."""
    need = 0
    quota = settings.disk_quota_bytes
    if quota is not None:
        need = max(need, measure(settings.home, clones_files(settings.home)).physical - quota)
    return max(need, settings.min_free_bytes - free_bytes(settings.home))


@dataclass
class Relief:
    """What :func:`relieve` did: the prunings first, then the evictions."""

    pruned: PruneReport
    evictions: list[Eviction]


def relieve(
    store: KeyStore, settings: Settings, actor: str, prune_all: bool = False, dry_run: bool = False
) -> Relief:
    """Get the home within its limits: prune idle keys' artefacts (LRU; every idle key's with
    ``prune_all``), then evict idle worktrees (LRU) for what is still missing. A dry run lists the
    prunings and evicts nothing."""
    need = over_limit(settings)
    pruned = prune_idle(store, settings, need, actor, everything=prune_all, dry_run=dry_run)
    if dry_run:
        return Relief(pruned, [])
    return Relief(pruned, evict_lru(store, settings, need - pruned.freed, actor))


def enforce_quota(store: KeyStore, settings: Settings, actor: str) -> list[Eviction]:
    """Prune, then evict least-recently-used idle worktrees until the home is within its limits
    (module doc); the evictions."""
    return relieve(store, settings, actor).evictions


def evict_lru(store: KeyStore, settings: Settings, need: int, actor: str) -> list[Eviction]:
    """Evict least-recently-used idle worktrees until ``need`` bytes are freed."""
    evictions: list[Eviction] = []
    if need <= 0:
        return evictions
    workdirs = Workdirs(settings)
    candidates = [s for s in store.list_sessions() if s.status != SessionStatus.CLOSED]
    for session in sorted(candidates, key=lambda s: s.last_used_at):
        if need <= 0:
            break
        key = key_of(session)
        if not workdirs.worktree_path(key).exists():
            continue
        try:
            eviction = evict(store, settings, key, actor)
        except Busy:
            continue  # running: never touched
        except (BatonError, OSError) as exc:
            log.warning("could not evict the worktree of %s: %s", key, exc)
            continue
        if eviction is not None:
            evictions.append(eviction)
            need -= eviction.bytes
    return evictions


def evict(store: KeyStore, settings: Settings, key: Key, actor: str) -> Eviction | None:
    """Checkpoint the key's worktree, then remove its directory (under its lease, no wait: Busy when a
    run holds it); None when it has no worktree. Audited as ``evict``."""
    workdirs = Workdirs(settings)
    path = workdirs.worktree_path(key)
    with held(key_lease(settings, store, key.id), 0.0, settings.heartbeat):
        if not path.exists():
            return None
        size = measure(path, clones_files(settings.home)).exclusive  # what removing it frees
        commit = workdirs.checkpoint(key, path)
        workdirs.remove_worktree_dir(key)
    ref = workdirs.checkpoint_ref(key) if commit else None
    eviction = Eviction(str(key), str(path), size, commit, ref, str(workdirs.cache_path(key.repo)))
    log.info("evicted the worktree of %s (%d bytes; checkpoint %s)", key, size, ref or "none: clean")
    store.audit("evict", str(key), actor, {**eviction.to_json(), "at": time.time()})
    return eviction
