"""Forge turns run by the fleet: the dispatcher submits through Celery (a private redis-server), a REAL
``baton worker`` (its own BATON_HOME, the forge tables in the file ``BATON_FORGE_CONFIG`` names) runs
the fake agent and publishes the turn itself — commit, push with the forge's token, the PR, the status
comment — and starts the coalesced next turn through the queue. The fake GitHub is the forge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.fleet.celery import CeleryExecutor
from baton.forge import dispatch
from baton.forge.config import load_forges
from baton.forge.loop import ForgeLoop
from baton.forge.model import Actor, ForgeEvent, Trigger
from baton.forge.records import FeedbackKind
from baton.forge.tables import forge_store
from baton.models import JobStatus
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
from tests.conftest import wait_for
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
    env = {"BATON_FORGE_CONFIG": str(forges), "BATON_GIT_TOKEN": token, "FAKE_AGENT_WRITE": "notes.md"}
    workers.start("w", env={**env, "FAKE_AGENT_DELAY": "1"})
    executor = CeleryExecutor(client, shared_store)
    loop = ForgeLoop(client, shared_store, load_forges(client.home, environ=env), executor.submit)
    issue = fake.open_issue(REPO, "alice", "Notes", "Write notes.")

    assert dispatch.handle(loop, comment(issue, 1, "@baton write the notes")).status == "accepted"
    wait_for(lambda: any(j.status == JobStatus.RUNNING for j in shared_store.list_jobs()), timeout=60)
    # two comments while the turn runs on the worker: they wait, and the worker starts them as one turn
    assert [dispatch.handle(loop, comment(issue, n, f"also {n}")).status for n in (2, 3)] == ["coalesced"] * 2

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
