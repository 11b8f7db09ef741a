"""A worker's readiness and liveness for exec probes (``baton worker --check [--live]``,
:mod:`baton.fleet.health`): the verdicts on the file alone, and a REAL ``baton worker`` whose private
PostgreSQL and private Redis broker (``tests.restartable``) go away and come back; the probe commands
of deploy/kubernetes/worker.yaml parse with the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from baton.fleet.health import STALE, Health, Monitor, health_path, verdict
from baton.settings import Settings
from tests.celery_fixtures import Broker, Workers
from tests.conftest import BATON, wait_for
from tests.project.test_deploy import check_cli
from tests.restartable import RestartablePostgres, RestartableRedis, private_pg_fixture, private_redis_fixture  # noqa: F401 (fixtures)

SERVICE_FIXTURES = {"private_pg": "postgres", "private_redis": "redis"}
MANIFEST = Path(__file__).parents[2] / "deploy" / "kubernetes" / "worker.yaml"


def write(settings: Settings, health: Health) -> None:
    Monitor(settings, None).write(health)  # type: ignore[arg-type]  # writing needs no broker


def test_verdicts_on_the_file(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    missing = verdict(settings)
    assert not missing.ok and "no worker has written" in missing.message
    now = time.time()
    write(settings, Health(now, 42, True, None))
    assert verdict(settings).ok and verdict(settings, live=True).ok
    write(settings, Health(now, 42, False, "store unreachable: refused"))
    down = verdict(settings)
    assert not down.ok and "store unreachable: refused" in down.message
    assert verdict(settings, live=True).ok, "a worker whose store is away is still alive"
    stale = verdict(settings, live=True, now=now + STALE + 1)
    assert not stale.ok and "hung or gone" in stale.message
    health_path(settings).write_text("{half")
    assert not verdict(settings).ok and "cannot read" in verdict(settings).message
    health_path(settings).write_text(json.dumps({"at": "soon"}))
    assert not verdict(settings, live=True).ok


class Answers:
    """A broker check that answers at once, or (``hang``) not until released."""

    def __init__(self, hang: bool = False) -> None:
        self.hang, self.released = hang, threading.Event()

    def __call__(self) -> None:
        if self.hang:
            self.released.wait(30)

    def close(self) -> None:
        pass


def checks_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("baton-health")]


def test_a_closed_monitor_leaves_no_thread_unless_a_check_hangs(settings: Settings) -> None:
    """A stopped worker closes its monitor: with no thread left, ``baton worker`` leaves the quick way
    (``baton.cli``'s ``_leave``); a check that hangs is not waited for past the close's timeout."""
    settings.home.mkdir(parents=True, exist_ok=True)
    monitor = Monitor(settings, Answers())  # type: ignore[arg-type]  # a broker check's shape
    monitor.start()
    wait_for(lambda: health_path(settings).exists(), timeout=10, what="the health file")
    assert checks_alive()
    monitor.close()
    assert checks_alive() == []

    hung = Answers(hang=True)
    monitor = Monitor(settings, hung)  # type: ignore[arg-type]
    monitor.start()
    wait_for(lambda: any("check" in n for n in checks_alive()), timeout=10, what="the check to start")
    began = time.monotonic()
    monitor.close(timeout=0.5)  # the loop itself waits on the check (up to ANSWER): the close does not
    assert time.monotonic() - began < 2, "the close waited for the hung check"
    assert any("check" in n for n in checks_alive()), "the hung check's thread is left running"
    hung.released.set()
    monitor.thread.join(10)


def test_the_manifest_probes_are_real_commands() -> None:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    (worker,) = [d for d in docs if d["kind"] == "StatefulSet"]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    found = {kind: container[kind]["exec"]["command"] for kind in ("livenessProbe", "readinessProbe")}
    for kind, command in found.items():
        assert command[:1] == ["baton"], kind
        assert check_cli(command[1:]) == "worker", kind
        assert "--check" in command, kind
    assert "--live" in found["livenessProbe"] and "--live" not in found["readinessProbe"]


def probe(home: Path, *flags: str) -> tuple[int, str]:
    env = {"BATON_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*BATON, "worker", "--check", *flags], env=env, capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_a_worker_is_not_ready_while_its_store_or_broker_is_away(
    tmp_path: Path, private_pg: RestartablePostgres, private_redis: RestartableRedis
) -> None:
    workers = Workers(tmp_path, private_pg.url, Broker("redis", private_redis.url, "baton-health"))
    try:
        worker = workers.start("a", concurrency=1, env={"BATON_HEARTBEAT": "1"})
        period = 10  # a probe's period: the verdict must change within it

        def becomes(code: int, *flags: str) -> str:
            seen: list[str] = []

            def reached() -> bool:
                status, text = probe(worker.home, *flags)
                seen.append(text)
                return status == code

            wait_for(reached, timeout=period, interval=0.5, what=f"the probe to exit {code}: {seen[-1:]}")
            return seen[-1]

        assert "ready" in becomes(0)
        private_pg.stop()
        began = time.monotonic()
        assert "store" in becomes(1)
        assert time.monotonic() - began < period
        assert becomes(0, "--live"), "alive all the same"
        private_pg.start()
        becomes(0)

        private_redis.stop()
        assert "broker" in becomes(1)
        becomes(0, "--live")
        private_redis.start()
        becomes(0)
        assert worker.proc.poll() is None
    finally:
        workers.stop_all()
