"""Queued runs of a key whose branch another key writes (one writer per branch): they wait, never fail.
A queue's worker (:func:`baton.fleet.queued.handle`) puts the job back in the queue, first of its key,
with a message for later, as for a busy key; the in-process pool (:class:`LocalExecutor`) waits for
the branch within its lease wait. Real SQLite, the fake agent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.fleet import jobs, queued
from baton.fleet.local import LocalExecutor
from baton.keys import make_key
from baton.models import JobRecord, JobStatus
from baton.settings import Settings
from baton.store import Store
from baton.store.branchlease import BranchLease, branch_lease
from tests.conftest import wait_for


def body(repo: Path, thread: str) -> dict[str, Any]:
    return {
        "agent": "fake",
        "repo": str(repo),
        "thread": thread,
        "prompt": f"work on {thread}",
        "branch": "feat",
    }


def job_of(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    assert job is not None
    return job


@pytest.fixture
def writer(settings: Settings, store: Store, src_repo: Path) -> Iterator[BranchLease]:
    """Another key (``t9``, a CLI run) writing the branch ``feat`` now."""
    key = make_key("fake", str(src_repo), "t9", ["fake"])
    lease = branch_lease(settings, store, key.repo.slug, "feat", key.id, "r-cli")
    lease.acquire(0)
    yield lease
    lease.release()


class Kicks(list[tuple[str, float]]):
    def __call__(self, job_id: str, countdown: float) -> None:
        self.append((job_id, countdown))


def test_a_worker_puts_a_job_whose_branch_is_written_back_in_the_queue(
    settings: Settings, store: Store, src_repo: Path, writer: BranchLease, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queued, "key_wait", lambda _settings: 0.3)  # not two lease TTLs: the test's time
    kicks = Kicks()
    job = jobs.submit(store, settings, body(src_repo, "t2"), "test")
    later = jobs.submit(store, settings, body(src_repo, "t2"), "test")
    assert queued.handle(job.id, settings, store, kicks) == queued.DEFERRED
    back = job_of(store, job.id)
    assert (back.status, back.started_at, back.outcome) == (JobStatus.QUEUED, None, None)
    assert kicks == [(job.id, settings.lease_ttl)]  # a message for later, the slot free meanwhile
    assert queued.handle(later.id, settings, store, kicks) == queued.WAITING  # still first of its key
    assert store.list_runs("fake", writer.repo, "t2") == []  # nothing reached the agent
    writer.release()
    assert queued.handle(job.id, settings, store, kicks) == queued.RAN
    ran = job_of(store, job.id)
    assert (ran.status, ran.outcome) == (JobStatus.DONE, "succeeded"), ran.error
    assert kicks[-1] == (later.id, 0.0)


def test_the_in_process_pool_waits_for_the_branch_then_runs_the_job(
    settings: Settings, store: Store, src_repo: Path, writer: BranchLease
) -> None:
    executor = LocalExecutor(settings, store, lease_wait=120)
    executor.start()
    try:
        job = jobs.submit(store, settings, body(src_repo, "t2"), "test")
        executor.submit(job.id)
        wait_for(lambda: job_of(store, job.id).status == JobStatus.RUNNING, 60, 0.05, "the job to start")
        time.sleep(0.5)  # time passes on purpose: it must still wait for the branch after it
        assert job_of(store, job.id).status == JobStatus.RUNNING
        assert store.list_runs("fake", writer.repo, "t2") == []
        writer.release()
        wait_for(lambda: job_of(store, job.id).status == JobStatus.DONE, 60, 0.05, "the job to end")
    finally:
        executor.stop()
    done = job_of(store, job.id)
    assert done.outcome == "succeeded", done.error
