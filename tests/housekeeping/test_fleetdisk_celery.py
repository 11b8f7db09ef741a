"""A fleet's disk with REAL ``baton worker`` processes (each its own BATON_HOME), a REAL broker and the shared
PostgreSQL store: each worker's sweeper reports its volume, and ``baton du --fleet``, ``/metrics`` and the
dashboard's disk card (in Chromium) show both workers and their total; a worker silent for an hour is marked
stale and left out of the total."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton import RunRequest, run
from baton.housekeeping.fleetdisk import FleetDisk, fleet_disk
from baton.models import WorkerRecord
from baton.settings import Settings, load_settings
from baton.store import Store
from tests.browser_fixtures import PHONE, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Workers,
    amqp_broker_fixture,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import FAST, wait_for
from tests.service_fixtures import Service, run_service
from tests.workspace.test_du import du

FLEET = pytest.mark.parametrize(("broker", "shared_store_url"), [("amqp", "postgresql")], indirect=True)
REPORT_EVERY_SECOND = {"BATON_SWEEP_INTERVAL": "1"}
CliHere = Callable[..., subprocess.CompletedProcess[str]]  # conftest's cli_here


def seed(workers: Workers, client: Settings, name: str, repo: Path) -> str:
    """A session with its worktree in worker ``name``'s home (made by the runner, as the worker would
    make it): the worktree's path. (Not through a job: jobs are another part's work in progress.)"""
    settings = load_settings(
        overrides={"home": str(workers.root / f"home-{name}"), "store_url": client.store_url, **FAST},
        environ={},
    )
    done = run(RunRequest("fake", str(repo), f"on-{name}", "hi"), settings)
    assert done.ok, done.run.error
    return str(done.session.worktree)


def reported(store: Store, name: str) -> dict[str, Any]:
    """The latest report of the worker started as ``name`` ({} before its first)."""
    rows = [w for w in store.list_workers() if w.name.startswith(name + "-")]
    assert len(rows) <= 1, rows
    return (rows[0].disk or {}) if rows else {}


def baton_cli(cli_here: CliHere, client: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``baton ARGS`` on the client's home and store, in this process (``du`` only reads and prints)."""
    env = {"BATON_HOME": str(client.home), "BATON_STORE_URL": client.store_url, "COLUMNS": "200"}
    return cli_here(*args, env=env)


@FLEET
def test_two_workers_report_and_every_surface_shows_both_and_the_total(
    client: Settings,
    shared_store: Store,
    workers: Workers,
    src_repo: Path,
    tabs: Tabs,
    cli_here: CliHere,
) -> None:
    store = shared_store
    trees = {name: seed(workers, client, name, src_repo) for name in ("a", "b")}  # a worktree on each
    each = {"concurrency": 1, "env": REPORT_EVERY_SECOND}
    started = workers.start_together([("a", each), ("b", each)])
    for worker in started:
        assert Path(trees[worker.name]).is_relative_to(worker.home)
    wait_for(lambda: all(reported(store, w.name).get("sessions") == 1 for w in started), 60)
    workers.stop_all()  # the reports stand still from here: every surface must show the same numbers
    for worker in started:
        doc = reported(store, worker.name)
        used = du(worker.home)
        assert abs(doc["used"] - used) <= 0.03 * used, (worker.name, doc["used"], used)
        assert sum(doc["kinds"].values()) == doc["used"]
        assert doc["kinds"]["worktrees"] == du(Path(trees[worker.name])), "its own worktree only"
        assert doc["kinds"]["store"] == 0, "PostgreSQL: no database on the volume"
        assert set(doc["agents"]) == {"fake"}
    now = time.time()
    store.worker_seen(WorkerRecord("gone@elsewhere", "elsewhere", 1, "baton", now - 7200, now - 3600))
    gone = {**reported(store, "a"), "used": 10**9, "every": 300.0}  # a worker silent for an hour
    store.report_worker_disk("gone@elsewhere", gone, 10**9, 10**10, now - 3600)
    fleet = fleet_disk(store)
    fresh = [w for w in fleet.workers if not w.stale]
    assert len(fresh) == 2 and "gone@elsewhere" not in [w.name for w in fresh]
    assert fleet.total.used == sum(w.used for w in fresh) > 0
    assert fleet.total.kinds["worktrees"] == sum(w.kinds["worktrees"] for w in fresh)

    check_du_fleet(cli_here, client, fleet)
    with run_service(client) as service:
        check_metrics(service.url, fleet, now - 3600)
        check_card(tabs, service, fleet)


def check_du_fleet(cli_here: CliHere, client: Settings, fleet: FleetDisk) -> None:
    """``baton du --fleet``: the same rows and total, as JSON and as a table."""
    names = [w.name for w in fleet.workers]
    answer = baton_cli(cli_here, client, "du", "--fleet", "--json")
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    assert [(w["name"], w["used"], w["stale"]) for w in data["workers"]] == [
        (w.name, w.used, w.stale) for w in fleet.workers
    ]
    assert data["total"] == fleet.total.to_json()
    table = baton_cli(cli_here, client, "du", "--fleet")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    for name in [*names, "total"]:
        assert any(line.startswith(name) for line in lines), (name, table.stdout)
    assert "STALE" in next(line for line in lines if line.startswith("gone@elsewhere"))


def check_metrics(url: str, fleet: FleetDisk, stale_at: float) -> None:
    """``/metrics``: bytes per worker and kind for the fresh ones, summing to the total; the stale one
    only has its report's time."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    samples = {
        (s.name, s.labels.get("worker"), s.labels.get("kind")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    for worker in (w for w in fleet.workers if not w.stale):
        mine = {k: v for (n, w, k), v in samples.items() if n == "baton_disk_bytes" and w == worker.name}
        assert mine["total"] == worker.used and mine["free"] == worker.free
        k = worker.kinds
        assert (mine["worktree"], mine["transcript"], mine["cache"]) == (
            k["worktrees"],
            k["transcripts"],
            k["caches"],
        )
        assert mine["home"] == k["homes"] + k["transcripts"], "as the service's own: home holds transcript"
        parts = ("worktree", "cache", "home", "log", "store", "other")
        assert sum(mine[p] for p in parts) == worker.used
        assert set(mine) <= {"total", "free", *parts, "transcript"} and "snapshot" not in mine
    totals = [v for (n, w, k), v in samples.items() if n == "baton_disk_bytes" and w and k == "total"]
    assert sum(totals) == fleet.total.used and len(totals) == 2
    assert ("baton_disk_bytes", "gone@elsewhere", "total") not in samples
    assert samples["baton_disk_report_timestamp_seconds", "gone@elsewhere", None] == pytest.approx(stale_at)
    assert ("baton_disk_bytes", "", "total") in samples, "the service's own home, as before"


def check_card(tabs: Tabs, service: Service, fleet: FleetDisk) -> None:
    """The dashboard's disk card in Chromium: a row per worker, the stale one marked, the total."""
    tab = tabs.open(service.url)
    tab.sign_in(service.token("read"))
    assert tab.goto("/") == 200
    rows = tab.page.eval_on_selector_all(
        "#fleet-disk tr[data-worker]",
        "els => els.map(e => [e.dataset.worker, Number(e.dataset.bytes), e.dataset.stale === '1'])",
    )
    total = fleet.total.used
    assert rows == [[w.name, w.used, w.stale] for w in fleet.workers] + [["total", total, False]]
    assert "stale" in (tab.page.text_content("#fleet-disk tr[data-worker='gone@elsewhere']") or "")
    assert tab.page.get_attribute("#disk [data-metric='fleet-total']", "data-bytes") == str(total)
    assert "1 stale report" in (tab.page.text_content("#fleet-stale") or "")
    assert tab.page.text_content("#fleet-counted") == "2 of 3 workers"
    kinds = tab.page.eval_on_selector_all(
        "#by-kind tr[data-kind]", "els => els.map(e => [e.dataset.kind, Number(e.dataset.bytes)])"
    )
    assert dict(kinds) == {k: n for k, n in fleet.total.kinds.items() if n}
    assert tab.page.locator("#largest").count() == 0, "the API's own sessions' sizes would be all 0"
    tab.screenshot("dashboard-fleet-disk")
    phone = tabs.open(service.url, PHONE)
    phone.sign_in(service.token("read"))
    assert phone.goto("/") == 200 and phone.page.locator("#fleet-disk tr[data-worker='total']").is_visible()
    width = phone.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the fleet card overflows the phone's screen: {width}"
    phone.screenshot("dashboard-fleet-disk-phone")
