"""Forge turns as a GitHub App on the fleet: a REAL ``baton worker`` (Celery over a private redis-server,
its own process and BATON_HOME) runs the fake agent and publishes the turns itself, cloning and pushing
with installation tokens its own process mints from the configuration — no token in any environment —
while the fake GitHub's tokens live three seconds and a turn takes longer than that: the first turn is
held by a gate (``.gate`` in its worktree, which the test writes) until the token its clone used has
expired."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.fleet.celery import CeleryExecutor
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.github import app as github_app
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.models import JobStatus
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Workers,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import HELD, wait_for
from tests.forge.background.test_forge_celery import comment
from tests.forge_fixtures import REPO, SECRET

pytestmark = pytest.mark.slow
BOT = "baton[bot]"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeForge]:
    forge = FakeForge(tmp_path / "forge", secret=SECRET).start()
    forge.create_repo(REPO)
    forge.make_app("baton", token_lifetime=3)
    forge.install_app([REPO])
    forge.set_permission(REPO, "alice", "write")
    yield forge
    forge.stop()
    github_app.forget_apps()
    assert forge.violations == []


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_worker_process_mints_its_own_tokens_and_publishes(
    client: Settings,
    shared_store: Store,
    workers: Workers,
    fake: FakeForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register_fake()
    assert fake.app is not None
    key = tmp_path / "app.pem"
    key.write_bytes(fake.private_key_pem())
    forges = tmp_path / "forges.toml"
    forges.write_text(
        f"""
[forge.github]
kind = "github"
api_url = "{fake.api_url}"
web_url = "{fake.web_url}"
app_id = {fake.app.id}
private_key_file = "{key}"

[repo."{REPO}"]
agent = "fake"
clone_url = "{fake.clone_url(REPO)}"
"""
    )
    monkeypatch.delenv("BATON_GIT_TOKEN", raising=False)
    env = {"BATON_FORGE_CONFIG": str(forges), "FAKE_AGENT_WRITE": "notes.md"}
    worker = workers.start("w", env={**env, "BATON_GIT_TOKEN": "", "FAKE_AGENT_RUN": HELD})
    executor = CeleryExecutor(client, shared_store)
    loop = ForgeLoop(client, shared_store, load_forges(client.home, environ=env), executor.submit)
    issue = fake.open_issue(REPO, "alice", "Notes", "Write notes.")
    assert dispatch.handle(loop, comment(issue, 1, "@baton write the notes")).status == "accepted"
    wait_for(lambda: any(j.status == JobStatus.RUNNING for j in shared_store.list_jobs()), timeout=60)
    assert dispatch.handle(loop, comment(issue, 2, "and more")).status == "coalesced"
    # the turn goes on past the expiry of the token minted for its clone (the first), then ends
    first_expiry = min(expires for _, expires in fake.app.tokens.values())
    wait_for(lambda: fake.clock() > first_expiry, timeout=30, what="the first token expired")
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
    assert [(j.outcome, j.error) for j in shared_store.list_jobs(limit=10)] == [("succeeded", None)] * 2
    notes = fake.repo(REPO).git("show", f"baton/fake/issue-{issue}:notes.md")
    assert "turn 1" in notes and "turn 2" in notes
    assert {p.login for p in fake.pushes if p.branch == f"baton/fake/issue-{issue}"} == {BOT}
    [pr] = fake.pulls(REPO)
    assert pr.author == BOT
    assert [r for r in fake.requests if r.status == 401] == []
