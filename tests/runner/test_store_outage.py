"""A store outage at a turn's end keeps the turn (:mod:`baton.runner.outage`): on a REAL PostgreSQL
reached through a TCP proxy the test cuts (:mod:`tests.tcpproxy`; the shared server is never stopped),
the fake agent's turn ends while the store cannot be reached. Within ``store_outage_wait`` the run and
its job end ``succeeded`` once the store is back, snapshot and checkpoint stored, the key's lease held
throughout; past it the run fails saying so, and the key's next run resumes the conversation on the
worktree the agent left."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from baton import Busy, Mode, Outcome, RunRequest, RunResult, open_store, run
from baton.errors import StoreError, StoreUnavailable
from baton.fleet import jobs
from baton.fleet.local import LocalExecutor
from baton.models import JobStatus
from baton.runner.crashed import CRASHED
from baton.runner.outage import waits_out
from baton.settings import Settings, load_settings
from baton.store import Store
from baton.store.engine import dispose_engine
from baton.store.sql import SQLStore
from baton.testing.fake import find_transcripts
from tests.conftest import FAST, held_until, wait_for
from tests.redis_fixtures import server_fixture  # noqa: F401 (a private redis-server, for the leases)
from tests.tcpproxy import Proxy, proxied

SERVICE_FIXTURES = {"server": "redis"}  # marks the tests that reach it (conftest)

# the agent's last step: its work written, it ends once the store is cut off (`.cut`, written by
# cut_at_last_step; a minute at most), so the outage meets the turn's end however slow the machine
LAST_STEP = "echo done > work.txt; " + held_until(".cut")


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    url = sa.engine.make_url(pg_url)
    with proxied(url.host or "127.0.0.1", url.port or 5432) as made:
        yield made


def through(pg_url: str, proxy: Proxy) -> str:
    return sa.engine.make_url(pg_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


def settings_for(home: Path, store_url: str, **more: Any) -> Settings:
    # a lease that outlives the outage: no other machine may take the key meanwhile
    overrides = {"home": str(home), **FAST, "lease_ttl": 20.0, "store_url": store_url, **more}
    return load_settings(overrides=overrides, environ={})


def cut_at_last_step(settings: Settings, proxy: Proxy, outage: float) -> dict[str, float]:
    """Cut the store off when the agent takes its last step, for ``outage`` seconds; the times."""
    times: dict[str, float] = {}

    def watch() -> None:
        wait_for(lambda: list((settings.home / "worktrees").rglob("work.txt")), 60, 0.01, "the last step")
        times["dropped"] = time.time()
        proxy.drop()
        [work] = list((settings.home / "worktrees").rglob("work.txt"))
        (work.parent / ".cut").touch()  # the agent ends now
        time.sleep(outage)
        proxy.restore()
        times["restored"] = time.time()

    threading.Thread(target=watch, daemon=True).start()
    return times


def go(settings: Settings, repo: Path, store: Store | None = None, wait: float = 0) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread="t1", prompt="do it", wait=wait)
    return run(request, settings, store)


@pytest.mark.slow
@pytest.mark.parametrize("leases", ["sql", "redis"])
def test_a_turn_ending_in_a_store_outage_is_recorded_when_the_store_is_back(
    tmp_path: Path,
    pg_url: str,
    proxy: Proxy,
    src_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    leases: str,
) -> None:
    """``sql``: the lease lives in the store, its TTL longer than the outage (no one can renew or take
    it meanwhile); ``redis``: the lease lives in Redis, renewed through an outage 2.5 times its TTL (3 s:
    a 2 s lease expired once on a loaded machine, its renewals every 0.2 s starved that long)."""
    monkeypatch.setenv("FAKE_AGENT_RUN", LAST_STEP)
    url = through(pg_url, proxy)
    extra: dict[str, Any] = {}
    if leases == "redis":
        extra = {
            "lease_backend": "redis",
            "redis_url": request.getfixturevalue("server").url,
            "lease_ttl": 3.0,
        }
    settings = settings_for(tmp_path / "a", url, **extra)
    store = open_store(settings.resolved_store_url)
    direct = open_store(pg_url)
    executor = LocalExecutor(settings, store)
    try:
        executor.start()
        job = jobs.submit(
            store,
            settings,
            {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "do it"},
            "test",
        )
        executor.submit(job.id)
        times = cut_at_last_step(settings, proxy, outage=7.5)
        wait_for(proxy.down.is_set, 60, 0.01, "the store cut off")
        # the agent ended at the cut: its end waits for the store; 5 s into the outage, past a Redis
        # lease's TTL, so only its renewals hold it
        time.sleep(5.0)
        # another machine, reaching the store: the key is still held. (Its settings name the store by the
        # proxy's URL: Redis namespaces leases by the store URL's host and port, baton.store.redis.)
        other = settings_for(tmp_path / "b", url, **extra)
        with pytest.raises(Busy, match="is busy: a run holds it"):
            go(other, src_repo, direct)
        assert proxy.down.is_set(), "the key was held during the outage, not after it"
        wait_for(lambda: (direct.get_job(job.id) or job).status == JobStatus.DONE, 60, 0.05, "the job's end")
        ended = time.time()
        done = direct.get_job(job.id)
        assert done is not None and done.outcome == Outcome.SUCCEEDED.value, done and done.error
        runs = direct.list_runs()
        assert [r.outcome for r in runs] == [Outcome.SUCCEEDED], [(r.outcome, r.error) for r in runs]
        record = runs[0]
        assert record.error is None and record.result and "received 2 messages" in record.result
        # its end is when the turn ended, during the outage, not when the store came back
        assert record.ended_at is not None and times["dropped"] < record.ended_at < times["restored"]
        assert direct.get_snapshot("fake", record.repo, "t1") is not None, "the transcript's snapshot"
        assert direct.get_checkpoint("fake", record.repo, "t1") is not None, "the worktree's checkpoint"
        print(
            f"outage {times['restored'] - times['dropped']:.1f} s; turn ended "
            f"{record.ended_at - times['dropped']:.1f} s into it; job done "
            f"{ended - times['restored']:.2f} s after the store was back"
        )
        # the key was released: its next run (on the first machine) resumes the conversation
        monkeypatch.delenv("FAKE_AGENT_RUN")
        after = go(settings, src_repo, store)
        assert after.run.outcome == Outcome.SUCCEEDED and after.run.mode == Mode.RESUME
        assert after.run.result and "received 4 messages" in after.run.result
    finally:
        executor.stop()
        store.close()
        direct.close()
        dispose_engine(url)


@pytest.mark.slow
def test_a_store_away_past_the_bound_fails_the_run_and_the_next_run_recovers(
    tmp_path: Path, pg_url: str, proxy: Proxy, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_RUN", LAST_STEP)
    url = through(pg_url, proxy)
    settings = settings_for(tmp_path / "a", url, store_outage_wait=1.5, lease_ttl=8.0)
    direct = open_store(pg_url)
    try:
        times = cut_at_last_step(settings, proxy, outage=6.0)
        began = time.time()
        with pytest.raises(StoreUnavailable) as raised:
            go(settings, src_repo)
        failed = time.time()
        said = str(raised.value)
        assert "ended succeeded, but the store stayed unreachable for 1.5 s (setting store_outage" in said
        assert "cannot reach the store at" in said and "next run marks the run crashed and resumes" in said
        assert failed < times.get("restored", float("inf")), "it gave up while the store was away"
        wait_for(lambda: "restored" in times, 30, 0.05, "the store back")
        print(f"failed {failed - times['dropped']:.1f} s after the cut ({failed - began:.1f} s in all)")

        # what the store says then: the run still `running`; this machine kept the turn's work
        [record] = direct.list_runs()
        session = direct.get_session("fake", record.repo, "t1")
        assert record.outcome == Outcome.RUNNING and session is not None and session.agent_session_id
        conversation = session.agent_session_id
        assert find_transcripts(settings, conversation), "the transcript is kept"
        [work] = list((settings.home / "worktrees").rglob("work.txt"))
        assert work.read_text() == "done\n"

        monkeypatch.delenv("FAKE_AGENT_RUN")
        # its lease could not be released (the store away): it expires by its TTL, then the key is free
        after = go(settings, src_repo, wait=15)
        assert after.run.outcome == Outcome.SUCCEEDED and after.run.mode == Mode.RESUME
        assert after.run.session_id_in == conversation
        assert after.run.result and "received 4 messages" in after.run.result, "the conversation went on"
        first, second = sorted(direct.list_runs(), key=lambda r: r.started_at)
        assert (first.outcome, first.error) == (Outcome.CRASHED, CRASHED)
        assert second.id == after.run.id
        assert direct.get_snapshot("fake", record.repo, "t1") is not None
        assert direct.get_checkpoint("fake", record.repo, "t1") is not None
        assert work.read_text() == "done\n", "the worktree as the agent left it"
    finally:
        direct.close()
        dispose_engine(url)


def test_an_unreachable_postgresql_is_store_unavailable(pg_url: str, proxy: Proxy) -> None:
    url = through(pg_url, proxy)
    store = SQLStore(url)  # migrated through the proxy
    try:
        proxy.drop()
        with pytest.raises(StoreUnavailable, match="cannot reach the store at"):
            store.list_runs()
        proxy.restore()
        assert store.list_runs() == []
        # a statement the server refuses is not an outage
        with pytest.raises(StoreError) as refused, store.transaction() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))
        assert not isinstance(refused.value, StoreUnavailable)
    finally:
        store.close()
        dispose_engine(url)


class Flaky:
    """A store whose ``update_run`` is away for its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.updated = failures, 0, 0

    def update_run(self, run_id: str, **fields: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("cannot reach the store at postgresql://db/baton: refused")
        self.updated += 1


def patient_store(store: Flaky, wait: float) -> Any:
    return waits_out(store, wait, "r1", Outcome.SUCCEEDED)  # type: ignore[arg-type]  # update_run only


def test_the_end_is_tried_again_while_the_store_is_away() -> None:
    flaky = Flaky(failures=3)
    began = time.monotonic()
    patient_store(flaky, wait=30).update_run("r1", outcome="succeeded")
    assert (flaky.calls, flaky.updated) == (4, 1)
    assert 0.2 + 0.4 + 0.8 <= time.monotonic() - began < 5, "a growing delay: 0.2, 0.4, 0.8 s"


def test_past_the_bound_the_error_says_what_became_of_the_turn() -> None:
    flaky = Flaky(failures=1000)
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"run r1 ended succeeded, but the store stayed unreachable"):
        patient_store(flaky, wait=1.0).update_run("r1", outcome="succeeded")
    assert time.monotonic() - began <= 1.1 and flaky.updated == 0


class FlakyStrikes:
    """A room's store (the strikes') whose first ``failures`` calls find the store away."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def strike(self, key: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("cannot reach the store at postgresql://db/baton: refused")
        return f"struck {key}"


def test_the_strikes_wait_out_the_outage_as_the_turns_end_does() -> None:
    """quarantine.after writes the strikes through outage.alike: tried again like the run's own end,
    until the same deadline; before the end (a store that does not wait) the role is used as it is."""
    from types import SimpleNamespace

    from baton.runner.outage import alike

    strikes = FlakyStrikes(failures=2)
    ending: Any = SimpleNamespace(store=patient_store(Flaky(0), wait=30))
    assert alike(ending, strikes).strike("k") == "struck k" and strikes.calls == 3
    running: Any = SimpleNamespace(store=Flaky(0))
    assert alike(running, strikes) is strikes
    late: Any = SimpleNamespace(store=patient_store(Flaky(0), wait=0.3))
    time.sleep(0.35)  # the end's deadline has passed: the strikes get no time of their own
    away = FlakyStrikes(failures=1000)
    with pytest.raises(StoreUnavailable, match="run r1 ended succeeded"):
        alike(late, away).strike("k")
    assert away.calls == 1


def test_a_store_away_when_the_agent_starts_does_not_end_its_turn(
    tmp_path: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write that records the agent's start (its pid) meets the store away (under load, an outage
    began just then: the test above cut the store there): the turn goes on, as a heartbeat meeting it
    does, and its end records the pid."""
    settings = settings_for(tmp_path / "a", "")
    settings.home.mkdir(parents=True)
    store = open_store(settings.resolved_store_url)
    update_run, refused = store.update_run, []

    def away_at_the_start(run_id: str, **fields: Any) -> None:
        if "agent_pid" in fields and "outcome" not in fields:
            refused.append(fields["agent_pid"])
            raise StoreUnavailable("cannot reach the store at postgresql://db/baton: connection closed")
        update_run(run_id, **fields)

    monkeypatch.setattr(store, "update_run", away_at_the_start)
    try:
        result = go(settings, src_repo, store)
        assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
        [record] = store.list_runs()
        assert refused and record.agent_pid == refused[0] == result.run.agent_pid
    finally:
        store.close()
