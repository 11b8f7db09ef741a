"""Disk accounting, quotas and eviction. Every size here is *allocated* bytes, the measure of
:func:`~baton.workspace.du.disk_usage` (``du -s --block-size=1``'s), so what ``baton du`` shows, what
the sweeper reports as freed, what a quota compares and what ``du`` says are one number; on a volume
that clones files a worktree's bytes are split into shared and exclusive, and the home's total counts
each shared extent once (:mod:`baton.workspace.du`). :func:`usage` measures what ``baton du`` shows;
:func:`enforce_quota` keeps the home within ``disk_quota`` and ``min_free``: idle keys' rebuildable
artefacts pruned first (:mod:`baton.housekeeping.prune`), then the least-recently-used idle worktrees
evicted, each checkpointed first (:func:`evict`). What each number means: docs/cli.md, "Disk and expiry".
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from baton.errors import BatonError, Busy
from baton.housekeeping import prepared
from baton.housekeeping.diskscan import Scan
from baton.housekeeping.diskscan import SessionUsage as SessionUsage  # re-exported: callers import
from baton.housekeeping.diskscan import files_bytes as files_bytes  # these from here
from baton.housekeeping.diskscan import local_bytes as local_bytes
from baton.housekeeping.diskscan import local_transcript as local_transcript
from baton.housekeeping.diskscan import snapshot_bytes as snapshot_bytes
from baton.housekeeping.prepared import Removed
from baton.housekeeping.prune import PruneReport, PruneRules, prune_idle, rules
from baton.keys import Key, key_of
from baton.models import SessionRecord, SessionStatus
from baton.settings import Settings
from baton.store.base import KeyStore, ListingStore, SnapshotStore
from baton.store.leases import held, key_lease
from baton.workspace.cow import reflink
from baton.workspace.du import Usage, measure
from baton.workspace.keyspace import KEYS, repo_caches
from baton.workspace.workdirs import Workdirs, disk_usage

log = logging.getLogger("baton.housekeeping")


def free_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (its nearest existing ancestor)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


# -- the report ---------------------------------------------------------------------------------------


@dataclass
class DiskReport:
    """Bytes per session, totals per agent and per repo, cache clones, agent homes, the home's total
    (everything under ``BATON_HOME``) and the volume's free space.

    A session's *transcript* bytes are its whole key space (:mod:`baton.workspace.keyspace`: the key's
    agent home, where the CLI keeps the conversation and everything else of it, and its temp dir), plus
    any files of the conversation still in the agent's base home from before key spaces. An agent's
    *home* bytes are its base home and all its key spaces, so "homes besides transcripts" is the base
    homes (and the spaces of keys the store does not know). Store snapshot bytes are the compressed
    blobs the store holds for the snapshot (a chunk shared with another snapshot counts for each; that
    is rare: chunks carry ids). A worktree's *rebuildable* bytes are its artefacts (what pruning frees),
    counted by the same walk that measures it (:func:`~baton.workspace.du.measure`'s marks; git is asked
    once per worktree which entries they are, without writing anything); its *unique* bytes are the
    rest of its own (exclusive) bytes: the checkout and the agent's work, which only eviction frees."""

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
    # repo slug → its prepared environments: trees, bytes, preparations and hits so far
    prepared: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            "prepared": sum(int(p["bytes"]) for p in self.prepared.values()),
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
            "prepared": self.prepared,
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
    session whose worktree and key space are absent costs two ``stat`` calls (and, when its agent's
    base home exists, a look there for a conversation from before key spaces:
    :class:`~baton.housekeeping.diskscan.Scan`): 100,000 stored sessions with nothing on disk are
    measured in 3 s (bench/bench_scale.py)."""
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
    report.prepared = prepared.usage(settings)
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
    """What :func:`relieve` did: the prepared environments first, the prunings, then the evictions."""

    pruned: PruneReport
    evictions: list[Eviction]
    prepared: Removed = field(default_factory=Removed)  # the prepared environments removed, first


def relieve(
    store: KeyStore, settings: Settings, actor: str, prune_all: bool = False, dry_run: bool = False
) -> Relief:
    """Get the home within its limits: remove the repositories' prepared environments no turn holds
    (LRU), prune idle keys' artefacts (LRU; every idle key's with
    ``prune_all``), then evict idle worktrees (LRU) for what is still missing. A dry run lists the
    prunings and evicts nothing."""
    need = over_limit(settings)
    ready = prepared.relieve(settings, need, dry_run)  # rebuildable for any thread: first to go
    need -= ready.freed
    pruned = prune_idle(store, settings, need, actor, everything=prune_all, dry_run=dry_run)
    if dry_run:
        return Relief(pruned, [], ready)
    return Relief(pruned, evict_lru(store, settings, need - pruned.freed, actor), ready)


def enforce_quota(store: KeyStore, settings: Settings, actor: str) -> list[Eviction]:
    """Prune, then evict least-recently-used idle worktrees until the home is within its limits (over
    ``disk_quota`` for the home's use, or under ``min_free`` for the volume's free space: :func:`relieve`);
    the evictions."""
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
    run holds it); None when it has no worktree. Logged and audited as ``evict``. Only the directory
    goes: the session stays active, its branch, checkpoint ref and transcript stay, and its next run
    rebuilds the worktree from the checkpoint."""
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
