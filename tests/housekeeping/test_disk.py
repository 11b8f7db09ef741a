"""Disk accounting (``baton du``) and the quota: the least-recently-used idle worktree is evicted
after a checkpoint, and its next run rebuilds it with the uncommitted file intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from baton import Mode
from baton.housekeeping.disk import enforce_quota, files_bytes, snapshot_bytes, usage
from baton.keys import key_of
from baton.settings import Settings
from baton.store import Store
from baton.store.leases import LeaseHolder
from baton.workspace.keyspace import key_dir, session_agent
from baton.workspace.workdirs import disk_usage
from tests.runner.test_runner import go
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)


def test_usage_counts_each_session_cache_and_home(settings: Settings, store: Store, src_repo: Path) -> None:
    a = go(settings, src_repo, "one", thread="t1")
    go(settings, src_repo, "two", thread="t2")
    (Path(a.session.worktree) / "big.bin").write_bytes(b"x" * 100_000)
    report = usage(store, settings)
    by_key = {s.key: s for s in report.sessions}
    s1 = by_key[f"fake:{a.run.repo}:t1"]
    agent = session_agent(a.session, settings)
    assert s1.worktree == disk_usage(Path(a.session.worktree)) >= 100_000
    assert s1.transcript == disk_usage(key_dir(settings, key_of(a.session))) > 0, "the key's whole space"
    assert s1.transcript >= files_bytes(agent.transcript_files(str(a.session.agent_session_id))) > 0
    assert s1.snapshot == snapshot_bytes(store, a.session) > 0
    data = report.to_json()
    assert data["agents"]["fake"]["sessions"] == 2
    assert data["repos"][a.run.repo]["worktree"] == sum(s.worktree for s in report.sessions)
    assert data["caches"][a.run.repo] == disk_usage(settings.home / "repos" / f"{a.run.repo}.git") > 0
    keys = disk_usage(settings.home / "keys" / "fake")
    assert data["homes"]["fake"] == disk_usage(settings.home / "homes" / "fake") + keys > keys > 0
    assert report.kinds()["homes"] == data["homes"]["fake"] - sum(s.transcript for s in report.sessions)
    assert data["total"] == disk_usage(settings.home) and data["free"] > 0 and data["store"] > 0


def _two_keys(settings: Settings, src_repo: Path) -> tuple[Path, Path, str]:
    old = go(settings, src_repo, "older", thread="t1")
    new = go(settings, src_repo, "newer", thread="t2")
    (Path(old.session.worktree) / "wip.txt").write_text("uncommitted\n")
    return Path(old.session.worktree), Path(new.session.worktree), old.run.repo


def test_quota_evicts_the_lru_idle_worktree_and_the_next_run_rebuilds_it(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    old, new, repo = _two_keys(settings, src_repo)
    quota = settings.with_(disk_quota=str(disk_usage(settings.home) - 1), min_free="0")
    evictions = enforce_quota(store, quota, "test")
    assert [e.key for e in evictions] == [f"fake:{repo}:t1"]  # one is enough to get under
    assert evictions[0].checkpoint_ref == "refs/baton/checkpoints/fake/t1"
    assert evictions[0].bytes > 0
    assert not old.exists() and new.is_dir()
    audit = next(a for a in store.list_audit(limit=5) if a["action"] == "evict")
    assert audit["actor"] == "test" and audit["detail"]["checkpoint_ref"] == evictions[0].checkpoint_ref
    session = store.get_session("fake", repo, "t1")
    assert session is not None and session.status == "active"
    again = go(settings, src_repo, "go on", thread="t1")
    assert again.run.mode == Mode.RESUME and (old / "wip.txt").read_text() == "uncommitted\n"


def test_quota_skips_a_running_key_and_evicts_until_under(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    old, new, repo = _two_keys(settings, src_repo)
    session = store.get_session("fake", repo, "t1")
    assert session is not None
    busy = LeaseHolder(store, key_of(session).id, 60)
    busy.acquire(0)
    quota = settings.with_(disk_quota=str(disk_usage(settings.home) - 1), min_free="0")
    assert [e.key for e in enforce_quota(store, quota, "test")] == [f"fake:{repo}:t2"]
    assert old.is_dir() and not new.exists()
    busy.release()
    within = settings.with_(disk_quota="1T", min_free="0")
    assert enforce_quota(store, within, "test") == []  # within limits: nothing evicted
    assert old.is_dir()


def test_min_free_triggers_eviction(settings: Settings, store: Store, src_repo: Path) -> None:
    old, new, _ = _two_keys(settings, src_repo)
    evictions = enforce_quota(store, settings.with_(min_free="1000T"), "test")  # never satisfiable
    assert len(evictions) == 2 and not old.exists() and not new.exists()  # every idle worktree


def test_baton_du_json(
    settings: Settings, src_repo: Path, cli_here: Callable[..., CompletedProcess[str]]
) -> None:
    a = go(settings, src_repo, "one")
    done = cli_here("du", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["sessions"][0]["key"] == f"fake:{a.run.repo}:t1"
    table = cli_here("du")
    assert table.returncode == 0 and "fake" in table.stdout and "free" in table.stdout


def test_disk_and_sweep_over_http(service: Service, src_repo: Path) -> None:
    first = go(service.settings, src_repo, "one")
    session = service.store.get_session("fake", first.run.repo, "t1")
    assert session is not None
    session.expires_at = 1.0
    service.store.save_session(session)
    with service.client("read") as http:
        disk = http.get("/v1/disk")
        assert disk.status_code == 200
        assert disk.json()["sessions"][0]["worktree"] == disk_usage(Path(first.session.worktree))
        assert http.post("/v1/sweep").status_code == 403  # admin only
    with service.client("admin") as http:
        dry = http.post("/v1/sweep", params={"dry_run": "true"})
        assert dry.status_code == 200 and dry.json()["dry_run"] is True
        assert Path(first.session.worktree).is_dir()
        real = http.post("/v1/sweep")
        assert real.status_code == 200 and real.json()["expired"] == [f"fake:{first.run.repo}:t1"]
    assert not Path(first.session.worktree).exists()
    audit = next(a for a in service.store.list_audit(limit=10) if a["action"] == "sweep")
    assert audit["actor"].endswith("-admin")  # the token's name
    with service.client(None) as http:
        assert http.get("/v1/disk").status_code == 401
