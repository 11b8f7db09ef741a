"""The Celery executor with REAL brokers (a private redis-server; RabbitMQ with a queue of the test's own) and
REAL ``baton worker`` processes, each with its own BATON_HOME, on one shared store; the fake agent, whose
reply says how many messages it received.

- 40 runs over 10 keys enqueued at once across 2 workers: the runs of a key never overlap, start in
  submission order, and each sees two messages more than the one before (both brokers);
- cancel through the API stops a run on a remote worker within 2 s; a queued one ends at once;
- SIGKILL of a worker mid-run: the other worker takes the job over, the attempt is recorded
  ``crashed``, the retry resumes the conversation with the interruption note, and no turn runs again
  (both brokers);
- without Celery: what a message does to a job that ended, a job held by a live worker, a job whose
  last attempt ended before its worker died, and the janitor's kicks.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from baton.errors import BadInput
from baton.fleet import celery as celery_module
from baton.fleet import jobs, queued
from baton.fleet.celery import CeleryExecutor
from baton.fleet.executor import make_executor
from baton.fleet.local import LocalExecutor
from baton.fleet.routing import store_tag
from baton.keys import parse_repo
from baton.models import JobRecord, JobStatus, Outcome, PromptKind, RunRecord
from baton.runner.request import RunRequest
from baton.runner.run import run
from baton.settings import Settings
from baton.store import Store
from baton.store.base import Lease
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Broker,
    Workers,
    amqp_broker_fixture,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import gone, wait_for
from tests.service_fixtures import run_service

# both brokers, each on one of the two stores (the other way round in CROSSED)
PAIRS = ("broker", "shared_store_url")
BOTH = pytest.mark.parametrize(PAIRS, [("redis", "sqlite"), ("amqp", "postgresql")], indirect=True)
CROSSED = pytest.mark.parametrize(PAIRS, [("redis", "postgresql"), ("amqp", "sqlite")], indirect=True)


def body(repo: Path, thread: str, prompt: str) -> dict[str, Any]:
    return {"agent": "fake", "repo": str(repo), "thread": thread, "prompt": prompt}


def job_of(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    assert job is not None
    return job


def wait_done(store: Store, job_ids: list[str], timeout: float = 90) -> list[JobRecord]:
    wait_for(lambda: all(job_of(store, j).status == JobStatus.DONE for j in job_ids), timeout)
    return [job_of(store, j) for j in job_ids]


def runs_of(store: Store, repo: Path, thread: str) -> list[RunRecord]:
    """The key's attempts, oldest first."""
    found = store.list_runs("fake", parse_repo(str(repo)).slug, thread, limit=100)
    return sorted(found, key=lambda r: r.started_at)


def reply(n: int) -> str:
    return f"fake reply: received {n} messages"


@BOTH
def test_forty_runs_over_ten_keys_across_two_workers(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path
) -> None:
    store = shared_store
    slow = {"env": {"FAKE_AGENT_DELAY": "0.2"}}
    homes = [w.home for w in workers.start_together([("a", slow), ("b", slow)])]
    executor = CeleryExecutor(client, store)
    submitted = []
    for i, k in itertools.product(range(4), range(10)):  # all at once: 4 rounds over the 10 keys
        job = jobs.submit(store, client, body(src_repo, f"k{k}", f"job {i}"), "test")
        executor.submit(job.id)
        submitted.append(job)
    executor.stop()
    ended = wait_done(store, [j.id for j in submitted])
    assert [j.outcome for j in ended] == ["succeeded"] * 40, [j.error for j in ended if j.error]
    worktrees = [str(job.result and job.result["worktree"]) for job in ended]
    used = {home for home in homes for tree in worktrees if tree.startswith(str(home))}
    assert used == set(homes), "both workers ran jobs"
    for k in range(10):
        mine = [j for j in ended if j.thread == f"k{k}"]  # in submission order
        starts = [j.started_at or 0 for j in mine]
        assert starts == sorted(starts), f"k{k}: a later job started first"
        attempts = runs_of(store, src_repo, f"k{k}")
        assert len(attempts) == 4, f"k{k}: {len(attempts)} runs, not one per job"
        for earlier, later in itertools.pairwise(attempts):
            assert (earlier.ended_at or 0) <= later.started_at, f"k{k}: two runs of the key overlapped"
        assert [f"job {i}" in r.prompt for i, r in enumerate(attempts)] == [True] * 4, "runs out of order"
        # the conversation went on in order, whichever worker ran each turn: 2 more messages a run
        where = [(r.log_path.split("/home-")[-1][0], r.mode.value, r.note) for r in attempts]
        assert [r.result for r in attempts] == [reply(n) for n in (2, 4, 6, 8)], where
        assert len({r.session_id_out for r in attempts}) == 1, "one conversation per key"


@pytest.mark.parametrize("broker", ["amqp"], indirect=True)
def test_cancel_through_the_api_stops_a_remote_run(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path
) -> None:
    store = shared_store
    workers.start("a", env={"FAKE_AGENT_DELAY": "60"})
    with run_service(client) as service, service.client("run") as http:
        first = http.post("/v1/runs", json=body(src_repo, "t1", "long")).json()["run_id"]
        second = http.post("/v1/runs", json=body(src_repo, "t1", "never")).json()["run_id"]
        wait_for(
            lambda: bool(runs_of(store, src_repo, "t1")) and bool(runs_of(store, src_repo, "t1")[0].agent_pid)
        )
        agent_pid = runs_of(store, src_repo, "t1")[0].agent_pid
        assert agent_pid is not None and not gone(agent_pid)

        answer = http.post(f"/v1/runs/{second}/cancel")  # queued behind the first: ends at once
        assert answer.status_code == 202 and answer.json()["status"] == "done"
        assert (job_of(store, second).outcome, job_of(store, second).started_at) == ("cancelled", None)

        began = time.monotonic()
        assert http.post(f"/v1/runs/{first}/cancel").status_code == 202
        (stopped,) = wait_done(store, [first], timeout=30)
        took = time.monotonic() - began
        # stopped, not waited out: the agent thinks for 60 s (the bound has a busy machine's margin)
        assert took < 15, f"the remote run took {took:.2f} s to stop"
        assert stopped.outcome == "cancelled" and stopped.result is not None
        assert stopped.result["session_id"], "the conversation is kept"
        wait_for(lambda: gone(agent_pid), 5)
        assert http.post(f"/v1/runs/{first}/cancel").status_code == 409
    assert len(runs_of(store, src_repo, "t1")) == 1, "the cancelled queued run never ran"


@CROSSED
def test_sigkill_of_a_worker_mid_run(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path, broker: Broker
) -> None:
    store = shared_store
    first = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 1"), client, store)
    assert first.run.result == reply(2)
    # a 2 s lease: the janitor looks every 2 s; Redis gives an unacknowledged message back after 6 s
    timings = {
        "BATON_LEASE_TTL": "2",
        **({"BATON_VISIBILITY_TIMEOUT": "6"} if broker.kind == "redis" else {}),
    }
    a = workers.start("a", env={**timings, "FAKE_AGENT_DELAY": "60"})
    executor = CeleryExecutor(client, store)
    job = jobs.submit(store, client, body(src_repo, "t1", "turn 2"), "test")
    executor.submit(job.id)
    wait_for(
        lambda: len(runs_of(store, src_repo, "t1")) == 2 and bool(runs_of(store, src_repo, "t1")[1].agent_pid)
    )
    doomed = runs_of(store, src_repo, "t1")[1]
    b = workers.start("b", env=timings)
    a.kill()

    # bounds, not paces: a loaded machine 2.6 times slower than the usual one needed more than 40 s
    (done,) = wait_done(store, [job.id], timeout=120)
    assert done.outcome == "succeeded", done.error
    assert done.result is not None and done.result["worktree"].startswith(str(b.home)), "worker b took it"
    attempts = runs_of(store, src_repo, "t1")
    assert [r.outcome for r in attempts] == [Outcome.SUCCEEDED, Outcome.CRASHED, Outcome.SUCCEEDED]
    crashed, retry = attempts[1], attempts[2]
    assert crashed.id == doomed.id and crashed.prompt_kind == PromptKind.DELTA
    assert retry.prompt_kind == PromptKind.INTERRUPTED and "turn 2" in retry.prompt
    assert retry.session_id_in == first.session.agent_session_id == retry.session_id_out
    assert retry.result == reply(4), "the retry resumed the conversation of turn 1"
    assert [a["attempt_id"] for a in done.result["attempts"]] == [crashed.id, retry.id]
    assert done.result["run_id"] == job.id and {crashed.job_id, retry.job_id} == {job.id}
    assert doomed.agent_pid is not None and gone(doomed.agent_pid), "the orphaned agent was stopped"

    # the broker gave A's message back (RabbitMQ at once, Redis after the visibility timeout): to b,
    # whose janitor may have been quicker; then (or later) it found the job ended and did nothing. With
    # Redis, a's own scan may give it back while a still runs it (b's start-up outlasting the 6 s), and
    # a's second slot takes it and finds the job held: either worker's log says so
    def redelivered() -> bool:
        return any(f"job {job.id}: " in w.text() and "(redelivered)" in w.text() for w in (a, b))

    wait_for(redelivered, 60)
    time.sleep(1)  # that nothing more runs has no condition to wait for: a second retry had this time
    assert len(runs_of(store, src_repo, "t1")) == 3
    executor = CeleryExecutor(client, store)
    third = jobs.submit(store, client, body(src_repo, "t1", "turn 3"), "test")
    executor.submit(third.id)
    executor.stop()
    (after,) = wait_done(store, [third.id])
    assert after.result is not None and after.result["result"] == reply(6)
    assert len(runs_of(store, src_repo, "t1")) == 4


# -- without a broker: handle() and the janitor on their own -------------------------------------------


class Kicks(list[tuple[str, float]]):
    def __call__(self, job_id: str, countdown: float) -> None:
        self.append((job_id, countdown))

    def resend(self, job: JobRecord, countdown: float) -> None:  # the janitor's, to the job's queue
        self.append((job.id, countdown))


def test_messages_are_idempotent(settings: Settings, store: Store, src_repo: Path) -> None:
    """An ended job's message does nothing but kick its successor; a job held by a live worker is
    left alone; a blocked job waits for its kick; a taken-over job whose last attempt had ended is
    only recorded, never run again."""
    kicks = Kicks()
    one = jobs.submit(store, settings, body(src_repo, "t1", "one"), "test")
    two = jobs.submit(store, settings, body(src_repo, "t1", "two"), "test")
    assert queued.handle(two.id, settings, store, kicks) == queued.WAITING  # one is queued before it
    lease = jobs.job_lease(store, settings, one.id)
    lease.acquire(0)
    assert queued.handle(one.id, settings, store, kicks) == queued.HELD
    lease.release()
    assert queued.handle(one.id, settings, store, kicks) == queued.RAN
    assert kicks == [(two.id, 0.0)], "the end of one kicked two"
    assert job_of(store, one.id).outcome == "succeeded"
    assert queued.handle(one.id, settings, store, kicks) == queued.ENDED  # a redelivery
    assert kicks[-1] == (two.id, 0.0) and len(runs_of(store, src_repo, "t1")) == 1

    # two's worker died after its attempt ended, before it recorded the job's end
    assert queued.handle(two.id, settings, store, kicks) == queued.RAN
    record = job_of(store, two.id)
    store.update_job(two.id, status=JobStatus.RUNNING.value, outcome=None, ended_at=None)
    assert queued.handle(two.id, settings, store, kicks) == queued.RECORDED
    again = job_of(store, two.id)
    assert (again.status, again.outcome) == (JobStatus.DONE, "succeeded")
    assert again.result is not None and record.result is not None
    assert again.result["attempts"] == record.result["attempts"] and again.result["result"] == reply(4)
    assert len(runs_of(store, src_repo, "t1")) == 2, "no turn ran twice"


def test_a_worker_that_lost_the_job_records_nothing(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused past its lease (here: no heartbeat), a worker finds at the end that another holds the
    job: it leaves the job's end to that one."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "1.5")
    settings = settings.with_(lease_ttl=0.5, heartbeat=60)
    job = jobs.submit(store, settings, body(src_repo, "t1", "slow"), "test")
    thief = jobs.job_lease(store, settings, job.id)

    def steal() -> None:
        wait_for(lambda: job_of(store, job.id).status == JobStatus.RUNNING, 10)
        thief.acquire(5)

    thread = threading.Thread(target=steal)
    thread.start()
    assert queued.handle(job.id, settings, store, Kicks()) == queued.LOST
    thread.join()
    assert job_of(store, job.id).status == JobStatus.RUNNING, "the new holder records the end"
    thief.release()


def test_a_worker_whose_job_lease_is_taken_stops_its_run_at_once(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewal that finds the job's lease taken sets the run's cancel event itself: the agent (30 s
    of work) stops within seconds, and the worker leaves the job's end to the lease's new holder."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    settings = settings.with_(heartbeat=0.1)
    job = jobs.submit(store, settings, body(src_repo, "t1", "slow"), "test")
    stolen = threading.Event()

    def steal() -> None:
        wait_for(
            lambda: bool(runs_of(store, src_repo, "t1")) and bool(runs_of(store, src_repo, "t1")[0].agent_pid)
        )
        thief = Lease(f"job:{job.id}", "thief", "elsewhere.invalid", 1, 0.0, 0.0)
        assert store.try_lease(thief, 60, lambda _existing, _now: True) is None
        stolen.set()

    thread = threading.Thread(target=steal)
    thread.start()
    began = time.monotonic()
    assert queued.handle(job.id, settings, store, Kicks()) == queued.LOST
    thread.join()
    assert stolen.is_set() and time.monotonic() - began < 20, "the agent was not stopped"
    (attempt,) = runs_of(store, src_repo, "t1")
    assert attempt.agent_pid is not None and gone(attempt.agent_pid)
    assert job_of(store, job.id).status == JobStatus.RUNNING, "the new holder records the end"


def test_janitor_kicks_what_no_message_brings_back(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.with_(lease_ttl=30.0)  # a queued job is stale after STALE TTLs: two minutes
    ahead = [0.0]  # the janitor's clock, moved by hand instead of sleeping
    monkeypatch.setattr(queued, "time", SimpleNamespace(time=lambda: time.time() + ahead[0]))
    kicks, seen = Kicks(), dict[str, float]()
    lost = jobs.submit(store, settings, body(src_repo, "t1", "message lost"), "test")
    later = jobs.submit(store, settings, body(src_repo, "t1", "behind it"), "test")
    running = jobs.submit(store, settings, body(src_repo, "t2", "worker died"), "test")
    assert store.start_job(running.id, time.time())
    live = jobs.submit(store, settings, body(src_repo, "t3", "worker alive"), "test")
    assert store.start_job(live.id, time.time())
    lease = jobs.job_lease(store, settings, live.id)
    lease.acquire(0)
    assert queued.heal(settings, store, kicks.resend, seen) == [running.id], (
        "a fresh queued job has its message"
    )
    ahead[0] += queued.STALE * settings.lease_ttl + 1  # the queued jobs are stale now
    assert queued.heal(settings, store, kicks.resend, seen) == [running.id, lost.id], (
        "only the oldest of a key"
    )
    assert queued.heal(settings, store, kicks.resend, seen) == [running.id], "kicked once per stale period"
    assert later.id not in [k for k, _ in kicks]
    lease.release()


def test_the_janitor_sends_a_job_back_to_its_own_queue(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job remembers the queue it was submitted to; a janitor's kick goes there, never to the
    janitor's own queue (a worker of another credential, reading another queue, would run it with its
    own quota). A job submitted without BATON_QUEUE goes to the store's own queue."""
    theirs = jobs.submit(store, settings.with_(queue="credential-b"), body(src_repo, "t1", "b's"), "test")
    ours = jobs.submit(store, settings.with_(queue=""), body(src_repo, "t2", "default"), "test")
    assert (job_of(store, theirs.id).queue, job_of(store, ours.id).queue) == ("credential-b", None)
    for job in (theirs, ours):  # both waited for a reset that has passed: the janitor kicks them now
        store.update_job(job.id, not_before=time.time() - 1)
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        celery_module, "enqueue", lambda _app, job_id, queue, *_: sent.append((job_id, queue))
    )
    tag = store_tag(settings, store)
    janitor = celery_module._Janitor(cast(Any, None), settings, ["credential-a"], "w@here", tag)
    assert sorted(queued.heal(settings, store, janitor._kick, {})) == sorted([theirs.id, ours.id])
    assert sorted(sent) == sorted([(theirs.id, "credential-b"), (ours.id, f"baton.{tag.id}")])


def test_choosing_the_executor(settings: Settings, store: Store) -> None:
    assert isinstance(make_executor(settings, store), LocalExecutor)
    with pytest.raises(BadInput, match="redis:// or amqp://"):
        make_executor(settings.with_(broker_url="http://example.invalid/"), store)
    assert isinstance(
        make_executor(settings.with_(broker_url="amqp://guest@127.0.0.1//"), store), CeleryExecutor
    )


def test_submit_without_a_broker_says_so(cli: Any, src_repo: Path) -> None:
    done = cli("submit", "-a", "fake", "-r", str(src_repo), "-t", "t1", "hello", env={"BATON_BROKER_URL": ""})
    assert done.returncode == 2, done.stderr
    assert "needs a broker" in done.stderr and "BATON_BROKER_URL" in done.stderr


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_submit_follow(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path, cli: Any
) -> None:
    """`baton submit` prints the run id; `--follow` streams its events — from a worker on another home
    (another machine: the stream goes through the store) — and exits as `baton run` does."""
    worker_home = workers.start("a").home  # BATON_QUEUE: the client fixture put it in this environment
    assert worker_home != client.home
    env = {
        "BATON_HOME": str(client.home),
        "BATON_STORE_URL": client.store_url,
        "BATON_BROKER_URL": client.broker_url,
    }
    done = cli("submit", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--json", "hello", env=env)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["run_id"]
    wait_done(shared_store, [job_id])
    follow = cli("submit", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--follow", "again", env=env)
    assert follow.returncode == 0, follow.stderr
    assert reply(4) in follow.stdout and "succeeded" in follow.stdout  # the agent's own event, live
    lines = cli("submit", "-a", "fake", "-r", str(src_repo), "-t", "t1", "-f", "--json", "more", env=env)
    *events, last = map(json.loads, lines.stdout.splitlines())  # JSON Lines, as its --help says
    assert events and all(set(e) == {"seq", "run_id", "attempt", "attempt_id", "event"} for e in events), (
        events
    )
    assert set(last) == {"outcome"} and last["outcome"]["outcome"] == "succeeded", last
    assert last["outcome"]["result"] == reply(6)
    assert "JSON Lines" in cli("submit", "--help").stdout
    assert not (client.home / "jobs").exists() or not list((client.home / "jobs").glob("*.jsonl"))
