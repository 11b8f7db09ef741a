"""Eight queued runs (four keys, two each) of one credential with the real Claude Code CLI (a
subscription login) against the mock model refusing as Anthropic refuses a spent five-hour window, through
the service's in-process executor with two slots: the mock's requests are counted. Before the reset it
sees only the requests of the runs that were in flight when the first met the limit (one per slot at
most, each refused once); none after the breaker tripped; after the reset all eight succeed, in order
per key, each key one conversation. The same across two Celery workers (PostgreSQL, Redis), four slots.
With the fake agent, twenty runs, a cancel, an early message and another credential meanwhile:
tests/fleet/test_quota_fleet.py."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.fleet.executor import Executor
from baton.fleet.local import LocalExecutor
from baton.keys import parse_repo
from baton.models import JobStatus, Outcome, PromptKind
from baton.settings import Settings
from baton.store import Store
from baton.testing import mock_anthropic
from baton.testing.mock_anthropic import MockAnthropic
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
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

# enough keys to fill the Celery test's four slots, two runs each to keep their order (each a real turn)
KEYS, ROUNDS = 4, 2


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockAnthropic]:
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    with MockAnthropic() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("ANTHROPIC_API_KEY")  # a subscription's window: a rate_limit_event with its reset
        monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "mock-oauth-token")
        yield server


def reset_at(model: MockAnthropic, until: int) -> list[int]:
    """Refuse as a spent window until ``until``, then answer again; the list gets how many conversation
    requests the mock had seen just before."""
    model.refusal = mock_anthropic.usage_limit(until)
    seen: list[int] = []

    def reset() -> None:
        time.sleep(max(0.0, until - time.time() - 0.3))
        seen.append(len(model.conversation()))
        model.refusal = None

    threading.Thread(target=reset, daemon=True).start()
    return seen


def submit(store: Store, settings: Settings, repo: Path, executor: Executor) -> dict[str, list[str]]:
    """The keys' runs, handed over interleaved as they come: the job ids by key, in order."""
    mine: dict[str, list[str]] = {f"k{k}": [] for k in range(KEYS)}
    for i, k in itertools.product(range(ROUNDS), range(KEYS)):
        job = jobs.submit(
            store,
            settings,
            {"agent": "claude", "repo": str(repo), "thread": f"k{k}", "prompt": f"job {i} of k{k}"},
            "test",
        )
        executor.submit(job.id)
        mine[f"k{k}"].append(job.id)
    return mine


def check(
    model: MockAnthropic,
    store: Store,
    repo: Path,
    mine: dict[str, list[str]],
    until: int,
    seen: list[int],
    slots: int,
) -> None:
    """Every job ended (waited for here); the mock's count and the runs say nothing ran into the wall."""
    ids = [j for js in mine.values() for j in js]
    wait_for(lambda: all(store.get_job(j).status == JobStatus.DONE for j in ids), 150, 0.2)  # type: ignore[union-attr]
    slug = parse_repo(str(repo)).slug
    attempts = {
        t: sorted(store.list_runs("claude", slug, t, limit=50), key=lambda r: r.started_at) for t in mine
    }
    everything = [r for rs in attempts.values() for r in rs]
    limited = [r for r in everything if r.outcome == Outcome.RATE_LIMITED]
    assert 1 <= len(limited) <= slots, [(r.thread, r.started_at) for r in limited]
    assert all(r.resets_at == until and r.limit_kind == "five_hour" for r in limited)
    (counted,) = seen
    assert counted == len(limited), (
        f"the mock saw {counted} requests before the reset, {len(limited)} refused"
    )
    assert [r for r in everything if r.started_at < until] == limited, "a run started into the wall"
    for thread, submitted in mine.items():
        done = [store.get_job(j) for j in submitted]
        assert all(j is not None and j.outcome == "succeeded" for j in done), [j.error for j in done if j]
        starts = [j.started_at or 0 for j in done if j]
        assert starts == sorted(starts), f"{thread}: out of submission order"
        runs = attempts[thread]
        assert len({r.session_id_out for r in runs}) == 1, f"{thread}: one conversation"
        for earlier, later in itertools.pairwise(runs):
            assert (earlier.ended_at or 0) <= later.started_at, f"{thread}: two runs of the key overlapped"
        for hit in (r for r in runs if r.outcome == Outcome.RATE_LIMITED):
            retry = next(r for r in runs if r.started_at > hit.started_at)
            assert retry.job_id == hit.job_id and retry.prompt_kind == PromptKind.INTERRUPTED
            assert retry.session_id_in == hit.session_id_out
    assert len(model.conversation()) >= KEYS * ROUNDS + len(limited)


def test_queued_claude_runs_in_process_wait_for_the_reset_and_the_mock_sees_no_request_meanwhile(
    model: MockAnthropic, settings: Settings, store: Store, src_repo: Path
) -> None:
    until = int(time.time() + 12)  # both slots' first requests refused by then (the Celery test's window)
    seen = reset_at(model, until)
    settings = settings.with_(concurrency=2)
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        mine = submit(store, settings, src_repo, executor)
        check(model, store, src_repo, mine, until, seen, settings.concurrency)
    finally:
        executor.stop()


@pytest.mark.parametrize(("broker", "shared_store_url"), [("redis", "postgresql")], indirect=True)
def test_queued_claude_runs_on_two_celery_workers_wait_for_the_reset(
    model: MockAnthropic,
    client: Settings,
    shared_store: Store,
    workers: Workers,
    broker: Broker,
    src_repo: Path,
) -> None:
    began = time.time()
    with ThreadPoolExecutor(2) as pool:  # (the workers inherit the mock's environment)
        for started in [pool.submit(workers.start, name, 2) for name in ("w1", "w2")]:
            started.result()
    until = int(time.time() + 12)
    assert until - began < 45, "the workers took too long to start"
    seen = reset_at(model, until)
    executor = CeleryExecutor(client.with_(queue=broker.queue), shared_store)
    try:
        mine = submit(shared_store, client, src_repo, executor)
        check(model, shared_store, src_repo, mine, until, seen, 4)
    finally:
        executor.stop()
