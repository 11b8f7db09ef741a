"""The sweeper: expired sessions closed, closed ones past their grace purged, orphan worktree
directories removed, live-lease keys untouched, the dry run's report equal to the real one's, freed
bytes equal to the sizes measured before."""

from __future__ import annotations

import getpass
import json
import threading
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from baton import Mode
from baton.environment import prepared as trees
from baton.housekeeping.cleanup import close_session
from baton.housekeeping.disk import files_bytes, snapshot_bytes
from baton.housekeeping.sweep import sweep, sweep_periodically
from baton.keys import key_of
from baton.models import SessionStatus
from baton.settings import Settings
from baton.store import Store
from baton.store.leases import LeaseHolder
from baton.workspace.containers import State, container_name, write_state
from baton.workspace.gitcmd import commit_of
from baton.workspace.keyspace import cache_dir, key_dir
from baton.workspace.workdirs import Workdirs, disk_usage
from tests.conftest import wait_for
from tests.runner.test_runner import go


def _expire(store: Store, thread: str, repo: str, at: float = 1.0) -> None:
    session = store.get_session("fake", repo, thread)
    assert session is not None
    session.expires_at = at
    store.save_session(session)


class World:
    """Four keys — t1 expired, t2 expired but running (lease held), t3 live, t4 closed past its grace —
    and two orphan directories, one of them a key being built right now (lease held)."""

    def __init__(self, settings: Settings, store: Store, src_repo: Path) -> None:
        self.settings, self.store = settings, store
        results = {t: go(settings, src_repo, f"work on {t}", thread=t) for t in ("t1", "t2", "t3", "t4")}
        self.repo = results["t1"].run.repo
        self.sessions = {t: r.session for t, r in results.items()}
        (self.worktree("t1") / "wip.txt").write_text("uncommitted\n")
        (self.worktree("t4") / "wip.txt").write_text("uncommitted\n")
        close_session(store, settings, key_of(self.sessions["t4"]), "test")
        for thread in ("t1", "t2", "t4"):
            _expire(store, thread, self.repo)
        self.busy = LeaseHolder(store, key_of(self.sessions["t2"]).id, 60)
        self.busy.acquire(0)
        root = settings.home / "worktrees"
        # a worktree no session owns, and a directory of junk (its directories-only parents are searched)
        self.orphans = [root / "fake" / self.repo / "ghost", root / "junk" / "x" / "sub"]
        for path in self.orphans:
            path.mkdir(parents=True)
            (path / "data.bin").write_bytes(b"x" * 10_000)
        (self.orphans[0] / ".git").write_text("gitdir: /nowhere\n")
        self.building = root / "fake" / self.repo / "new-key"
        self.building.mkdir()
        self.building_lease = LeaseHolder(store, f"fake/{self.repo}/new-key", 60)
        self.building_lease.acquire(0)
        self.gone_caches = cache_dir(settings, "local/gone-repo")  # a repository no session is left of
        (self.gone_caches / "npm").mkdir(parents=True)
        (self.gone_caches / "npm" / "blob").write_bytes(b"x" * 8192)
        # a prepared environment no thread was given for longer than prepared_idle_days
        self.prepared = trees.PreparedTree.of(settings.home, self.repo, "0" * 32)
        (self.prepared.tree / ".venv").mkdir(parents=True)
        (self.prepared.tree / ".venv" / "lib.bin").write_bytes(b"x" * 8192)
        self.prepared.write_meta({"used_at": 1.0, "hits": 3})

    def worktree(self, thread: str) -> Path:
        return Path(self.sessions[thread].worktree)

    def key(self, thread: str) -> str:
        return f"fake:{self.repo}:{thread}"

    def expected_freed(self) -> dict[str, int]:
        t1, t4 = self.sessions["t1"], self.sessions["t4"]
        logs = [Path(r.log_path) for r in self.store.list_runs("fake", self.repo, "t4")]
        return {
            "worktrees": disk_usage(self.worktree("t1")),
            "transcripts": disk_usage(key_dir(self.settings, key_of(t1))),  # the key's whole space
            "snapshots": snapshot_bytes(self.store, t4),
            "logs": files_bytes(logs),
            "orphans": sum(disk_usage(p) for p in self.orphans),
            "package_caches": disk_usage(self.gone_caches),
            "prepared": disk_usage(self.prepared.root),
        }


def _without_flag(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "dry_run"}


def test_sweep_expires_purges_and_removes_orphans(settings: Settings, store: Store, src_repo: Path) -> None:
    world = World(settings, store, src_repo)
    expected = world.expected_freed()
    assert all(expected.values()), expected  # every category has something to free

    dry = sweep(store, settings, dry_run=True)
    assert dry.dry_run
    assert world.worktree("t1").is_dir() and all(p.is_dir() for p in world.orphans)  # nothing changed
    assert world.prepared.tree.is_dir()
    assert store.get_session("fake", world.repo, "t4") is not None
    real = sweep(store, settings)
    assert _without_flag(dry.to_json()) == _without_flag(real.to_json())

    assert real.expired == [world.key("t1")] and real.purged == [world.key("t4")]
    assert real.checkpoints == {world.key("t1"): "refs/baton/checkpoints/fake/t1"}
    assert set(real.skipped) == {world.key("t2"), str(world.building)}
    assert real.orphans == [str(p) for p in sorted(world.orphans)]
    assert real.freed == expected
    assert real.freed_total == sum(expected.values())
    assert real.pruned == [world.repo] and real.errors == {}
    assert real.prepared == [str(world.prepared.root)] and not world.prepared.root.exists()

    # t1: closed, worktree and transcript freed, conversation and checkpoint kept
    t1 = store.get_session("fake", world.repo, "t1")
    assert t1 is not None and t1.status == SessionStatus.CLOSED and not world.worktree("t1").exists()
    assert not key_dir(settings, key_of(t1)).exists(), "the key's agent home and temp dir went with it"
    # t2 (running) and t3 (live): untouched
    for thread in ("t2", "t3"):
        session = store.get_session("fake", world.repo, thread)
        assert session is not None and session.status == SessionStatus.ACTIVE
        assert world.worktree(thread).is_dir()
    # t4: purged — rows, snapshot, checkpoint ref and logs gone
    assert store.get_session("fake", world.repo, "t4") is None
    assert store.list_runs("fake", world.repo, "t4") == []
    assert store.get_snapshot("fake", world.repo, "t4") is None
    cache = Workdirs(settings).cache_path(key_of(world.sessions["t1"]).repo)
    assert commit_of(cache, "refs/baton/checkpoints/fake/t4") is None
    assert commit_of(cache, "refs/baton/checkpoints/fake/t1") is not None
    assert not any(p.exists() for p in world.orphans) and world.building.is_dir()
    assert not (settings.home / "worktrees" / "junk").exists()  # emptied parents go too

    world.busy.release()
    world.building_lease.release()
    again = go(settings, src_repo, "back to t1", thread="t1")  # within the grace period: resumed
    assert again.run.mode == Mode.RESUME and (world.worktree("t1") / "wip.txt").read_text() == "uncommitted\n"
    fresh = go(settings, src_repo, "back to t4", thread="t4")  # purged: a new conversation
    assert fresh.run.mode == Mode.FRESH


def test_a_second_sweep_finds_nothing_more(settings: Settings, store: Store, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    _expire(store, "t1", first.run.repo)
    assert sweep(store, settings).expired == [f"fake:{first.run.repo}:t1"]
    second = sweep(store, settings)
    assert second.expired == second.purged == second.orphans == [] and second.freed_total == 0
    # with no grace period the closed session is purged by the next sweep
    _expire(store, "t1", first.run.repo)
    assert sweep(store, settings.with_(closed_grace_days=0)).purged == [f"fake:{first.run.repo}:t1"]


def test_sweep_periodically_sweeps_and_audits(settings: Settings, store: Store, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    _expire(store, "t1", first.run.repo)
    stop = threading.Event()
    fast = settings.with_(sweep_interval=0.1, min_free="0")
    thread = threading.Thread(target=sweep_periodically, args=(fast, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(a["action"] == "sweep" for a in store.list_audit(limit=20)), timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    audit = next(a for a in store.list_audit(limit=20) if a["action"] == "sweep")
    assert audit["actor"] == "sweeper" and audit["detail"]["expired"] == [f"fake:{first.run.repo}:t1"]


def test_a_zero_interval_never_sweeps(settings: Settings) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=sweep_periodically, args=(settings.with_(sweep_interval=0), stop))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()  # returned at once without waiting for stop


def test_baton_sweep_cli(
    settings: Settings, store: Store, src_repo: Path, cli_here: Callable[..., CompletedProcess[str]]
) -> None:
    first = go(settings, src_repo, "one")
    _expire(store, "t1", first.run.repo)
    dry = cli_here("sweep", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["expired"] == [f"fake:{first.run.repo}:t1"]
    said = cli_here("sweep", "--dry-run").stdout
    assert said.startswith("would expire 1 session(s)") and "(dry run: nothing was removed)" in said
    assert Path(first.session.worktree).is_dir()
    real = cli_here("sweep")
    assert real.returncode == 0, real.stderr
    assert "expired 1 session(s)" in real.stdout and not Path(first.session.worktree).exists()
    assert any(a["action"] == "sweep" and a["actor"] == getpass.getuser() for a in store.list_audit(limit=5))


def test_baton_sweep_dry_run_says_which_service_it_would_stop(
    settings: Settings, store: Store, tmp_path: Path, cli_here: Callable[..., CompletedProcess[str]]
) -> None:
    engine = tmp_path / "podman"
    engine.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "called"}\n')
    engine.chmod(0o755)
    space = tmp_path / "space"
    space.mkdir()
    idle = State(container_name(space, "db"), str(engine), str(space), "db", 41234, "spec", 0.0)
    write_state(settings, idle)
    dry = cli_here("sweep", "--dry-run").stdout
    assert f"  would stop the service container {idle.container}\n" in dry
    assert "stopped the service container" not in dry and not (tmp_path / "called").exists()
    real = cli_here("sweep").stdout
    assert f"  stopped the service container {idle.container}\n" in real
    assert (tmp_path / "called").read_text().startswith("rm -f")
