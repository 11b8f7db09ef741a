"""A store outage mid-turn delays a job's events, never drops them: a REAL ``baton worker`` on a private
PostgreSQL (``tests.restartable``) that is frozen (SIGSTOP of every server process: connections stay
open, nothing answers) from the turn's first events until past the agent's end, or stopped for 6 s
while the fake agent streams events 0.3 s apart; and :class:`baton.fleet.eventsink.StoreSink` on its
own against a store that fails and then answers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from baton.errors import StoreError
from baton.fleet import eventsink, jobs
from baton.fleet.celery import CeleryExecutor
from baton.fleet.eventsink import StoreSink
from baton.models import JobStatus
from baton.settings import load_settings
from baton.store import open_store
from tests.celery_fixtures import Broker, Workers
from tests.conftest import FAST, wait_for
from tests.fleet.test_celery import body, job_of
from tests.restartable import RestartablePostgres, RestartableRedis, private_pg_fixture, private_redis_fixture  # noqa: F401 (fixtures)

# the fake agent's events, 0.3 s apart: 6 s of them under a freeze held until the agent has ended; 12 s
# under a 6 s stop, so that the turn's end writes come after the store is back
RETRIES = {"freeze": 20, "stop": 40}
SERVICE_FIXTURES = {"private_pg": "postgres", "private_redis": "redis"}


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["freeze", "stop"])
def test_a_store_outage_mid_turn_delays_events_and_drops_none(
    tmp_path: Path,
    private_pg: RestartablePostgres,
    private_redis: RestartableRedis,
    src_repo: Path,
    outage: str,
) -> None:
    """``freeze``: every write waits until past the agent's end (its result in the worker's own file of
    the job's events), the turn's end writes too; ``stop``: every write is refused for 6 s while the
    agent streams (the server stopped and started again on its port, its data kept; the turn's own
    end writes come after it, and would wait for the store: baton.runner.outage)."""
    overrides = {
        "home": str(tmp_path / "client"),
        "store_url": private_pg.url,
        "broker_url": private_redis.url,
    }
    client = load_settings(overrides={**overrides, **FAST, "queue": "baton-frozen"}, environ={})
    store = open_store(client.resolved_store_url)
    workers = Workers(tmp_path, private_pg.url, Broker("redis", private_redis.url, "baton-frozen"))
    try:
        # a lease that outlives the freeze: this test is about the stream, not about fencing
        env = {
            "FAKE_AGENT_DELAY": "1",
            "FAKE_AGENT_RETRIES": str(RETRIES[outage]),
            "BATON_LEASE_TTL": "90",
            "BATON_HEARTBEAT": "1",
        }
        worker = workers.start("a", concurrency=1, env=env)
        executor = CeleryExecutor(client, store)
        job = jobs.submit(store, client, body(src_repo, "t1", "stream"), "test")
        executor.submit(job.id)
        executor.stop()
        wait_for(lambda: len(store.job_events(job.id)) >= 3, timeout=60, what="the first events")
        local = jobs.events_path(load_settings(overrides={"home": str(worker.home)}, environ={}), job.id)
        if outage == "freeze":
            private_pg.freeze()
            try:
                wait_for(lambda: agent_ended(local), timeout=60, what="the agent's end, the store frozen")
                # the turn's end writes (its run's end, its events' flush) now wait on the frozen store:
                # nothing shows them waiting but the store itself, which is what is frozen
                time.sleep(2)
            finally:
                private_pg.thaw()
        else:
            private_pg.stop()
            try:
                time.sleep(6)  # writes refused meanwhile: the agent streams for 12 s
            finally:
                private_pg.start()
        wait_for(lambda: job_of(store, job.id).status == JobStatus.DONE, timeout=120, what="the job's end")
        done = job_of(store, job.id)
        assert done.outcome == "succeeded", done.error

        stored = [json.loads(line) for line in store.job_events(job.id, 0, 10_000)]
        seqs = [line["seq"] for line in stored]
        assert seqs == list(range(1, len(seqs) + 1)), f"seqs missing, doubled or out of order: {seqs}"
        retries = [line for line in stored if line.get("event", {}).get("subtype") == "api_retry"]
        wanted = RETRIES[outage]
        assert len(retries) == wanted, f"{len(retries)} of the agent's {wanted} retry events are stored"
        assert stored[-1].get(jobs.END) == "succeeded"
        assert [json.loads(line) for line in local.read_text().splitlines()] == stored, (
            "the file and store agree"
        )
        text = worker.text()
        assert "Traceback" not in text and "closed file" not in text, text[-3000:]
        if outage == "stop":
            assert "not stored yet" in text and "takes events again" in text, text[-3000:]
    finally:
        workers.stop_all()
        store.close()


def agent_ended(local: Path) -> bool:
    """Whether the worker's own file of the job's events holds the agent's result (its last event)."""
    try:
        lines = [json.loads(line) for line in local.read_text().splitlines() if line.endswith("}")]
    except (OSError, ValueError):  # not made yet, or a line half written
        return False
    return any(line.get("event", {}).get("type") == "result" for line in lines)


class FlakyStore:
    """``add_job_event`` fails its first ``failures`` calls (a store away), then keeps the lines."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0
        self.lines: list[tuple[int, str]] = []

    def add_job_event(self, job_id: str, seq: int, line: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("the store is away")
        self.lines.append((seq, line))


def test_the_sink_retries_in_order_and_flush_waits(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the back-off's first pause a tenth of the product's (4 failures: 0.3 s of pauses, not 3 s); what
    # is tested is the order, the once-each and the flush's wait, not the pauses' length
    monkeypatch.setattr(eventsink, "FIRST_RETRY", eventsink.FIRST_RETRY / 10)
    flaky = FlakyStore(failures=4)
    sink = StoreSink(flaky, "job-1")  # type: ignore[arg-type]  # only add_job_event is used
    began = time.monotonic()
    for seq in range(1, 6):
        sink.put(seq, f"line {seq}")  # returns at once, the store away or not
    assert time.monotonic() - began < 0.1
    assert sink.flush(timeout=30)
    assert flaky.lines == [(seq, f"line {seq}") for seq in range(1, 6)]
    assert flaky.calls == 4 + 5, "each line written once after the outage"
    sink.close()
    assert [r.message for r in caplog.records if "not stored yet" in r.message], "the outage is logged once"
    assert len([r for r in caplog.records if "not stored yet" in r.message]) == 1


def test_the_sink_says_which_lines_never_reached_the_store(caplog: pytest.LogCaptureFixture) -> None:
    sink = StoreSink(FlakyStore(failures=10**6), "job-2")  # type: ignore[arg-type]
    sink.put(1, "line 1")
    sink.put(2, "line 2")
    assert not sink.flush(timeout=0.5)
    sink.close(timeout=0.5)
    assert any("seq [1, 2] are only in this worker's file" in r.message for r in caplog.records)
