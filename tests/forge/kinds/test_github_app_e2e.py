"""baton as a GitHub App, end to end: the real Claude Code CLI against the mock model, a real ``baton
serve``, and the fake GitHub as an App whose installation tokens live three seconds — no token in the
environment at all (not even ``BATON_GIT_TOKEN``): the API, the clone, the fetches and the pushes all
take installation tokens minted and renewed by baton while the loop runs.

A mention makes the draft PR (pushed and opened by the App's bot, ``baton[bot]``, whose own comments
come back as webhooks and trigger nothing); tokens expire; a review comment is the second turn of the
same conversation, which pushes again. No turn fails, no delivery fails, nothing restarts."""

from __future__ import annotations

import time

import pytest

from baton.forge.data.records import BindingStatus, DeliveryStatus
from baton.forge.data.tables import delivery_store
from baton.forge.turn.threads import STATUS_HEAD
from baton.testing.fake_forge import FakeForge
from baton.testing.tools import tool_marker
from tests.forge_fixtures import REPO, agent_fixture, binding_of, model_fixture, settled  # noqa: F401
from tests.github_app_fixtures import app_fake_fixture, app_service_fixture  # noqa: F401
from tests.service_fixtures import Service

pytestmark = pytest.mark.slow
BOT = "baton[bot]"


@pytest.fixture(name="token_lifetime")
def short_lived_tokens() -> float:
    return 3.0


def test_claude_runs_the_loop_as_an_app_while_its_tokens_expire_every_three_seconds(
    model: object, fake: FakeForge, app_service: Service
) -> None:
    service = app_service
    write = tool_marker("Write", file_path="greeting.txt", content="hello from baton\n")
    issue = fake.open_issue(REPO, "alice", "Add a greeting", "We need a greeting file.")
    fake.comment(REPO, issue, "alice", f"@baton please add it. {write}")
    settled(service, fake, 1)
    binding = binding_of(service, issue)
    [pr] = fake.pulls(REPO)
    assert pr.pr is not None and pr.pr.draft and pr.author == BOT and f"Closes #{issue}" in pr.body
    branch = "baton/claude/issue-1"
    assert fake.repo(REPO).git("show", f"{branch}:greeting.txt") == "hello from baton"
    [status] = [c for c in fake.comments(REPO, issue, login=BOT) if c.body.startswith(STATUS_HEAD)]
    assert "succeeded" in status.body

    time.sleep(4)  # every token minted so far has expired
    hi = tool_marker("Write", file_path="greeting.txt", content="hi from baton\n")
    fake.review(REPO, pr.number, "alice", "One nit.", [("greeting.txt", 1, f"say hi {hi}")])
    settled(service, fake, 2)

    assert fake.repo(REPO).git("show", f"{branch}:greeting.txt") == "hi from baton"  # pushed again
    assert {p.login for p in fake.pushes if p.branch == branch} == {BOT}
    runs = service.store.list_runs("claude", str(binding["repo_slug"]), f"issue-{issue}")
    assert [r.outcome.value for r in runs] == ["succeeded", "succeeded"]
    [session] = {r.session_id_out for r in runs}  # one conversation: the second turn resumed the first
    assert sorted(str(r.session_id_in) for r in runs) == sorted(["None", str(session)])
    jobs = service.store.list_jobs(limit=10)
    assert [(j.outcome, j.error) for j in jobs] == [("succeeded", None)] * 2
    failed = delivery_store(service.store).list_deliveries_by_status(DeliveryStatus.FAILED)
    assert failed == []
    assert binding_of(service, issue)["status"] == BindingStatus.ACTIVE.value
    # baton's own comments came back as webhooks: no turn, no refusal (its login read from GitHub)
    refused = [a for a in service.store.list_audit(50) if a["action"] == "forge.refused"]
    assert not any(BOT in a["detail"]["reason"] for a in refused), refused
    # the tokens were renewed while the loop ran, ahead of their expiry: GitHub never refused one
    assert fake.app is not None and fake.app.minted >= 3
    assert [r for r in fake.requests if r.status == 401] == []
    assert fake.app.jwts_refused == 0
    # git over HTTP (the clone, the fetches, the pushes) authenticated with them alone: as the bot
    used = {(r.username, r.authorized) for r in fake.git.requests if r.username}
    assert used == {(BOT, True)}, used
