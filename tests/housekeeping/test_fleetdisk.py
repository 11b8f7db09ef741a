"""A fleet's disk, on one machine: a worker's report partitions its home and equals ``du -s``; it creates the
worker's row when no heartbeat has; the sweeper thread reports at start and every period; the fleet's total
leaves stale reports out; ``baton du --fleet`` prints every worker and the total. With real workers, a real
broker and PostgreSQL: tests/housekeeping/test_fleetdisk_celery.py."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from baton.housekeeping.fleetdisk import KINDS, DiskReporter, _top, fleet_disk
from baton.housekeeping.sweep import sweep_periodically
from baton.models import WorkerRecord
from baton.settings import Settings
from baton.store import Store
from tests.conftest import wait_for
from tests.runner.test_runner import go
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)
from tests.workspace.test_du import du


def test_a_report_partitions_the_home_and_equals_du(settings: Settings, store: Store, src_repo: Path) -> None:
    done = go(settings, src_repo, "one", thread="t1")
    assert store.list_workers() == []
    document = DiskReporter(settings, "w1@host", "baton").report(store)
    (row,) = store.list_workers()  # no heartbeat yet: the report made the row
    assert (row.name, row.queue, row.disk) == ("w1@host", "baton", document)
    assert row.disk_at is not None and time.time() - row.disk_at < 60
    volume = shutil.disk_usage(settings.home)
    assert row.total_bytes == volume.total and abs((row.free_bytes or 0) - volume.free) < 256 * 2**20
    expected = du(settings.home)
    assert abs(document["used"] - expected) <= 0.03 * expected  # the SQLite store grew since
    assert sum(document["kinds"].values()) == document["used"]
    assert list(document["kinds"]) == list(KINDS)
    for kind in ("worktrees", "transcripts", "caches", "logs", "store"):
        assert document["kinds"][kind] > 0, kind
    here = done.session.worktree
    assert document["kinds"]["worktrees"] == du(Path(here))
    assert set(document["agents"]) == {"fake"} and set(document["repos"]) == {done.run.repo}
    assert document["agents"]["fake"] == document["repos"][done.run.repo] > document["kinds"]["worktrees"]
    assert (document["version"], document["sessions"], document["home"]) == (1, 1, str(settings.home))


def test_the_report_keeps_the_largest_repos_and_sums_the_rest() -> None:
    repos = {f"r{i:02d}": i for i in range(60)}
    top = _top(repos, 50)
    assert len(top) == 51 and top["r59"] == 59 and "r09" not in top
    assert top["(others)"] == sum(range(10))


def test_the_sweeper_of_a_worker_reports_at_start_and_every_period(settings: Settings, store: Store) -> None:
    settings = dataclasses.replace(settings, sweep_interval=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=sweep_periodically, args=(settings, stop, "w@h", "q"), daemon=True)
    thread.start()
    try:
        wait_for(lambda: bool(store.list_workers()) and store.list_workers()[0].disk_at is not None, 30)
        first = store.list_workers()[0].disk_at or 0
        wait_for(lambda: (store.list_workers()[0].disk_at or 0) > first, 30)
        every = (store.list_workers()[0].disk or {})["every"]
        assert 0.3 <= every < 60, "the interval, or ten times the walk"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_the_service_sweeper_reports_nothing(settings: Settings, store: Store) -> None:
    settings = dataclasses.replace(settings, sweep_interval=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=sweep_periodically, args=(settings, stop), daemon=True)
    thread.start()
    time.sleep(0.5)
    stop.set()
    thread.join(30)
    assert store.list_workers() == []  # a single machine's service is no worker


def report(
    store: Store, name: str, used: int, at: float, free: int = 10_000, host: str = "", volume: str = ""
) -> None:
    store.worker_seen(WorkerRecord(name, host or "host-" + name, 1, "baton", at, at))
    kinds = dict.fromkeys(KINDS, 0) | {"worktrees": used // 2, "other": used - used // 2}
    document = {
        "version": 1,
        "home": "/h" if volume else f"/h/{name}",
        "used": used,
        "kinds": kinds,
        "agents": {"fake": used // 2},
        "repos": {"example.com/r": used // 2},
        "sessions": 1,
        "volume": volume,
        "every": 300.0,
    }
    assert store.report_worker_disk(name, document, free, 100_000, at)


def seed_fleet(store: Store) -> None:
    now = time.time()
    report(store, "a@one", 1000, now)
    report(store, "b@two", 3000, now - 10)
    report(store, "gone@three", 50_000, now - 3600)  # silent for an hour: stale
    store.worker_seen(WorkerRecord("new@four", "four", 1, "baton", now, now))  # no report yet


def test_the_fleet_total_leaves_stale_reports_out(store: Store) -> None:
    seed_fleet(store)
    fleet = fleet_disk(store)
    rows = {w.name: w for w in fleet.workers}
    assert [name for name, w in rows.items() if w.stale] == ["gone@three", "new@four"]
    assert rows["new@four"].reported_at is None and rows["new@four"].used == 0
    total = fleet.total
    assert (total.used, total.free, total.size) == (4000, 20_000, 200_000)
    assert total.kinds["worktrees"] == 500 + 1500 and total.agents == {"fake": 2000}
    assert fleet.stale == 2


def test_a_report_that_cannot_be_read_counts_as_none(store: Store) -> None:
    now = time.time()
    report(store, "ok@one", 1000, now)
    unreadable: list[tuple[str, dict[str, Any]]] = [
        ("bad@two", {"used": "lots"}),
        ("odd@three", {"kinds": []}),
    ]
    for name, document in unreadable:
        store.worker_seen(WorkerRecord(name, "h", 1, "baton", now, now))
        assert store.report_worker_disk(name, document, 1, 2, now)
    fleet = fleet_disk(store)
    rows = {w.name: w for w in fleet.workers}
    assert [n for n, w in rows.items() if w.stale] == ["bad@two", "odd@three"]
    assert rows["bad@two"].reported_at is None and rows["bad@two"].used == 0
    assert fleet.total.used == 1000


def test_a_shared_volume_or_home_counts_once_in_the_total(store: Store) -> None:
    now = time.time()
    report(store, "x@one", 1000, now, free=7_000, host="one", volume="2049")
    report(store, "y@one", 1000, now, free=7_000, host="one", volume="2049")  # the same home too
    report(store, "z@two", 500, now, free=9_000, host="two", volume="2049")  # another machine's disk
    total = fleet_disk(store).total
    assert (total.used, total.free, total.size) == (1500, 16_000, 200_000)


def test_baton_du_fleet(
    settings: Settings, store: Store, cli_here: Callable[..., CompletedProcess[str]]
) -> None:
    empty = cli_here("du", "--fleet")
    assert empty.returncode == 0 and "no worker has reported" in empty.stdout
    assert "--fleet" not in cli_here("du").stdout
    seed_fleet(store)
    assert "4 worker(s) report their own disk to this store: baton du --fleet" in cli_here("du").stdout
    done = cli_here("du", "--fleet", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [w["name"] for w in data["workers"]] == ["a@one", "b@two", "gone@three", "new@four"]
    assert data["total"]["used"] == 4000
    assert data == json.loads(json.dumps(fleet_disk(store).to_json()))
    table = cli_here("du", "--fleet", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    for name in ("a@one", "b@two", "gone@three", "new@four", "total"):
        assert any(line.startswith(name) for line in lines), (name, table.stdout)
    assert "STALE" in next(line for line in lines if line.startswith("gone@three"))
    assert "STALE" not in next(line for line in lines if line.startswith("a@one"))
    total = next(line for line in lines if line.startswith("total"))
    assert "3.9 KiB" in total, total  # 4000 bytes


def test_fleet_disk_over_http(service: Service) -> None:
    with service.client("read") as http:
        assert http.get("/v1/disk/fleet").json()["workers"] == []
        seed_fleet(service.store)
        answer = http.get("/v1/disk/fleet")
    assert answer.status_code == 200
    assert answer.json() == json.loads(json.dumps(fleet_disk(service.store).to_json()))
    assert answer.json()["total"]["used"] == 4000
