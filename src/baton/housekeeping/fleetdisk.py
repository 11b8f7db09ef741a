"""A fleet's disk: each worker reports its own volume's use to the shared store; every surface reads it.
In fleet mode the worktrees, transcripts and cache clones live on the workers' volumes, not on the API
service's, whose own ``BATON_HOME`` is nearly empty. So each ``baton worker`` measures its home
(:func:`baton.housekeeping.disk.usage`, the very numbers ``baton du`` prints there) and stores a small
document (:func:`worker_document`) in its row of the store's ``workers`` table, with the free and total
bytes of the filesystem holding its home (:class:`DiskReporter`); ``baton du --fleet``, the dashboard's
disk card and ``/metrics`` read the rows back (:func:`fleet_disk`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from baton.housekeeping.disk import DiskReport, usage
from baton.models import WorkerRecord
from baton.settings import Settings
from baton.store.base import KeyStore, ListingStore, WorkerStore
from baton.workspace.du import disk_usage

log = logging.getLogger("baton.housekeeping")
VERSION = 1
REPORT_EVERY = 300.0  # seconds between a worker's reports at most
STALE_SLACK = 60.0  # seconds a report may be late besides three of its periods
TOP_REPOS = 50
KINDS = ("worktrees", "transcripts", "caches", "homes", "logs", "store", "other")


def worker_document(report: DiskReport, logs: int, every: float, volume: str = "") -> dict[str, Any]:
    """The report stored for a worker (``workers.disk``, version 1) from its home's :class:`DiskReport`::

        {"version": 1, "home": "/data/baton", "used": 1234,   # bytes under BATON_HOME (``du -s``)
         "kinds": {"worktrees": …, "transcripts": …, "caches": …, "homes": …, "logs": …, "store": …,
                   "other": …},                              # a partition of "used"
         "agents": {"claude": …}, "repos": {"github.com/acme/api": …},  # worktrees + transcripts
         "sessions": 3,                                      # sessions with bytes on this volume
         "volume": "2049",                                   # the filesystem's device number
         "every": 300.0}                                     # seconds until the next report

    ``caches`` is the cache clones and the repositories' shared package caches, ``homes`` the agent
    homes besides the transcripts they hold, ``store`` a SQLite database (0 on PostgreSQL), ``other``
    the rest (templates, locks, orphans). Snapshot bytes are left out: they are in the shared store,
    not on the volume. ``repos`` keeps the :data:`TOP_REPOS` largest; the rest is summed under
    ``"(others)"``, so a row stays small however many repos a worker has served."""
    local = [s for s in report.sessions if s.worktree + s.transcript]
    kinds = {k: n for k, n in report.kinds().items() if k != "snapshots"}
    # a worker's caches: clones, package caches and prepared environments
    kinds["caches"] += kinds.pop("package_caches", 0) + kinds.pop("prepared", 0)
    kinds |= {"logs": logs, "store": report.store}
    kinds["other"] = max(0, report.total - sum(kinds.values()))
    agents: dict[str, int] = {}
    repos: dict[str, int] = {}
    for s in local:
        agents[s.agent] = agents.get(s.agent, 0) + s.worktree + s.transcript
        repos[s.repo] = repos.get(s.repo, 0) + s.worktree + s.transcript
    return {
        "version": VERSION,
        "home": report.home,
        "used": report.total,
        "kinds": {k: kinds[k] for k in KINDS},
        "agents": dict(sorted(agents.items())),
        "repos": _top(repos, TOP_REPOS),
        "sessions": len(local),
        "volume": volume,
        "every": every,
    }


def _top(values: dict[str, int], keep: int) -> dict[str, int]:
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    top = dict(ordered[:keep])
    if len(ordered) > keep:
        top["(others)"] = sum(n for _name, n in ordered[keep:])
    return top


class Reporting(KeyStore, ListingStore, WorkerStore, Protocol):
    """What a report needs of the store: the sessions (to measure them) and the workers' rows."""


@dataclass
class DiskReporter:
    """A worker's reports: measures its home and writes the row (creating it when the worker's
    heartbeat has not yet: the upsert is idempotent)."""

    settings: Settings
    name: str  # the worker's node name: its row in ``workers``
    queue: str = ""
    started_at: float = field(default_factory=time.time)
    took: float = 0.0  # seconds the last measurement took

    def period(self) -> float:
        """Seconds to wait before the next report: ``min(sweep_interval, REPORT_EVERY)``, never less
        than ten times the last walk took. A worker reports at its start, then every period, after the
        sweep when one was due (:func:`baton.housekeeping.sweep.sweep_periodically`)."""
        interval = self.settings.sweep_interval
        base = min(interval, REPORT_EVERY) if interval > 0 else REPORT_EVERY
        return max(base, 10 * self.took)

    def report(self, store: Reporting) -> dict[str, Any]:
        """Measure the home and store the report; returns the document."""
        started = time.monotonic()
        report = usage(store, self.settings, snapshots=False)
        logs = disk_usage(self.settings.home / "logs")
        self.took = time.monotonic() - started
        home = _existing(self.settings.home)
        document = worker_document(report, logs, self.period(), str(os.stat(home).st_dev))
        volume = shutil.disk_usage(home)
        now = time.time()
        if not store.report_worker_disk(self.name, document, volume.free, volume.total, now):
            store.worker_seen(self.record(now))
            store.report_worker_disk(self.name, document, volume.free, volume.total, now)
        return document

    def record(self, now: float) -> WorkerRecord:
        return WorkerRecord(self.name, socket.gethostname(), os.getpid(), self.queue, self.started_at, now)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- reading the fleet's reports ----------------------------------------------------------------------


@dataclass
class WorkerDisk:
    """One worker's row as the surfaces show it (the defaults: no report, or none that can be read)."""

    name: str
    host: str
    seen_at: float
    free: int | None
    size: int | None  # the volume's total bytes
    reported_at: float | None = None
    stale: bool = True
    used: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    agents: dict[str, int] = field(default_factory=dict)
    repos: dict[str, int] = field(default_factory=dict)
    home: str = ""
    volume: str = ""  # the host and device number of its filesystem ("" when unknown)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FleetDisk:
    """Every worker's latest report, and the total of the fresh ones (stale ones are listed only)."""

    workers: list[WorkerDisk]
    total: WorkerDisk  # named "total"; its ``reported_at`` is the oldest fresh report's

    @property
    def stale(self) -> int:
        return sum(w.stale for w in self.workers)

    def to_json(self) -> dict[str, Any]:
        return {"workers": [w.to_json() for w in self.workers], "total": self.total.to_json()}


def worker_disk(worker: WorkerRecord, now: float) -> WorkerDisk:
    """A worker's row; a report that cannot be read (another version's, or damaged) counts as none. A
    report older than three of its own ``every`` (and :data:`STALE_SLACK`) is **stale**: shown as such,
    and left out of the fleet's total and the byte gauges (a worker gone for good must not count
    forever; its row stays visible)."""
    row = WorkerDisk(worker.name, worker.host, worker.seen_at, worker.free_bytes, worker.total_bytes)
    if worker.disk is None or worker.disk_at is None:
        return row
    try:
        fields = _read(worker.disk, worker.host)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("the disk report of worker %s cannot be read; shown as none", worker.name)
        return row
    stale = now - worker.disk_at > 3 * fields.pop("every") + STALE_SLACK
    return replace(row, **fields, reported_at=worker.disk_at, stale=stale)


def _read(doc: dict[str, Any], host: str) -> dict[str, Any]:
    """The fields of a stored report (:func:`worker_document`); raises on anything else."""
    return {
        "used": int(doc["used"]),
        "kinds": {k: int(doc["kinds"].get(k, 0)) for k in KINDS},
        "agents": {str(k): int(v) for k, v in doc["agents"].items()},
        "repos": {str(k): int(v) for k, v in doc["repos"].items()},
        "home": str(doc["home"]),
        "volume": f"{host}:{doc['volume']}" if doc.get("volume") else "",
        "every": float(doc["every"]),
    }


def fleet_disk(store: WorkerStore, now: float | None = None) -> FleetDisk:
    """The fleet's disk from the workers' rows; ``workers`` is empty on a single machine. The total is
    the fresh reports': workers on one host that share a filesystem (same ``volume``) count its free and
    total bytes once, and workers sharing one home its bytes once."""
    now = time.time() if now is None else now
    rows = [worker_disk(w, now) for w in store.list_workers()]
    fresh = [w for w in rows if not w.stale]
    volumes = {w.volume or w.name: w for w in fresh}  # a filesystem shared by workers counts once
    homes = list({(w.volume, w.home) if w.volume else w.name: w for w in fresh}.values())  # a home too
    total = WorkerDisk(
        name="total",
        host="",
        seen_at=max((w.seen_at for w in fresh), default=0.0),
        reported_at=min((w.reported_at or 0.0 for w in fresh), default=None),
        stale=False,
        used=sum(w.used for w in homes),
        free=sum(w.free or 0 for w in volumes.values()),
        size=sum(w.size or 0 for w in volumes.values()),
        kinds={k: sum(w.kinds[k] for w in homes) for k in KINDS},
        agents=_sum(w.agents for w in homes),
        repos=_sum(w.repos for w in homes),
    )
    return FleetDisk(rows, total)


def _sum(maps: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for values in maps:
        for name, n in values.items():
            out[name] = out.get(name, 0) + n
    return dict(sorted(out.items()))
