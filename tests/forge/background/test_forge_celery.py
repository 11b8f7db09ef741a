"""Forge turns run by the fleet: the dispatcher submits through Celery (a private redis-server), a REAL
``baton worker`` (its own BATON_HOME, the forge tables in the file ``BATON_FORGE_CONFIG`` names) runs
the fake agent and publishes the turn itself — commit, push with the forge's token, the PR, the status
comment — and starts the coalesced next turn through the queue. The fake GitHub is the forge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.fleet.celery import CeleryExecutor
from baton.forge.background.schedule import heal
from baton.forge.data.model import Actor, ForgeEvent, Trigger
from baton.forge.data.records import FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.models import JobStatus, Outcome
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Broker,
    Workers,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import HELD, wait_for
from tests.forge_fixtures import REPO, SECRET, statuses

pytestmark = pytest.mark.slow


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeForge]:
    forge = FakeForge(tmp_path / "forge", secret=SECRET).start()
    forge.create_repo(REPO)
    forge.add_user("baton-bot")
    forge.set_permission(REPO, "baton-bot", "write")
    forge.set_permission(REPO, "alice", "write")
    yield forge
    forge.stop()
    assert forge.violations == []


def comment(number: int, identity: int, body: str) -> ForgeEvent:
    trigger = Trigger.MENTION if "@baton" in body else Trigger.FEEDBACK
    return ForgeEvent(
        "github",
        REPO,
        number,
        FeedbackKind.COMMENT,
        f"comment:{identity}",
        Actor("alice"),
        trigger,
        body=body,
    )


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_worker_runs_and_publishes_forge_turns(
    client: Settings,
    shared_store: Store,
    workers: Workers,
    fake: FakeForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register_fake()
    env = _forge_env(fake, tmp_path, monkeypatch)
    # the first turn is held by a gate (``.gate`` in its worktree) until the test has coalesced two comments
    worker = workers.start("w", env={**env, "FAKE_AGENT_RUN": HELD})
    executor = CeleryExecutor(client, shared_store)
    loop = ForgeLoop(client, shared_store, load_forges(client.home, environ=env), executor.submit)
    issue = fake.open_issue(REPO, "alice", "Notes", "Write notes.")

    assert dispatch.handle(loop, comment(issue, 1, "@baton write the notes")).status == "accepted"
    wait_for(lambda: any(j.status == JobStatus.RUNNING for j in shared_store.list_jobs()), timeout=60)
    # two comments while the turn runs on the worker: they wait, and the worker starts them as one turn
    assert [dispatch.handle(loop, comment(issue, n, f"also {n}")).status for n in (2, 3)] == ["coalesced"] * 2
    wait_for(lambda: list(worker.home.glob(f"worktrees/fake/**/issue-{issue}")), timeout=30)
    [worktree] = worker.home.glob(f"worktrees/fake/**/issue-{issue}")
    (worktree / ".gate").write_text("go\n")

    def published() -> bool:
        jobs = shared_store.list_jobs(limit=10)
        return (
            len(jobs) == 2
            and all(j.status == JobStatus.DONE for j in jobs)
            and not forge_store(shared_store).unpublished_turns()
        )

    wait_for(published, timeout=120, what="two turns run and published by the worker")
    executor.stop()
    loop.close()
    assert [j.outcome for j in shared_store.list_jobs(limit=10)] == ["succeeded", "succeeded"]
    notes = fake.repo(REPO).git("show", f"baton/fake/issue-{issue}:notes.md")
    assert "turn 1" in notes and "turn 2" in notes
    [pr] = fake.pulls(REPO)
    [status] = statuses(fake, issue)
    assert f"opened #{pr.number}" in status or "succeeded" in status


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_worker_killed_mid_turn_loses_no_mention(
    client: Settings,
    shared_store: Store,
    workers: Workers,
    fake: FakeForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10 mentions over two workers; one is killed (kill -9, its pool too) while its turns run and does
    not come back. Its turns run again on the other (the broker redelivers their messages, its janitor
    kicks them) and are published there: every issue gets one status comment saying ``succeeded`` and
    one PR, and no run is left ``running``. The service's forge duty heals as ``baton serve``'s does."""
    register_fake()
    env = _forge_env(fake, tmp_path, monkeypatch)
    timings = {"BATON_LEASE_TTL": "2", "BATON_VISIBILITY_TIMEOUT": "6"}
    doomed, _ = workers.start_together(
        [
            ("a", {"concurrency": 3, "env": {**env, **timings, "FAKE_AGENT_DELAY": "30"}}),
            ("b", {"concurrency": 3, "env": {**env, **timings, "FAKE_AGENT_DELAY": "1"}}),
        ]
    )
    executor = CeleryExecutor(client, shared_store)
    loop = ForgeLoop(client, shared_store, load_forges(client.home, environ=env), executor.submit)
    issues = [fake.open_issue(REPO, "alice", f"Task {n}", f"Notes {n}.") for n in range(10)]
    for n, number in enumerate(issues):
        assert dispatch.handle(loop, comment(number, n, "@baton write the notes")).status == "accepted"

    def in_doomed() -> bool:
        running = shared_store.list_runs(limit=50, outcome=Outcome.RUNNING)
        return any(r.agent_pid and r.log_path.startswith(str(doomed.home)) for r in running)

    wait_for(in_doomed, timeout=60, what="a turn running on worker a")
    doomed.kill()

    def settled() -> bool:
        heal(loop)  # the forge duty of the service beside the workers
        jobs = shared_store.list_jobs(limit=50)
        return (
            all(j.status == JobStatus.DONE for j in jobs)
            and not forge_store(shared_store).unpublished_turns()
        )

    wait_for(settled, timeout=240, interval=1.0, what="every turn ended and published")
    executor.stop()
    loop.close()
    jobs = shared_store.list_jobs(limit=50)
    assert sorted(j.outcome or "" for j in jobs) == ["succeeded"] * 10, [(j.id, j.error) for j in jobs]
    assert any(j.reruns for j in jobs), "worker a's turns ran again"
    for number in issues:
        said = statuses(fake, number)
        assert len(said) == 1 and "**succeeded**" in said[0], (number, said)
    heads = sorted(p.pr.head_ref for p in fake.pulls(REPO) if p.pr is not None)
    assert heads == sorted(f"baton/fake/issue-{n}" for n in issues)
    wait_for(lambda: not shared_store.list_runs(limit=100, outcome=Outcome.RUNNING), timeout=30)


def _forge_env(fake: FakeForge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The forge tables (a file a worker reads through BATON_FORGE_CONFIG) and the token, for workers."""
    forges = tmp_path / "forges.toml"
    forges.write_text(
        f"""
[forge.github]
kind = "github"
api_url = "{fake.api_url}"
web_url = "{fake.web_url}"
token_env = "BATON_GIT_TOKEN"
user = "baton-bot"
mention = "@baton"

[repo."{REPO}"]
agent = "fake"
clone_url = "{fake.clone_url(REPO)}"
"""
    )
    token = fake.token("baton-bot")
    monkeypatch.setenv("BATON_GIT_TOKEN", token)
    return {"BATON_FORGE_CONFIG": str(forges), "BATON_GIT_TOKEN": token, "FAKE_AGENT_WRITE": "notes.md"}
