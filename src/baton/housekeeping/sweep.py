"""The sweeper: expiry, purge of closed sessions, orphan worktrees, ``git worktree prune``, the shared
package caches no session is left of, and what a dead runner's run left running (:func:`sweep`); then
the disk's limits, pruning before eviction (:func:`sweep_and_enforce`). Expiry never loses work at
once: an expired session is only *closed* (:mod:`baton.housekeeping.cleanup`), and purged after its
grace period. A key whose lease is live is never touched (each key is handled under its lease, taken
with no wait), and the dry run goes through the very same code, stopping before the first change, so
its report is what the real run would do. ``baton serve`` and each ``baton worker`` sweep their own
home periodically (:func:`sweep_periodically`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from baton.errors import BatonError, Busy
from baton.housekeeping import prepared
from baton.housekeeping.cleanup import close_locked, would_checkpoint
from baton.housekeeping.disk import files_bytes, local_bytes, local_transcript, relieve, snapshot_bytes
from baton.housekeeping.fleetdisk import DiskReporter
from baton.keys import Key, key_of
from baton.models import Fence, SessionRecord, SessionStatus
from baton.sandbox.contain import end_unsupervised
from baton.settings import Settings
from baton.store import store_for
from baton.store.base import KeyStore, Store
from baton.store.duties import Duty
from baton.store.leases import held, key_lease
from baton.workspace import containers
from baton.workspace.gitcmd import run_git
from baton.workspace.keyspace import remove_repo_caches, remove_space, repo_caches
from baton.workspace.locks import file_lock
from baton.workspace.workdirs import Workdirs, disk_usage, remove_empty_parents

log = logging.getLogger("baton.housekeeping")
CATEGORIES = ("worktrees", "transcripts", "snapshots", "logs", "orphans", "package_caches", "prepared")


@dataclass
class SweepReport:
    """What a sweep did (or, dry, would do): keys expired and purged, keys skipped because a run holds
    them, orphan directories, pruned caches, freed bytes by category, where checkpoints are kept."""

    dry_run: bool = False
    expired: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key or path → why
    orphans: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # cache clones `git worktree prune` ran in
    freed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    checkpoints: dict[str, str] = field(default_factory=dict)  # expired key → checkpoint ref kept
    errors: dict[str, str] = field(default_factory=dict)
    job_leases: int = 0  # released lease rows of ended jobs deleted from the store
    package_caches: list[str] = field(default_factory=list)  # repos with no session left: caches removed
    prepared: list[str] = field(default_factory=list)  # prepared environments removed (unused, or pressure)
    services: list[str] = field(default_factory=list)  # keys' service containers stopped (idle, or key gone)
    # run → the processes it left running, ended (its runner died)
    leftovers: dict[str, int] = field(default_factory=dict)

    @property
    def freed_total(self) -> int:
        return sum(self.freed.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "freed_total": self.freed_total}


def sweep(
    store: Store, settings: Settings, dry_run: bool = False, now: float | None = None, sessions: bool = True
) -> SweepReport:
    """One sweep. Never raises for one key: its error is in the report. Two stages, so that expiry
    never loses work at once:

    - **expire**: a session past its TTL (``expires_at``) is *closed* like a gone branch
      (:func:`baton.housekeeping.cleanup.close_locked`): checkpoint, snapshot, then its worktree and
      its key space (the key's agent home with the transcript, and its temp dir) are removed; the store
      keeps its snapshot, checkpoint and rows for ``closed_grace_days`` (a run in that time resumes it);
    - **purge**: a closed session past its grace period loses the rest: snapshot (and blobs no other
      snapshot uses), checkpoint ref, run records with their event logs, and the session row. Its
      branch stays in the cache clone: commits are never deleted by a sweep. With
      ``closed_grace_days = 0`` an expired session is purged by the next sweep.

    Then directories under ``worktrees/`` that no session owns are removed, every cache clone gets a
    ``git worktree prune``, and the shared package caches of a repository no session is left of are
    removed, and so are the repositories' prepared environments no thread was given for
    ``prepared_idle_days``; the keys' service containers no turn used for ``services_idle_minutes`` (or
    whose key is gone) are stopped. A busy key is reported as skipped (an orphan directory too: it may be
    the worktree a new run is building before it saves its session). Last, what a dead runner's run left
    running in its control group (:mod:`baton.sandbox.cgroups`: its runner was killed, and no run of its key
    came since) is ended, counted per run in ``leftovers``. Freed bytes are measured before removal
    (allocated bytes, as in :mod:`baton.housekeeping.disk`), by category. ``sessions=False``: this home's
    part only (its orphans, caches and leftovers): the store's sessions are another process's
    duty (:func:`sweep_periodically`)."""
    sweeper = _Sweeper(store, settings, SweepReport(dry_run=dry_run), time.time() if now is None else now)
    for session in store.list_sessions() if sessions else ():
        if 0 < session.expires_at < sweeper.now:
            closed = session.status == SessionStatus.CLOSED
            sweeper.guarded(key_of(session), sweeper.purge if closed else sweeper.expire)
    sweeper.orphans()
    sweeper.prune()
    _package_caches(store, settings, sweeper.report)
    _prepared(sweeper.report, prepared.sweep_unused(settings, sweeper.now, dry_run))
    _services(sweeper.report, settings, sweeper.now, dry_run)
    if not dry_run:
        sweeper.report.leftovers = end_unsupervised(store.get_run)
    return sweeper.report


@dataclass
class _Sweeper:
    store: Store
    settings: Settings
    report: SweepReport
    now: float
    fence: Fence | None = None  # the proof of the lease the current action holds

    @property
    def dry_run(self) -> bool:
        return self.report.dry_run

    def guarded(self, key: Key, action: Callable[[Key, SessionRecord], None]) -> None:
        """Run ``action`` under the key's lease (no wait); a busy key is skipped, an error reported.
        The session is read again under the lease: a run may have used (or closed) it since."""
        lease = key_lease(self.settings, self.store, key.id)
        try:
            with held(lease, 0.0, self.settings.heartbeat):
                self.fence = lease.proof  # what the action's writes about the key carry
                session = self.store.get_session(key.agent, key.repo.slug, key.thread)
                if session is not None and 0 < session.expires_at < self.now:
                    action(key, session)
        except Busy:
            self.report.skipped[str(key)] = "busy: a run holds the key"
        except (BatonError, OSError) as exc:
            log.warning("sweep: %s: %s", key, exc)
            self.report.errors[str(key)] = str(exc)

    def expire(self, key: Key, session: SessionRecord) -> None:
        if session.status == SessionStatus.CLOSED:
            return self.purge(key, session)
        workdirs = Workdirs(self.settings)
        path = workdirs.worktree_path(key)
        worktree = disk_usage(path)
        files = local_transcript(self.settings, session)
        transcripts = local_bytes(self.settings, session, files)
        if self.dry_run:
            ref = workdirs.checkpoint_ref(key) if would_checkpoint(workdirs, key, path) else None
        else:
            ref = close_locked(self.store, self.settings, key, session, files, self.fence).checkpoint_ref
        if ref:
            self.report.checkpoints[str(key)] = ref
        self.report.expired.append(str(key))
        self.report.freed["worktrees"] += worktree
        self.report.freed["transcripts"] += transcripts
        return None

    def purge(self, key: Key, session: SessionRecord) -> None:
        if session.status != SessionStatus.CLOSED:
            return self.expire(key, session)
        store, workdirs = self.store, Workdirs(self.settings)
        files = local_transcript(self.settings, session)
        runs = store.list_runs(key.agent, key.repo.slug, key.thread, limit=1_000_000)
        logs = [Path(r.log_path) for r in runs if r.log_path]
        sizes = {
            "worktrees": disk_usage(workdirs.worktree_path(key)),  # one a failed close left behind
            "transcripts": local_bytes(self.settings, session, files),  # a key space a failed close left
            "snapshots": snapshot_bytes(store, session),
            "logs": files_bytes(logs),
        }
        if not self.dry_run:
            workdirs.remove_worktree_dir(key)
            for path in [*files, *logs]:
                path.unlink(missing_ok=True)
            remove_space(self.settings, key)
            store.delete_snapshot(key.agent, key.repo.slug, key.thread)
            workdirs.drop_checkpoint(key)
            store.delete_checkpoint(key.agent, key.repo.slug, key.thread)  # the one other machines share
            store.delete_runs(key.agent, key.repo.slug, key.thread)
            store.delete_session(key.agent, key.repo.slug, key.thread)
        self.report.purged.append(str(key))
        for name, size in sizes.items():
            self.report.freed[name] += size
        return None

    def orphans(self) -> None:
        _orphans(self.store, self.settings, self.report)

    def prune(self) -> None:
        _prune(self.settings, self.report)
        if not self.dry_run:
            try:
                self.report.job_leases = self.store.prune_job_leases()
            except BatonError as exc:
                self.report.errors["job leases"] = str(exc)


def _services(report: SweepReport, settings: Settings, now: float, dry_run: bool) -> None:
    """The keys' service containers idle for ``services_idle_minutes``, or whose key is gone, stopped."""
    stopped, errors = containers.sweep_idle(settings, now, dry_run)
    report.services += stopped
    report.errors.update(errors)


# -- orphans and prune ----------------------------------------------------------------------------------


def _orphans(store: KeyStore, settings: Settings, report: SweepReport) -> None:
    """Remove directories under ``worktrees/`` that no session owns (each under the lease its path
    would be the key of: a new run holds it while it builds its worktree, before its session exists)."""
    root = settings.home / "worktrees"
    if not root.is_dir():
        return
    workdirs = Workdirs(settings)
    owned = {workdirs.worktree_path(key_of(s)) for s in store.list_sessions()}
    above = {parent for path in owned for parent in path.parents}
    for path in _unowned(root, owned, above):
        rel = path.relative_to(root).as_posix()
        try:
            with held(key_lease(settings, store, rel), 0.0, settings.heartbeat):
                size = disk_usage(path)
                if not report.dry_run:
                    shutil.rmtree(path)
                    remove_empty_parents(path.parent, root)
        except Busy:
            report.skipped[str(path)] = "busy: a run holds the key of this directory"
            continue
        except OSError as exc:
            report.errors[str(path)] = str(exc)
            continue
        report.orphans.append(str(path))
        report.freed["orphans"] += size


def _unowned(directory: Path, owned: set[Path], above: set[Path]) -> list[Path]:
    """The orphans in ``directory``: not owned, not above an owned path, and holding a worktree (a
    ``.git``), files, or nothing; a directory of directories only is searched further down."""
    found: list[Path] = []
    for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()):
        if child in owned:
            continue
        entries = [] if child in above else list(child.iterdir())
        if child in above or (entries and all(e.is_dir() and e.name != ".git" for e in entries)):
            found += _unowned(child, owned, above)
        else:
            found.append(child)
    return found


def _package_caches(store: KeyStore, settings: Settings, report: SweepReport) -> None:
    """Remove the shared package caches of repositories no session is left of (under the repo's lock,
    the sessions read again: a run saves its session before its agent gets the caches)."""
    for slug, path in repo_caches(settings).items():
        if store.list_sessions(repo=slug, limit=1):
            continue
        size = disk_usage(path)
        try:
            with file_lock(settings.home, f"repo:{slug}"):
                if store.list_sessions(repo=slug, limit=1):
                    continue
                if not report.dry_run:
                    remove_repo_caches(settings, slug)
        except (BatonError, OSError) as exc:
            report.errors[str(path)] = str(exc)
            continue
        report.package_caches.append(slug)
        report.freed["package_caches"] += size


def _prepared(report: SweepReport, removed: prepared.Removed) -> None:
    """Prepared environments removed: listed, their bytes freed, the busy ones skipped."""
    report.prepared += removed.trees
    report.freed["prepared"] += removed.freed
    report.skipped.update(removed.skipped)
    report.errors.update(removed.errors)


def _prune(settings: Settings, report: SweepReport) -> None:
    """``git worktree prune`` in every cache clone (under its repo lock, as the runner does)."""
    repos = settings.home / "repos"
    if not repos.is_dir():
        return
    for cache in sorted(repos.rglob("*.git")):
        if not (cache / "HEAD").is_file():
            continue
        slug = cache.relative_to(repos).as_posix().removesuffix(".git")
        if not report.dry_run:
            try:
                with file_lock(settings.home, f"repo:{slug}"):
                    run_git(["worktree", "prune"], cwd=cache)
            except BatonError as exc:
                report.errors[str(cache)] = str(exc)
                continue
        report.pruned.append(slug)


# -- the service's sweeper thread ---------------------------------------------------------------------


def sweep_periodically(settings: Settings, stop: threading.Event, worker: str = "", queue: str = "") -> None:
    """The sweeper thread of ``baton serve`` and of each ``baton worker``: sweep and enforce the quota
    every ``sweep_interval`` seconds until ``stop`` (0: never). Audited with actor ``sweeper``; never
    raises (a failed sweep is logged and the next one tries again).

    A fleet worker (``worker``: its node name, ``queue`` the one it consumes) also reports its volume's
    use to the store (:mod:`baton.housekeeping.fleetdisk`): at start, then every
    :meth:`~baton.housekeeping.fleetdisk.DiskReporter.period` (after the sweep when one is due), so the
    dashboard and ``baton du --fleet`` see its disk within minutes, not once a day. Between sweeps,
    the keys' idle services are stopped every half ``services_idle_minutes`` (at most every minute)."""
    interval, duty = settings.sweep_interval, Duty(settings, "sessions")
    due = time.monotonic() + interval
    if not worker:
        tick = _tick(settings, interval)
        while tick > 0 and not stop.wait(tick):
            if interval > 0 and time.monotonic() >= due:
                sweep_once(settings, duty=duty)
                due = time.monotonic() + interval
            else:
                stop_idle_services(settings)
        duty.release()
        return
    reporter = DiskReporter(settings, worker, queue)
    report_once(settings, reporter)
    while not stop.wait(reporter.period()):
        if interval > 0 and time.monotonic() >= due:
            sweep_once(settings, duty=duty)
            due = time.monotonic() + interval
        stop_idle_services(settings)
        report_once(settings, reporter)
    duty.release()


def _tick(settings: Settings, interval: float) -> float:
    """How often the sweeper thread wakes: every sweep, and every half ``services_idle_minutes``
    between them (0: never, as the sweeps)."""
    idle = settings.services_idle_minutes * 60
    if interval <= 0:
        return 0.0
    return min(interval, max(60.0, idle / 2)) if idle > 0 else interval


def stop_idle_services(settings: Settings) -> None:
    """The keys' idle services stopped (:func:`~baton.workspace.containers.sweep_idle`); never raises."""
    try:
        stopped, errors = containers.sweep_idle(settings, time.time())
    except Exception:  # the sweeper thread must outlive any one failure
        log.exception("stopping the keys' idle services failed; the next tick tries again")
        return
    for name in stopped:
        log.info("stopped the idle service container %s", name)
    for name, error in errors.items():
        log.warning("could not stop the idle service container %s: %s", name, error)


def report_once(settings: Settings, reporter: DiskReporter) -> None:
    """One disk report with its own store connection; a failure is logged (the next one tries again)."""
    try:
        store = store_for(settings)
        try:
            reporter.report(store)
        finally:
            store.close()
    except Exception:  # the sweeper thread must outlive any one failed report
        log.exception(
            "the disk report of %s failed; the next one runs in %s s", reporter.name, reporter.period()
        )


def sweep_and_enforce(
    store: Store,
    settings: Settings,
    actor: str,
    dry_run: bool = False,
    prune: bool = False,
    sessions: bool = True,
) -> dict[str, Any]:
    """A sweep, then the disk's limits (:func:`baton.housekeeping.disk.relieve`: over ``disk_quota`` or
    under ``min_free``, idle keys' rebuildable artefacts are pruned first, and only then whole idle
    worktrees evicted): the report as JSON with its ``prunings`` (key, artefacts with path, kind and
    bytes, and why; listed by a dry run too), their bytes counted as freed ``artefacts``, and
    ``evictions`` (none in a dry run); ``prune``: every idle key's artefacts, pressure or not. A real
    run is audited as ``sweep`` with ``actor`` (the CLI, an admin token, the sweeper thread)."""
    data = sweep(store, settings, dry_run=dry_run, sessions=sessions).to_json()
    relief = relieve(store, settings, actor, prune_all=prune, dry_run=dry_run)
    data["prepared"] += relief.prepared.trees
    data["freed"]["prepared"] += relief.prepared.freed
    data["freed_total"] += relief.prepared.freed
    data["prunings"] = [p.to_json() for p in relief.pruned.prunings]
    data["freed"]["artefacts"] = relief.pruned.freed
    data["freed_total"] += relief.pruned.freed
    data["skipped"].update(relief.pruned.skipped)
    data["errors"].update(relief.pruned.errors)
    data["evictions"] = [e.to_json() for e in relief.evictions]
    if not dry_run:
        store.audit("sweep", "*", actor, data)
    return data


def sweep_once(settings: Settings, actor: str = "sweeper", duty: Duty | None = None) -> dict[str, Any] | None:
    """One sweep and quota check with its own store connection, audited; None when it failed. With a
    ``duty``, the store's sessions are expired and purged only by the process holding it."""
    try:
        store = store_for(settings)
        try:
            sessions = duty is None or duty.mine()
            return sweep_and_enforce(store, settings, actor, sessions=sessions)
        finally:
            store.close()
    except Exception:  # the sweeper thread must outlive any one failed sweep
        log.exception("the sweep failed; the next one runs in %s s", settings.sweep_interval)
        return None
