"""A spent usage quota across the fleet, with real processes: the runs of a credential wait for its
reset instead of running into the wall, then all go through, in order per key; other credentials'
runs go on meanwhile ("threads that wait").

- **Celery**: two ``baton worker`` processes (their own BATON_HOMEs, one PostgreSQL store, a private
  Redis broker) and 20 runs of one credential (5 keys x 4) queued at once, the fake agent meeting a
  Claude-style spent five-hour limit until ``FAKE_AGENT_LIMIT_UNTIL``. Only the runs that were in
  flight when the first met the limit reach the agent before the reset; every other waits, queued
  (``not_before``, a delayed message); after the reset all 20 succeed in submission order per key, and
  a rate-limited turn is delivered once, by its job's next attempt (``interrupted``, same
  conversation). Meanwhile a cancel ends a waiting job without running it, and a message for a
  waiting job sent by hand (as a duplicate or the janitor would) does not start it early.
- **The second credential.** The fake agent has no credential variables, so its breaker's key is the
  hash of its model address, ``ANTHROPIC_BASE_URL``, read from the *worker process's* environment
  (:func:`baton.runner.quota.credential`): a worker's credential is its environment's, not the job's.
  So a second credential is a third worker with another ``ANTHROPIC_BASE_URL`` (and no limit), and it
  must read **its own queue**: a worker of credential B reading credential A's queue would take A's
  waiting jobs and run them, honestly, with B's quota, before A's reset. Its runs are submitted at
  the same time and all end before A's reset.
- **In-process** (``baton serve``'s LocalExecutor): 6 runs over 2 keys, the same limit: none
  reaches the agent before the reset but those already in flight, all succeed after it, in order; a
  waiting job is cancelled.
- **Without a broker**: :func:`baton.fleet.queued.handle` on a held credential queues the job again
  with its reset (plus jitter) as ``not_before`` and a message for then; an early message starts
  nothing; a cancel ends it unrun. A cancel that comes while a started job is being found held (both
  executors) ends it then, instead of being lost (in-process) or seen only at the reset (a worker).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from baton.agents import get_agent
from baton.agents.limits import Limit, LimitKind
from baton.fleet import jobs, queued
from baton.fleet.celery import CeleryExecutor, enqueue
from baton.fleet.execute import NOT_STARTED
from baton.fleet.executor import Executor
from baton.fleet.local import LocalExecutor
from baton.keys import parse_repo
from baton.models import JobRecord, JobStatus, Mode, Outcome, PromptKind, QuotaState, RunRecord
from baton.runner import quota
from baton.settings import Settings
from baton.store import Store
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Broker,
    Worker,
    Workers,
    amqp_broker_fixture,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import wait_for

URL_A = "http://127.0.0.1:9/credential-a"  # the fake agent never connects: only the breaker's key
URL_B = "http://127.0.0.1:9/credential-b"
QUEUE_B = "baton-credential-b"
KEYS, ROUNDS = 5, 4  # credential A: 5 keys x 4 runs
SLOTS_A = 2 * 2  # two workers of credential A, two pool processes each
LEAD = 22.0  # seconds from starting the workers to credential A's reset (they start in ~3-8 s)


def body(repo: Path, thread: str, prompt: str) -> dict[str, Any]:
    return {"agent": "fake", "repo": str(repo), "thread": thread, "prompt": prompt}


def job_of(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    assert job is not None
    return job


def wait_done(store: Store, job_ids: list[str], timeout: float = 60) -> list[JobRecord]:
    wait_for(lambda: all(job_of(store, j).status == JobStatus.DONE for j in job_ids), timeout, 0.1)
    return [job_of(store, j) for j in job_ids]


def runs_of(store: Store, repo: Path, thread: str) -> list[RunRecord]:
    """The key's attempts, oldest first."""
    found = store.list_runs("fake", parse_repo(str(repo)).slug, thread, limit=100)
    return sorted(found, key=lambda r: r.started_at)


def prompt(k: int, i: int) -> str:
    return f"job {i} of k{k}"


def start_together(workers: Workers, specs: list[tuple[str, dict[str, str]]]) -> list[Worker]:
    """Start the workers at once (each waits for its own `ready`): their start-up is most of the lead
    before the reset."""
    with ThreadPoolExecutor(len(specs)) as pool:
        started = [pool.submit(workers.start, name, 2, env) for name, env in specs]
        return [f.result() for f in started]


def quota_lines(workers: list[Worker], job_id: str) -> int:
    """How many messages for ``job_id`` the workers dropped or deferred for its quota."""
    return sum(w.text().count(f"job {job_id}: quota") for w in workers)


def all_wait(store: Store, job_ids: list[str], until: float) -> None:
    """Wait until each of ``job_ids`` (the first queued job of its key) has met the spent quota and is
    queued again until after the reset."""
    wait_for(
        lambda: all((job_of(store, j).not_before or 0) >= until for j in job_ids),
        30,
        0.05,
        "the jobs to wait",
    )


def submit_both(
    store: Store, client: Settings, repo: Path, executor_a: CeleryExecutor, executor_b: CeleryExecutor
) -> tuple[dict[str, list[JobRecord]], list[JobRecord]]:
    """Credential A's 5 keys x 4 runs and, at the same time, credential B's 2 keys x 3: (A's jobs by
    key, in submission order; B's jobs)."""
    mine: dict[str, list[JobRecord]] = {f"k{k}": [] for k in range(KEYS)}
    theirs: list[JobRecord] = []
    for i, k in itertools.product(range(ROUNDS), range(KEYS)):  # all at once: 4 rounds over the 5 keys
        job = jobs.submit(store, client, body(repo, f"k{k}", prompt(k, i)), "test")
        executor_a.submit(job.id)
        mine[f"k{k}"].append(job)
        if k < 2 and i < 3:  # submitted to B's queue: a janitor sends a job back to its own queue
            job = jobs.submit(store, executor_b.settings, body(repo, f"b{k}", f"other {i}"), "test")
            executor_b.submit(job.id)
            theirs.append(job)
    return mine, theirs


def early_message_starts_nothing(
    store: Store, executor: CeleryExecutor, job_id: str, workers: list[Worker], until: float
) -> None:
    """A message for a job waiting for its quota, sent by hand before its ``not_before`` (as a copy or
    the janitor's kick would come): a worker takes it and drops it; the job still waits, unchanged."""
    before = job_of(store, job_id)
    seen = quota_lines(workers, job_id)
    assert time.time() < until - 2, "too late to send an early message before the reset"
    enqueue(executor.app, job_id, executor.queue, executor.tag)
    wait_for(lambda: quota_lines(workers, job_id) > seen, 10, 0.05, "the early message to be dropped")
    after = job_of(store, job_id)
    assert (after.status, after.not_before, after.started_at) == (JobStatus.QUEUED, before.not_before, None)


def cancel_while_waiting(store: Store, executor: Executor, job_id: str, until: float) -> None:
    """Cancel a job waiting for its quota: it ends ``cancelled`` at once, never started (that it never
    ran after the reset either is :func:`check_waited`'s)."""
    assert time.time() < until - 0.5, "too late to cancel a waiting job before the reset"
    assert executor.cancel(job_id)
    (cancelled,) = wait_done(store, [job_id], timeout=5)
    assert (cancelled.outcome, cancelled.error, cancelled.started_at) == ("cancelled", NOT_STARTED, None)


def ended_in_order(store: Store, mine: dict[str, list[JobRecord]], until: float) -> list[JobRecord]:
    """Wait for the jobs (by key, in submission order): all succeeded, each (its last start) after the
    reset, a key's jobs started and ended in submission order. The jobs, as they ended."""
    ended = wait_done(store, [j.id for js in mine.values() for j in js], timeout=60)
    assert [j.outcome for j in ended] == ["succeeded"] * len(ended), [j.error for j in ended if j.error]
    assert all((j.started_at or 0) >= until for j in ended), "a job (its last start) began before the reset"
    for thread, submitted in mine.items():
        done = [job_of(store, j.id) for j in submitted]
        starts, ends = [j.started_at or 0 for j in done], [j.ended_at or 0 for j in done]
        assert starts == sorted(starts) and ends == sorted(ends), f"{thread}: out of submission order"
    return ended


def check_waited(
    store: Store, repo: Path, prompts: dict[str, list[str]], until: float, slots: int, cancelled: str
) -> list[RunRecord]:
    """What both executors must show once everything ended (see the module docstring): ``prompts``,
    each key's instructions in submission order; ``cancelled``, the key of the job cancelled while it
    waited. The rate-limited attempts."""
    threads = list(prompts)
    attempts = {t: runs_of(store, repo, t) for t in [*threads, cancelled]}
    everything = [r for rs in attempts.values() for r in rs]
    assert all(r.outcome == Outcome.RATE_LIMITED for r in attempts[cancelled]), "the cancelled job ran"
    limited = [r for r in everything if r.outcome == Outcome.RATE_LIMITED]
    early = [r for r in everything if r.started_at < until]
    # Not "exactly one": a run reads its credential's breaker before it takes its key, and the breaker
    # trips only when a run's agent has met the limit and exited (~0.5 s here, seconds for a real CLI).
    # Runs that read it on the credential's other free slots in that moment go on into the wall too
    # (each ends rate_limited, trips it again, and is queued again): at most one per slot. Here every
    # slot is free when the queue arrives, so that is usually all of them (4 of the workers' 4 slots,
    # 2 of the in-process 2). Every key's first job met the limit before the reset (the test waited for
    # each to be queued again with a not_before), so the keys' first jobs beyond the slots were held by
    # the breaker itself, never reaching the agent; and nothing reached it after the last trip.
    assert 1 <= len(limited) <= slots, [(r.thread, r.outcome, r.started_at) for r in limited]
    assert early == limited, "an attempt started before the reset that was not one in flight at the trip"
    assert all(r.resets_at == until and r.limit_kind == "five_hour" for r in limited)
    assert all(r.ended_at is not None and r.ended_at < until for r in limited)
    last_trip = max(r.ended_at or 0.0 for r in limited)
    assert not [r for r in everything if last_trip <= r.started_at < until], "a run started into the wall"
    for thread in threads:
        mine = attempts[thread]
        for earlier, later in itertools.pairwise(mine):
            assert (earlier.ended_at or 0) <= later.started_at, f"{thread}: two runs of the key overlapped"
        done = [r for r in mine if r.outcome == Outcome.SUCCEEDED]
        # in submission order, each instruction once (the rate-limited one by its job's next attempt)
        assert [next(p for p in prompts[thread] if p in r.prompt) for r in done] == prompts[thread], thread
        assert len({r.session_id_out for r in mine}) == 1, f"{thread}: one conversation"
        replies = [int((r.result or "").split()[-2]) for r in done]
        assert [b - a for a, b in itertools.pairwise(replies)] == [2] * (len(replies) - 1), replies
        for hit in (r for r in mine if r.outcome == Outcome.RATE_LIMITED):
            after = [r for r in mine if r.started_at > hit.started_at]
            assert after, f"{thread}: the rate-limited turn was never run again"
            retry = after[0]
            assert retry.job_id == hit.job_id, "the rate-limited job was not the next of its key to run"
            assert retry.prompt_kind == PromptKind.INTERRUPTED and retry.mode == Mode.RESUME
            assert retry.session_id_in == hit.session_id_out, "the conversation was not resumed"
            said = next(p for p in prompts[thread] if p in hit.prompt)
            assert sum(said in r.prompt for r in after) == 1, f"{thread}: {said!r} delivered more than once"
    return limited


# -- Celery: two workers of a spent credential, one of another --------------------------------------


@pytest.mark.slow  # three `baton worker` processes and 30 runs
@pytest.mark.parametrize(("broker", "shared_store_url"), [("redis", "postgresql")], indirect=True)
def test_twenty_queued_runs_of_a_spent_credential_across_two_workers(
    client: Settings,
    shared_store: Store,
    workers: Workers,
    src_repo: Path,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = shared_store
    monkeypatch.delenv("FAKE_AGENT_LIMIT_UNTIL", raising=False)  # the workers' own environment says it
    began = time.time()
    until = float(int(began + LEAD))  # whole seconds, as Claude's resetsAt
    spent = {"ANTHROPIC_BASE_URL": URL_A, "FAKE_AGENT_LIMIT_UNTIL": str(int(until))}
    other = {"ANTHROPIC_BASE_URL": URL_B, "BATON_QUEUE": QUEUE_B, "FAKE_AGENT_DELAY": "0.5"}
    a1, a2, b = start_together(workers, [("a1", spent), ("a2", spent), ("b", other)])
    ready = time.time()
    assert ready < until - 8, f"the workers took {ready - began:.1f} s to start: too slow for this test"

    executor_a = CeleryExecutor(client.with_(queue=broker.queue), store)
    executor_b = CeleryExecutor(client.with_(queue=QUEUE_B), store)
    mine, theirs = submit_both(store, client, src_repo, executor_a, executor_b)
    doomed = jobs.submit(store, client, body(src_repo, "kx", "cancelled while it waits"), "test")
    executor_a.submit(doomed.id)
    ours = [j.id for js in mine.values() for j in js]

    # the first run meets the limit and trips the breaker; the first job of every key waits, queued
    all_wait(store, [js[0].id for js in mine.values()] + [doomed.id], until)
    (breaker,) = [q for q in store.list_quotas() if q.state == QuotaState.EXHAUSTED]
    assert breaker.resets_at == until and breaker.agent == "fake"
    assert all(job_of(store, j).status == JobStatus.QUEUED for j in ours), "a job ran before the reset"

    # another credential's runs go on meanwhile, on its own worker, and end before the reset
    others = wait_done(store, [j.id for j in theirs], timeout=until - time.time() - 1)
    assert [j.outcome for j in others] == ["succeeded"] * len(theirs), [j.error for j in others]
    assert all(j.result and j.result["worktree"].startswith(str(b.home)) for j in others)
    first_trip = min(r.ended_at or until for t in [*mine, "kx"] for r in runs_of(store, src_repo, t))
    assert max(j.ended_at or until for j in others) < until
    assert any((j.started_at or 0) > first_trip for j in others), "credential B's runs did not go on"

    early_message_starts_nothing(store, executor_a, mine["k0"][0].id, [a1, a2], until)
    cancel_while_waiting(store, executor_a, doomed.id, until)
    assert all(job_of(store, j).status == JobStatus.QUEUED for j in ours), "a job ran before the reset"

    ended = ended_in_order(store, mine, until)
    executor_a.stop()
    executor_b.stop()
    homes = {str(a1.home), str(a2.home)}
    assert all(j.result and j.result["worktree"].split("/worktrees/")[0] in homes for j in ended), (
        "a job of credential A ran on credential B's worker"
    )
    prompts = {t: [prompt(k, i) for i in range(ROUNDS)] for k, t in enumerate(mine)}
    limited = check_waited(store, src_repo, prompts, until, SLOTS_A, "kx")
    for hit in limited:  # the rate-limited job: its attempts, as its result lists them
        if hit.thread != "kx":
            (job,) = [j for j in ended if j.id == hit.job_id]
            assert job.result is not None
            kinds = [a["outcome"] for a in job.result["attempts"]]
            assert kinds == ["rate_limited", "succeeded"], kinds
    (closed,) = store.list_quotas()
    assert closed.state == QuotaState.OK, "the first turn through closed the breaker"
    assert "waits for a usage quota's reset" in a1.text() + a2.text()


# -- the in-process executor ------------------------------------------------------------------------


@pytest.mark.slow  # 7 runs and a wait for the reset
def test_the_in_process_executor_waits_for_the_reset(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = float(int(time.time() + 6))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", URL_A)  # the runner reads the credential here
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(int(until)))
    settings = settings.with_(concurrency=2)
    mine = {
        f"k{k}": [
            jobs.submit(store, settings, body(src_repo, f"k{k}", prompt(k, i)), "test") for i in range(3)
        ]
        for k in range(2)
    }
    doomed = jobs.submit(store, settings, body(src_repo, "kx", "cancelled while it waits"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        for i, k in itertools.product(range(3), range(2)):  # handed over interleaved, as they come
            executor.submit(mine[f"k{k}"][i].id)
        executor.submit(doomed.id)
        all_wait(store, [js[0].id for js in mine.values()] + [doomed.id], until)
        assert all(job_of(store, j.id).status == JobStatus.QUEUED for js in mine.values() for j in js)
        cancel_while_waiting(store, executor, doomed.id, until)
        ended_in_order(store, mine, until)
    finally:
        executor.stop()
    prompts = {t: [prompt(k, i) for i in range(3)] for k, t in enumerate(mine)}
    check_waited(store, src_repo, prompts, until, settings.concurrency, "kx")
    (closed,) = store.list_quotas()
    assert closed.state == QuotaState.OK, "the first turn through closed the breaker"


# -- without a broker: a message for a waiting job -------------------------------------------------


class Kicks(list[tuple[str, float]]):
    def __call__(self, job_id: str, countdown: float) -> None:
        self.append((job_id, countdown))

    def resend(self, job: JobRecord, countdown: float) -> None:  # the janitor's, to the job's queue
        self.append((job.id, countdown))


def test_a_waiting_job_is_queued_again_until_its_reset_and_may_be_cancelled(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker of the credential holds (another machine's run met the limit): the message queues
    the job again with its reset plus jitter and sends one for then; an early copy changes nothing; a
    later job of its key waits behind it; a cancel ends it unrun and lets the next of its key go."""
    reset = trip_a(settings, store, monkeypatch)
    kicks = Kicks()
    first = jobs.submit(store, settings, body(src_repo, "t1", "one"), "test")
    second = jobs.submit(store, settings, body(src_repo, "t1", "two"), "test")

    sent = time.time()
    assert queued.handle(first.id, settings, store, kicks) == queued.QUOTA
    waiting = job_of(store, first.id)
    assert waiting.status == JobStatus.QUEUED and waiting.started_at is None
    assert waiting.not_before is not None and reset + 1 <= waiting.not_before <= reset + 6  # jitter: 1-6 s
    ((kicked, countdown),) = kicks
    assert kicked == first.id and countdown == pytest.approx(waiting.not_before - sent, abs=1.0)

    assert queued.handle(first.id, settings, store, kicks) == queued.QUOTA  # early: a copy, the janitor
    assert len(kicks) == 1 and job_of(store, first.id).not_before == waiting.not_before
    assert not store.start_job(first.id, time.time()), "the store started it before its reset"
    assert queued.handle(second.id, settings, store, kicks) == queued.WAITING

    assert queued.cancel(settings, store, first.id, kicks)
    cancelled = job_of(store, first.id)
    assert (cancelled.status, cancelled.outcome, cancelled.error) == (
        JobStatus.DONE,
        "cancelled",
        NOT_STARTED,
    )
    assert kicks[-1] == (second.id, 0.0), "the cancel let the next job of its key go"
    assert queued.handle(second.id, settings, store, kicks) == queued.QUOTA  # the breaker still holds
    assert runs_of(store, src_repo, "t1") == [], "nothing reached the agent"


def test_a_long_wait_is_the_janitors_once_its_time_has_come(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reset hours away gets no delayed message (a broker would hold it unacknowledged that long:
    RabbitMQ closes the channel after its consumer_timeout): the janitor leaves the job alone until its
    time, then kicks it once."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", URL_A)
    key, label = quota.credential(get_agent("fake", settings), os.environ)
    reset = time.time() + 5 * 3600
    quota.trip(store, key, label, "fake", Limit(LimitKind.EXHAUSTED, reset), "elsewhere", settings, None)
    job = jobs.submit(store, settings, body(src_repo, "long", "one"), "test")
    kicks = Kicks()
    assert queued.handle(job.id, settings, store, kicks) == queued.QUOTA
    assert list(kicks) == [], "no message held for five hours"
    waiting = job_of(store, job.id)
    assert waiting.not_before is not None and waiting.not_before >= reset
    kicked: dict[str, float] = {}
    assert queued.heal(settings, store, kicks.resend, kicked) == [], "kicked before its reset"
    store.update_job(job.id, not_before=time.time() - 1)  # (its time has come)
    assert queued.heal(settings, store, kicks.resend, kicked) == [job.id]
    assert queued.heal(settings, store, kicks.resend, kicked) == [], "kicked once, not every pass"


class Gate:
    """Holds a run at its breaker's check (:func:`baton.runner.quota.check`) until let go, so a cancel
    can come in exactly then: after the job started, before it is found held and queued again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.go = threading.Event(), threading.Event()
        real = quota.check

        def check(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            assert self.go.wait(30)
            return real(*args, **kwargs)

        monkeypatch.setattr(quota, "check", check)


def trip_a(settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch) -> float:
    """Credential A's breaker, tripped by a run elsewhere: it holds for a minute. Its reset."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", URL_A)
    key, label = quota.credential(get_agent("fake", settings), os.environ)
    reset = time.time() + 60
    quota.trip(store, key, label, "fake", Limit(LimitKind.EXHAUSTED, reset), "elsewhere", settings, None)
    return reset


def test_a_cancel_as_a_started_job_is_found_held_is_not_lost_in_process(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trip_a(settings, store, monkeypatch)
    gate = Gate(monkeypatch)
    job = jobs.submit(store, settings, body(src_repo, "t1", "cancel me"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        executor.submit(job.id)
        assert gate.entered.wait(10)
        assert executor.cancel(job.id), "the cancel was refused"
        gate.go.set()
        (ended,) = wait_done(store, [job.id], timeout=10)
    finally:
        gate.go.set()
        executor.stop()
    assert (ended.outcome, ended.error) == ("cancelled", NOT_STARTED)
    assert runs_of(store, src_repo, "t1") == []


def test_a_cancel_as_a_started_job_is_found_held_is_not_lost_on_a_worker(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trip_a(settings, store, monkeypatch)
    gate = Gate(monkeypatch)
    job = jobs.submit(store, settings, body(src_repo, "t1", "cancel me"), "test")
    kicks, handled = Kicks(), []
    worker = threading.Thread(target=lambda: handled.append(queued.handle(job.id, settings, store, kicks)))
    worker.start()
    try:
        assert gate.entered.wait(10)
        assert queued.cancel(settings, store, job.id, kicks), "the cancel was refused"
    finally:
        gate.go.set()
        worker.join(30)
    ended = job_of(store, job.id)
    assert handled == [queued.CANCELLED] and (ended.status, ended.outcome) == (JobStatus.DONE, "cancelled")
    assert runs_of(store, src_repo, "t1") == [] and kicks == []
