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

from baton import RunRequest, run
from baton.models import Mode, Outcome, PromptKind
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.store.leases import pid_alive
from tests.conftest import BATON, FAST, wait_for

LEASE_TTL = 1.0  # short: the test waits it out, paused (A renews every 0.2 s while it runs)


def home(tmp_path: Path, name: str, store_url: str) -> Settings:
    timings = {**FAST, "lease_ttl": LEASE_TTL, "heartbeat": 0.2}
    return load_settings(
        overrides={"home": str(tmp_path / name), "store_url": store_url, **timings}, environ={}
    )


def runner_a(settings: Settings, repo: Path, agent_delay: float, heartbeat: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "BATON_HOME": str(settings.home),
        "BATON_STORE_URL": settings.store_url,
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


# "running": A's agent is mid-turn for a minute; A renews often, so on SIGCONT it learns at once that
# the key is gone (its renewal or its fenced heartbeat) and must stop the agent itself.
# "finished": A's agent ends while A is paused, and A renews rarely (every 20 s, its lease long
# expired): on SIGCONT its first writes (the run's end, the snapshot, the checkpoint, the session)
# come before any renewal could tell it, so only the fencing token stands between them and the store.
CASES = {"running": (60.0, 0.2), "finished": (1.0, 20.0)}  # (the agent's delay, A's heartbeat)


@pytest.mark.slow
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
            wait_for(lambda: any(r.agent_pid for r in store.list_runs(outcome=Outcome.RUNNING)), 60)
            (stale,) = store.list_runs(outcome=Outcome.RUNNING)
            agent_pid = stale.agent_pid
            assert agent_pid is not None
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(LEASE_TTL + 0.5)  # time passes (the database's clock): A's lease expires, A paused

            monkeypatch.setattr("baton.runner.crashed.HOST", "machine-b")  # B is another machine
            takeover = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="turn 3", wait=30)
            second = run(takeover, settings=b)
            assert second.ok and second.run.mode == Mode.RESUME  # hydrated from the store's snapshot
            assert second.session.agent_session_id == first.session.agent_session_id
            assert second.run.prompt_kind == PromptKind.INTERRUPTED  # A's turn was cut: B says so
            if case == "running":
                assert psutil.pid_exists(agent_pid)  # B did not touch A's agent: A must stop it itself
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
        wait_for(lambda: not pid_alive(agent_pid), 10)
        assert key_state(store, slug) == after_b  # session, snapshot, checkpoint: B's, untouched
        ended = store.get_run(stale.id)
        assert ended is not None and ended.outcome in (Outcome.CANCELLED, Outcome.CRASHED)
        assert ended.outcome == Outcome.CANCELLED and "took over" in str(ended.error)
        assert proc.returncode != 0
    finally:
        store.close()
