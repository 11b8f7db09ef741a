"""A stale lease holder cannot write. Runner A (a ``baton run`` process) is paused with SIGSTOP mid-turn, past
its lease; runner B, on another machine (its own empty BATON_HOME, another host name, so it does not kill A's
agent as a same-host takeover would), takes the key over and finishes a turn. When A continues (SIGCONT),
every write it tries about the key is refused by the fencing token: the session, the snapshot and the shared
checkpoint stay B's; A stops its own agent at once and records only its run's ending, saying why. On SQLite
and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from baton import RunRequest, run
from baton.models import Mode, Outcome, PromptKind, RunRecord
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.store.leases import pid_alive
from tests.conftest import BATON, FAST, wait_for
from tests.pgwire import CommitStall
from tests.tcpproxy import proxied

LEASE_TTL = 1.0  # short: the test waits it out, paused (A renews every 0.2 s while it runs)


def home(tmp_path: Path, name: str, store_url: str) -> Settings:
    timings = {**FAST, "lease_ttl": LEASE_TTL, "heartbeat": 0.2}
    return load_settings(
        overrides={"home": str(tmp_path / name), "store_url": store_url, **timings}, environ={}
    )


def runner_a(
    settings: Settings, repo: Path, agent_delay: float, heartbeat: float, **env_more: str
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **env_more,
        "BATON_HOME": str(settings.home),
        "BATON_STORE_URL": env_more.get("BATON_STORE_URL", settings.store_url),
        "BATON_LEASE_TTL": str(LEASE_TTL),
        "BATON_HEARTBEAT": str(heartbeat),
        "FAKE_AGENT_DELAY": str(agent_delay),
    }
    argv = [*BATON, "run", "-a", "fake", "-r", str(repo), "-t", "t1", "--json", "slow turn 2"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def key_state(store: Store, repo_slug: str) -> tuple[object, ...]:
    session = store.get_session("fake", repo_slug, "t1")
    snapshot = store.get_snapshot("fake", repo_slug, "t1")
    checkpoint = store.get_checkpoint("fake", repo_slug, "t1")
    assert session is not None and snapshot is not None and checkpoint is not None
    return session, snapshot.digests(), dataclasses.astuple(checkpoint)


def running(store: Store) -> RunRecord:
    """A's run, once its agent runs (its pid recorded)."""
    wait_for(lambda: any(r.agent_pid for r in store.list_runs(outcome=Outcome.RUNNING)), 60)
    (stale,) = store.list_runs(outcome=Outcome.RUNNING)
    assert stale.agent_pid is not None
    return stale


def gave_way(
    store: Store, proc: subprocess.Popen[str], stale: RunRecord, after_b: tuple[object, ...]
) -> None:
    """A, thawed, stopped its agent, wrote nothing of the key's (B's session, snapshot and checkpoint
    stand), recorded its own run cancelled saying why, and failed."""
    assert stale.agent_pid is not None
    wait_for(lambda: not pid_alive(stale.agent_pid or 0), 10)
    assert key_state(store, stale.repo) == after_b  # session, snapshot, checkpoint: B's, untouched
    ended = store.get_run(stale.id)
    assert ended is not None and ended.outcome == Outcome.CANCELLED and "took over" in str(ended.error)
    assert proc.returncode != 0


# "running": A's agent is mid-turn for a minute; A renews often, so on SIGCONT it learns at once that
# the key is gone (its renewal or its fenced heartbeat) and must stop the agent itself.
# "finished": A's agent ends while A is paused, and A renews rarely (every 20 s, its lease long
# expired): on SIGCONT its first writes (the run's end, the snapshot, the checkpoint, the session)
# come before any renewal could tell it, so only the fencing token stands between them and the store.
CASES = {"running": (60.0, 0.2), "finished": (1.0, 20.0)}  # (the agent's delay, A's heartbeat)


@pytest.mark.slow
@pytest.mark.timeout(180)  # its own waits: A's start 60 s, the takeover 30, A's end 30
@pytest.mark.parametrize("case", list(CASES))
def test_a_stale_holder_cannot_write_and_stops_its_agent(
    tmp_path: Path, store_url: str, src_repo: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    a, b = home(tmp_path, "machine-a", store_url), home(tmp_path, "machine-b", store_url)
    store = open_store(store_url)
    try:
        first = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 1"), settings=a)
        slug = first.run.repo
        agent_delay, heartbeat = CASES[case]
        proc = runner_a(a, src_repo, agent_delay, heartbeat)
        try:
            stale = running(store)
            agent_pid = stale.agent_pid
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(LEASE_TTL + 0.5)  # time passes (the database's clock): A's lease expires, A paused

            monkeypatch.setattr("baton.runner.crashed.HOST", "machine-b")  # B is another machine
            takeover = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 3", wait=30)
            second = run(takeover, settings=b)
            assert second.ok and second.run.mode == Mode.RESUME  # hydrated from the store's snapshot
            assert second.session.agent_session_id == first.session.agent_session_id
            assert second.run.prompt_kind == PromptKind.INTERRUPTED  # A's turn was cut: B says so
            if case == "running":
                assert psutil.pid_exists(agent_pid or 0)  # B did not touch A's agent: A must stop it itself
            after_b = key_state(store, slug)

            os.kill(proc.pid, signal.SIGCONT)
            began = time.monotonic()
            _out, err = proc.communicate(timeout=30)
            # not the agent's minute: A stopped it (the bound has a busy machine's margin)
            assert time.monotonic() - began < 20, err
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.communicate()
        gave_way(store, proc, stale, after_b)
    finally:
        store.close()


# -- frozen between its renewal's statement and its commit (issue 68) ---------------------------------------

IDLE = 2.0  # A's store_idle_timeout: the server ends A's transaction this long after A froze in it


def _sessions(pg_admin: sa.Engine, name: str) -> list[tuple[str, str]]:
    """(state, query) of the server's sessions of the test's schema (``pg_url`` names them so)."""
    query = (
        "SELECT state, query FROM pg_stat_activity WHERE application_name = :n AND pid <> pg_backend_pid()"
    )
    with pg_admin.connect() as conn:
        return [(str(r.state), str(r.query)) for r in conn.execute(sa.text(query), {"n": name})]


@pytest.mark.slow
@pytest.mark.timeout(180)  # its own waits: A's start 60 s, the takeover 30, A's end 30
def test_a_holder_frozen_between_its_renewal_and_its_commit_holds_nothing(
    tmp_path: Path, pg_url: str, pg_admin: sa.Engine, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runner A freezes (SIGSTOP) exactly between its lease renewal's UPDATE and its COMMIT, holding the
    lease row's lock in an open transaction: the moment that hung the suite for 833 s. The server ends
    A's transaction after A's ``store_idle_timeout``; B's takeover never queues behind it (its try is
    refused at once and tried again) and lands within its ``--wait``; thawed, A's commit fails, its
    renewal finds the key gone, it stops its agent and writes nothing of B's."""
    url = sa.engine.make_url(pg_url)
    name = str(url.query["application_name"])
    a, b = home(tmp_path, "machine-a", pg_url), home(tmp_path, "machine-b", pg_url)
    store = open_store(pg_url)
    frozen: list[int] = []
    stall = CommitStall(b"UPDATE leases SET expires_at", lambda: os.kill(frozen[0], signal.SIGSTOP))
    try:
        first = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 1"), settings=a)
        slug = first.run.repo
        with proxied(url.host or "127.0.0.1", url.port or 5432, stall) as proxy:
            through = url.set(host="127.0.0.1", port=proxy.port).update_query_dict({"sslmode": "disable"})
            env = {"BATON_STORE_URL": through.render_as_string(hide_password=False)}
            proc = runner_a(a, src_repo, 60.0, 0.2, **env, BATON_STORE_IDLE_TIMEOUT=str(IDLE))
            frozen.append(proc.pid)
            try:
                stale = running(store)
                stall.watching.set()  # A's agent runs: its next renewal is frozen before its commit
                assert stall.stalled.wait(60), "A never renewed its lease through the proxy"
                agent_pid = stale.agent_pid
                held = [q for state, q in _sessions(pg_admin, name) if "idle in" in state]
                assert any(q.startswith("UPDATE leases SET expires_at") for q in held), held

                monkeypatch.setattr("baton.runner.crashed.HOST", "machine-b")  # B is another machine
                takeover = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 3", wait=30)
                began = time.monotonic()
                second = run(takeover, settings=b)
                took = time.monotonic() - began
                assert second.ok and second.run.mode == Mode.RESUME, second.run.error
                assert second.run.prompt_kind == PromptKind.INTERRUPTED
                assert took < 25, f"the takeover took {took:.1f} s"  # within its wait, not behind A
                states = [state for state, _ in _sessions(pg_admin, name)]
                assert not any("idle in" in state for state in states), states  # the server ended A's
                assert psutil.pid_exists(agent_pid or 0)  # B did not touch A's agent: A must stop it itself
                after_b = key_state(store, slug)

                stall.release()
                os.kill(proc.pid, signal.SIGCONT)
                thawed = time.monotonic()
                _out, err = proc.communicate(timeout=30)
                assert time.monotonic() - thawed < 20, err  # not the agent's minute: A stopped it
            finally:
                stall.release()
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                    proc.communicate()
        gave_way(store, proc, stale, after_b)
    finally:
        store.close()
