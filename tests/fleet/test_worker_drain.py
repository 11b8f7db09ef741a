"""A worker told to stop (SIGTERM to its main process, as tini passes a pod's termination on) drains:
REAL ``baton worker`` processes on a private Redis broker and a shared SQLite store, slow fake-agent
turns (:mod:`baton.fleet.drain`).

- within the drain's time: the running turn finishes there, a job submitted after the SIGTERM is not
  taken by it (another worker runs it), its probe says not ready but alive, and it exits 0;
- past ``BATON_DRAIN_TIMEOUT``: the turn is stopped, recorded ``cancelled`` with its conversation kept,
  the job goes back to the queue, and another worker resumes the conversation with the interrupted
  note; the stopping worker exits 0 soon after its deadline.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.models import JobStatus, Outcome, PromptKind
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from tests.celery_fixtures import Broker, Worker, Workers
from tests.conftest import FAST, wait_for
from tests.fleet.test_celery import body, job_of, runs_of, wait_done
from tests.fleet.test_worker_health import probe
from tests.restartable import RestartableRedis, private_redis_fixture  # noqa: F401 (the fixture)

SERVICE_FIXTURES = {"private_redis": "redis"}


@pytest.fixture(name="fleet")
def fleet_fixture(
    tmp_path: Path, private_redis: RestartableRedis
) -> Iterator[tuple[Settings, Store, Workers]]:
    store_url = f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"
    overrides = {"home": str(tmp_path / "client"), "store_url": store_url, "broker_url": private_redis.url}
    client = load_settings(overrides={**overrides, **FAST, "queue": "baton-drain"}, environ={})
    client.home.mkdir(parents=True, exist_ok=True)
    store = open_store(client.resolved_store_url)
    workers = Workers(tmp_path, store_url, Broker("redis", private_redis.url, "baton-drain"))
    try:
        yield client, store, workers
    finally:
        workers.stop_all()
        store.close()


def submit(client: Settings, store: Store, repo: Path, thread: str, prompt: str) -> str:
    executor = CeleryExecutor(client, store)
    job = jobs.submit(store, client, body(repo, thread, prompt), "test")
    executor.submit(job.id)
    executor.stop()
    return job.id


def running(store: Store, job_id: str) -> bool:
    job = job_of(store, job_id)
    return (
        job.status == JobStatus.RUNNING
        and bool(store.run_attempts(job_id))
        and bool(store.run_attempts(job_id)[-1].agent_pid)
    )


def terminate(worker: Worker) -> float:
    """SIGTERM to the worker's main process only (its pool's processes get none, as in a pod)."""
    worker.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "draining: no new runs" in worker.text(), 10, what="the drain (seen within a second)")
    return time.monotonic()


@pytest.mark.slow
def test_a_draining_worker_finishes_its_turn_and_takes_no_new_one(
    fleet: tuple[Settings, Store, Workers], src_repo: Path
) -> None:
    client, store, workers = fleet
    a = workers.start("a", concurrency=2, env={"FAKE_AGENT_DELAY": "5"})
    first = submit(client, store, src_repo, "t1", "turn 1")
    wait_for(lambda: running(store, first), 60, what="the turn to run")
    terminate(a)
    later = submit(client, store, src_repo, "t2", "after the SIGTERM")
    wait_for(lambda: probe(a.home)[0] == 1, 5, what="a draining worker to be not ready")
    assert "shutting down" in probe(a.home)[1]
    assert probe(a.home, "--live")[0] == 0, "a draining worker is alive (no liveness kill mid-drain)"
    assert a.proc.wait(60) == 0, a.text()[-3000:]
    (done,) = wait_done(store, [first], timeout=5)
    assert done.outcome == "succeeded" and [r.outcome for r in runs_of(store, src_repo, "t1")] == [
        Outcome.SUCCEEDED
    ]
    assert job_of(store, later).status == JobStatus.QUEUED, "the draining worker took a new job"
    b = workers.start("b", concurrency=1)
    (other,) = wait_done(store, [later], timeout=60)
    assert other.outcome == "succeeded" and other.result is not None
    assert other.result["worktree"].startswith(str(b.home))


@pytest.mark.slow
def test_past_the_drain_deadline_the_turn_is_handed_back_and_resumed_elsewhere(
    fleet: tuple[Settings, Store, Workers], src_repo: Path
) -> None:
    client, store, workers = fleet
    a = workers.start("a", concurrency=1, env={"FAKE_AGENT_DELAY": "120", "BATON_DRAIN_TIMEOUT": "3"})
    job_id = submit(client, store, src_repo, "t1", "a long turn")
    wait_for(lambda: running(store, job_id), 60, what="the turn to run")
    began = terminate(a)
    assert a.proc.wait(60) == 0, a.text()[-3000:]
    took = time.monotonic() - began
    assert took < 3 + 20, f"the worker took {took:.0f} s to hand its turn back and exit"
    assert "handed back to the queue" in a.text()
    job = job_of(store, job_id)
    assert job.status == JobStatus.QUEUED and job.outcome is None, "handed back, not ended"
    (stopped,) = runs_of(store, src_repo, "t1")
    assert stopped.outcome == Outcome.CANCELLED and stopped.session_id_out, "its conversation is kept"

    b = workers.start("b", concurrency=1)
    (done,) = wait_done(store, [job_id], timeout=90)
    assert done.outcome == "succeeded", done.error
    first, retry = runs_of(store, src_repo, "t1")
    assert retry.prompt_kind == PromptKind.INTERRUPTED and retry.session_id_in == first.session_id_out
    assert done.result is not None and done.result["worktree"].startswith(str(b.home))
    assert [x["attempt_id"] for x in done.result["attempts"]] == [first.id, retry.id]
