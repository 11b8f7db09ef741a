"""A worker survives its broker's restart; a worker that stops on an error says so by its exit status.
REAL brokers of the test's own (``tests.restartable``: a private redis-server without persistence,
a private RabbitMQ node) restarted on their port while REAL ``baton worker`` processes run fake-agent
turns, on a shared SQLite store.

- both brokers: a restart while two runs are in flight leaves the worker alive, connected again and
  taking runs; each run ends ``succeeded`` with exactly one attempt (none lost, none run twice);
- with kombu's unguarded Redis channel put back (the crash of Celery/kombu 5.7 that
  :mod:`baton.fleet.redis_transport` guards against), the same restart ends the worker, and it exits
  non-zero, so a supervisor that restarts failed workers restarts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.models import JobStatus, Outcome
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from tests.celery_fixtures import Broker, Workers
from tests.conftest import FAST, wait_for
from tests.fleet.test_celery import body, job_of, runs_of, wait_done
from tests.restartable import RestartableRabbit, RestartableRedis

BROKERS = pytest.mark.parametrize("restartable", ["redis", "amqp"], indirect=True)
Restartable = RestartableRedis | RestartableRabbit


@pytest.fixture(name="restartable")
def restartable_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    broker: Restartable
    if request.param == "redis":
        broker = RestartableRedis(tmp_path / "redis")
    else:
        broker = RestartableRabbit(tmp_path / "rabbit")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _setup(tmp_path: Path, broker: Restartable) -> tuple[Settings, Store, Workers]:
    kind = "redis" if isinstance(broker, RestartableRedis) else "amqp"
    store_url = f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"
    overrides = {"home": str(tmp_path / "client"), "store_url": store_url, "broker_url": broker.url}
    client = load_settings(overrides={**overrides, **FAST, "queue": "baton-restart"}, environ={})
    client.home.mkdir(parents=True, exist_ok=True)
    store = open_store(client.resolved_store_url)
    return client, store, Workers(tmp_path, store_url, Broker(kind, broker.url, "baton-restart"))


@pytest.mark.slow
@BROKERS
def test_a_broker_restart_mid_run_keeps_the_worker(
    tmp_path: Path, restartable: Restartable, src_repo: Path
) -> None:
    client, store, workers = _setup(tmp_path, restartable)
    try:
        worker = workers.start("a", concurrency=2, env={"FAKE_AGENT_DELAY": "6"})
        executor = CeleryExecutor(client, store)
        submitted = [jobs.submit(store, client, body(src_repo, f"k{i}", "turn 1"), "test") for i in range(2)]
        for job in submitted:
            executor.submit(job.id)
        executor.stop()

        def in_flight() -> bool:
            return all(
                runs_of(store, src_repo, f"k{i}") and runs_of(store, src_repo, f"k{i}")[0].agent_pid
                for i in range(2)
            )

        wait_for(in_flight, timeout=60, what="both runs to be in flight")
        restartable.restart()

        ended = wait_done(store, [j.id for j in submitted], timeout=120)
        assert [j.outcome for j in ended] == ["succeeded", "succeeded"], [j.error for j in ended]
        for i in range(2):
            attempts = runs_of(store, src_repo, f"k{i}")
            assert [r.outcome for r in attempts] == [Outcome.SUCCEEDED], f"k{i} ran {len(attempts)} times"
        assert worker.proc.poll() is None, f"the worker ended ({worker.proc.returncode}):\n{worker.text()}"
        assert "Unrecoverable error" not in worker.text()
        if isinstance(restartable, RestartableRedis):  # acknowledged through the old channel, not lost
            assert "Couldn't ack" not in worker.text(), worker.text()[-3000:]

        executor = CeleryExecutor(client, store)  # after the restart: the same worker takes new runs
        after = jobs.submit(store, client, body(src_repo, "k0", "turn 2"), "test")
        executor.submit(after.id)
        executor.stop()
        (done,) = wait_done(store, [after.id], timeout=60)
        assert done.outcome == "succeeded" and done.result is not None
        assert done.result["worktree"].startswith(str(worker.home))
        assert [r.outcome for r in runs_of(store, src_repo, "k0")] == [Outcome.SUCCEEDED] * 2
        assert worker.proc.poll() is None
    finally:
        workers.stop_all()
        store.close()


# kombu's own channel and transport put back in the worker process: the crash the guard prevents
UNGUARDED = """
import runpy, sys
import baton.fleet.redis_transport as guarded
import kombu.transport.redis as kombu_redis
guarded.Channel._connparams = kombu_redis.Channel._connparams
guarded.Transport.supports_batch_publish = kombu_redis.Transport.supports_batch_publish
sys.argv = ["baton", *sys.argv[1:]]
runpy.run_module("baton.cli", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.parametrize("restartable", ["redis"], indirect=True)
def test_a_worker_that_stops_on_an_error_exits_non_zero(
    tmp_path: Path, restartable: Restartable, src_repo: Path
) -> None:
    client, store, workers = _setup(tmp_path, restartable)
    log = tmp_path / "unguarded.log"
    env = {
        **os.environ,
        **{f"BATON_{k.upper()}": str(v) for k, v in FAST.items()},
        **workers.broker.env(),
        "BATON_HOME": str(tmp_path / "home-unguarded"),
        "BATON_STORE_URL": workers.store_url,
        "FAKE_AGENT_DELAY": "8",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", UNGUARDED, "worker", "-c", "2"],  # with one slot it was seldom hit
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(lambda: " ready." in log.read_text(errors="replace"), timeout=60, what="the worker")
        executor = CeleryExecutor(client, store)
        job = jobs.submit(store, client, body(src_repo, "k0", "turn 1"), "test")
        executor.submit(job.id)
        executor.stop()
        wait_for(lambda: job_of(store, job.id).status == JobStatus.RUNNING, timeout=60, what="the run")
        time.sleep(2)
        restartable.restart(down=2)
        status = proc.wait(90)
        text = log.read_text(errors="replace")
        assert "Unrecoverable error" in text and "'hostname'" in text, text[-3000:]
        assert status != 0, "a worker that stopped on an error exited 0"
        assert "stopped on an error (exit status 1)" in text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        store.close()
