"""Three ``baton serve`` replicas on one PostgreSQL store and the fake GitHub, each with a home of its
own: the forge's background duty (reconcile, kicks) is one replica's at a time, so three make the forge
traffic of one; kill -9 of the duty's holder hands it over; kill -9 of the replica that runs the
turns mid-publish loses nothing and doubles nothing once it is back (its home holds the worktrees:
no other replica publishes them). Two replicas that die for good (the duty's holder mid-turn, another
mid-publish) leave nothing undone: the survivor runs their interrupted turns again and publishes their
finished ones from the store's checkpoints — every mention answered once, no run left running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.models import JobStatus, Outcome
from baton.settings import Settings
from baton.store import Store, open_store
from baton.testing.fake_forge import FakeForge
from tests.conftest import BATON, FAST, wait_for
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    SECRET,
    configure,
    fake_fixture,
    forge_kind_fixture,
    statuses,
)
from tests.service_fixtures import free_port, wait_http

pytestmark = pytest.mark.slow
RECONCILE = 2.0  # seconds between reconcile passes
TTL = 3.0  # the duty's lease: how long a dead holder keeps it from another host


@dataclass
class Replica:
    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait()

    def spawn(self) -> None:
        with (self.home / "serve.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [*BATON, "serve", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/healthz", timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@pytest.fixture(name="replicas")
def replicas_fixture(tmp_path: Path, fake: FakeForge, pg_url: str) -> Iterator[list[Replica]]:
    made = []
    for i in range(3):
        home = tmp_path / f"replica{i}"
        configure(Settings(home=home), fake, "fake")
        env = {
            "BATON_HOME": str(home),
            **{f"BATON_{k.upper()}": str(v) for k, v in FAST.items()},
            "BATON_LEASE_TTL": str(TTL),
            "BATON_STORE_URL": pg_url,
            "BATON_FORGE_RECONCILE": str(RECONCILE),
            "BATON_WEBHOOK_SECRET": SECRET,
            "BATON_GIT_TOKEN": fake.token("baton-bot"),
            "FAKE_AGENT_DELAY": "2",
            "FAKE_AGENT_WRITE": "notes.md",  # an agent that edits its worktree: each turn pushes
        }
        made.append(Replica(home, free_port(), env))
    yield made
    for replica in made:
        if replica.process is not None and replica.process.poll() is None:
            replica.kill()


def start_all(replicas: list[Replica]) -> None:
    """The replicas started side by side (each one's start-up is its own process's), then each waited
    for until it answers."""
    for replica in replicas:
        replica.spawn()
    for replica in replicas:
        replica.wait()


def duty_holder(pg_url: str) -> int | None:
    """The pid holding the forge duty now (its lease's holder is ``host:pid:nonce``)."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT holder, expires_at FROM leases WHERE key = 'duty:forge'")
            ).first()
    finally:
        engine.dispose()
    if row is None or not row[0] or row[1] < time.time():
        return None
    return int(row[0].split(":")[1])


def traffic(fake: FakeForge, seconds: float) -> int:
    """The forge API requests made in the next ``seconds``."""
    before = len(fake.requests)
    time.sleep(seconds)
    return len(fake.requests) - before


def test_three_replicas_share_the_forge_duty_and_publish_each_turn_once(
    replicas: list[Replica], fake: FakeForge, pg_url: str
) -> None:
    start_all(replicas)
    wait_for(lambda: duty_holder(pg_url) is not None, timeout=30, what="a holder of the forge duty")
    holder = next(r for r in replicas if r.pid == duty_holder(pg_url))
    runner = next(r for r in replicas if r is not holder)  # receives the webhooks, runs the turns
    fake.deliver_to = f"http://127.0.0.1:{runner.port}/webhooks/github"
    issues = [fake.open_issue(REPO, "alice", f"Task {n}", f"@baton write notes {n}") for n in range(4)]
    store = open_store(pg_url)
    try:
        wait_for(lambda: len(store.list_jobs(limit=10)) == 4, timeout=60, what="four turns")
        holder.kill()  # mid-pass or between passes: another replica takes the duty
        wait_for(lambda: duty_holder(pg_url) not in (None, holder.pid), timeout=4 * TTL, what="a takeover")

        # the runner dies once a turn is published and while others are not
        wait_for(lambda: _published(store) >= 1, timeout=120, what="a published turn")
        runner.kill()
        runner.start()  # back with its home: its worktrees, its unpublished turns
        wait_for(lambda: _settled(store), timeout=180, what="every turn ended and published")
        for number in issues:
            assert len(statuses(fake, number)) == 1, (number, statuses(fake, number))
        heads = [p.pr.head_ref for p in fake.pulls(REPO) if p.pr is not None]
        assert len(heads) == len(set(heads))  # one PR a thread at most
        pushed = {j.thread for j in store.list_jobs(limit=50) if j.outcome == "succeeded"}
        assert {f"baton/fake/{thread}" for thread in pushed} <= set(heads)  # a turn that ended: pushed

        holder.start()  # three replicas again, four bound threads, nothing new: the reconcile's traffic
        three = traffic(fake, 5 * RECONCILE)
        for extra in replicas[1:]:
            extra.kill()
        wait_for(lambda: duty_holder(pg_url) == replicas[0].pid, timeout=4 * TTL, what="the last one")
        one = traffic(fake, 5 * RECONCILE)
        assert 0 < three <= 1.5 * one + 3, (three, one)  # three replicas make one replica's traffic
    finally:
        store.close()


def test_two_replicas_dead_for_good_lose_no_mention(
    replicas: list[Replica], fake: FakeForge, pg_url: str
) -> None:
    """10 mentions over three replicas; the duty's holder is killed while turns run, then another
    replica just after it pushed a turn (mid-publish); neither comes back. The survivor takes over what
    they left: every issue gets exactly one status comment saying ``succeeded`` and one PR, each job
    ends ``succeeded``, and no run is left ``running``."""
    start_all(replicas)
    wait_for(lambda: duty_holder(pg_url) is not None, timeout=30, what="a holder of the forge duty")
    holder = next(r for r in replicas if r.pid == duty_holder(pg_url))
    others = [r for r in replicas if r is not holder]
    issues = []
    for n in range(10):  # the webhooks spread over the replicas (each one's executor takes any job)
        fake.deliver_to = f"http://127.0.0.1:{replicas[n % 3].port}/webhooks/github"
        issues.append(fake.open_issue(REPO, "alice", f"Task {n}", f"@baton write notes {n}"))
    store = open_store(pg_url)
    try:
        wait_for(lambda: _running_in(store, holder), timeout=60, what="a turn running in the holder")
        holder.kill()  # mid-turn: its turns never end there
        pushes = len(fake.git.requests)
        wait_for(lambda: _pushed_since(fake, pushes), timeout=120, what="a push")
        fake.stall_next(4, 3.0)  # the pusher's next forge writes (its PR, its comment) wait
        victim = next((r for r in others if _publishing_in(store, r)), others[0])
        victim.kill()  # mid-publish: pushed, its PR or status comment not written
        survivor = next(r for r in others if r is not victim)
        fake.deliver_to = f"http://127.0.0.1:{survivor.port}/webhooks/github"
        wait_for(lambda: _settled(store, 10), timeout=300, what="every turn ended and published")
        for number in issues:
            said = statuses(fake, number)
            assert len(said) == 1 and "**succeeded**" in said[0], (number, said)
        jobs = store.list_jobs(limit=50)
        assert sorted(j.outcome or "" for j in jobs) == ["succeeded"] * 10, [(j.id, j.error) for j in jobs]
        heads = [p.pr.head_ref for p in fake.pulls(REPO) if p.pr is not None]
        threads = sorted({f"baton/fake/{j.thread}" for j in jobs})
        assert sorted(heads) == threads, [statuses(fake, n) for n in issues]  # one PR each
        assert store.list_runs(limit=100, outcome=Outcome.RUNNING) == []
        assert any(j.reruns for j in jobs), "the holder's turns ran again"
    finally:
        store.close()


def _running_in(store: Store, replica: Replica) -> bool:
    """Whether a turn's agent runs in ``replica`` now (its runs' logs are in its home)."""
    running = store.list_runs(limit=100, outcome=Outcome.RUNNING)
    return any(r.agent_pid and r.log_path.startswith(str(replica.home)) for r in running)


def _publishing_in(store: Store, replica: Replica) -> bool:
    """Whether ``replica`` has a job whose turn ended and which it has not recorded ended yet."""
    for job in store.list_jobs(status=JobStatus.RUNNING, limit=50):
        runs = store.run_attempts(job.id)
        if runs and runs[-1].outcome == Outcome.SUCCEEDED and runs[-1].log_path.startswith(str(replica.home)):
            return True
    return False


def _pushed_since(fake: FakeForge, before: int) -> bool:
    return any("git-receive-pack" in r.path and r.method == "POST" for r in fake.git.requests[before:])


def _published(store: Store) -> int:
    """How many of the turns are published."""
    turns = [t for b in forge_store(store).list_bindings() for t in forge_store(store).forge_turns(*_of(b))]
    return sum(t["published_at"] is not None for t in turns)


def _of(binding: Binding) -> tuple[str, str, int]:
    return binding.forge, binding.repo, binding.number


def _settled(store: Store, turns: int = 4) -> bool:
    jobs = store.list_jobs(limit=50)
    return (
        len(jobs) >= turns
        and all(j.status == JobStatus.DONE for j in jobs)
        and not forge_store(store).unpublished_turns()
    )
