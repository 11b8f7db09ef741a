"""The forge loop under hostile input and failing forges, with a real service, the fake GitHub and the
fake agent (fast): a forged signature, 200 concurrent deliveries of one comment, bots replying to each
other, an unknown repository, a forge answering 500s, deliveries the service never received (the
reconcile finds them), and a push the forge refuses (the work is kept, the forge's words reported)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from baton.forge.data.tables import delivery_store, forge_store
from baton.forge.reading.webhook import signature
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_forge_hooks import post
from tests.conftest import git
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    SECRET,
    binding_of,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    settled,
    statuses,
)
from tests.service_fixtures import Service


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> str:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    return "fake"


@pytest.fixture
def model() -> Iterator[None]:
    yield None  # the fake agent needs no model


def test_a_forged_signature_is_refused_and_nothing_happens(fake: FakeForge, forge_service: Service) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.deliver_to, url = None, fake.deliver_to
    fake.comment(REPO, issue, "alice", "@baton go")
    fake.deliver_to = url
    assert fake.deliver_forged(fake.last_delivery("issue_comment")) == 401
    assert [
        d for d in delivery_store(forge_service.store).list_deliveries(limit=10) if d.event == "issue_comment"
    ] == []
    assert forge_store(forge_service.store).get_binding("github", REPO, issue) is None


def test_two_hundred_concurrent_deliveries_of_one_comment_make_one_turn(
    fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    url = f"{forge_service.url}/webhooks/github"
    fake.deliver_to = None
    fake.comment(REPO, issue, "alice", "@baton go")
    fake.deliver_to = url
    delivery = fake.last_delivery("issue_comment")
    copies = [dataclasses.replace(delivery, id=str(uuid.uuid4()), statuses=[]) for _ in range(200)]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda d=d: statuses.append(post(url, d, SECRET))) for d in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(202) == 200
    settled(forge_service, fake, 1)
    deliveries = [
        d
        for d in delivery_store(forge_service.store).list_deliveries(limit=300)
        if d.event == "issue_comment"
    ]
    outcomes = [o["status"] for d in deliveries for o in d.result["forge"]]
    assert outcomes.count("accepted") + outcomes.count("coalesced") == 1
    assert outcomes.count("duplicate") == 199


def test_bots_replying_to_each_other_trigger_nothing(fake: FakeForge, forge_service: Service) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    for n in range(5):
        bot = "ping-bot[bot]" if n % 2 else "pong-bot[bot]"
        fake.comment(REPO, issue, bot, f"@baton reply to the other bot ({n})")
    settled(forge_service, fake, 0)
    refused = [
        a["detail"]["reason"] for a in forge_service.store.list_audit(20) if a["action"] == "forge.refused"
    ]
    assert len(refused) == 5 and all("bot" in r for r in refused)


def test_an_unknown_repository_is_ignored(fake: FakeForge, forge_service: Service) -> None:
    fake.create_repo("acme/other")
    fake.set_permission("acme/other", "alice", "admin")
    issue = fake.open_issue("acme/other", "alice", "Task", "")
    fake.comment("acme/other", issue, "alice", "@baton go")
    settled(forge_service, fake, 0)
    [delivery] = [
        d for d in delivery_store(forge_service.store).list_deliveries(limit=10) if d.event == "issue_comment"
    ]
    [outcome] = delivery.result["forge"]
    assert outcome["status"] == "ignored" and "not a configured repository" in outcome["reason"]


def test_a_forge_answering_500s_is_retried_and_the_event_is_not_lost(
    fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.fail_next(3, status=502)
    fake.comment(REPO, issue, "alice", "@baton go")
    settled(forge_service, fake, 1)
    assert binding_of(forge_service, issue)["thread"] == f"issue-{issue}"


def test_the_reconcile_finds_what_webhooks_never_delivered(fake: FakeForge, forge_service: Service) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.deliver_to, url = None, fake.deliver_to  # the service was down
    fake.comment(REPO, issue, "alice", "@baton go")
    with forge_service.client("run") as http:
        report = http.post("/v1/forge/reconcile").json()
    assert report["outcomes"] == {"accepted": 1}, report
    settled(forge_service, fake, 1)
    fake.comment(REPO, issue, "alice", "and then this")
    with forge_service.client("run") as http:
        report = http.post("/v1/forge/reconcile").json()
    assert report["outcomes"].get("accepted") == 1, report  # the first comment again is a duplicate
    settled(forge_service, fake, 2)
    # the same events delivered late are duplicates, and one more reconcile finds nothing new
    fake.deliver_to = url
    for delivery in [d for d in fake.deliveries if d.event == "issue_comment"]:
        assert fake.redeliver(delivery) == 202
    with forge_service.client("run") as http:
        assert http.post("/v1/forge/reconcile").json()["outcomes"].get("accepted") is None
    settled(forge_service, fake, 2)


def test_a_refused_push_is_reported_in_the_forges_words_and_the_work_is_kept(
    fake: FakeForge, forge_service: Service
) -> None:
    fake.protect(REPO, "baton/fake/issue-1")
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.comment(REPO, issue, "alice", "@baton go")
    settled(forge_service, fake, 1)
    [turn] = forge_store(forge_service.store).forge_turns("github", REPO, issue)
    assert "GH006" in turn["publish"]["git"] and "a protected branch" in turn["publish"]["refused"]
    [status] = statuses(fake, issue)
    said, _, folded = status.partition("<details>")  # baton's words, then git's (the forge's) below
    assert "the push was refused: the forge refused the push to `baton/fake/issue-1`" in said, status
    assert "GH006" in folded
    assert "baton/fake/issue-1" not in fake.branches(REPO) and fake.pulls(REPO) == []
    binding = binding_of(forge_service, issue)
    session = forge_service.store.get_session("fake", str(binding["repo_slug"]), f"issue-{issue}")
    assert session is not None
    assert "turn 1" in git(__import__("pathlib").Path(session.worktree), "show", "HEAD:notes.md")


def test_webhooks_and_the_api_refuse_without_credentials(fake: FakeForge, forge_service: Service) -> None:
    body = b'{"action": "created"}'
    headers = {"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "x1"}
    assert (
        httpx.post(f"{forge_service.url}/webhooks/github", content=body, headers=headers).status_code == 401
    )
    signed = {**headers, "X-Hub-Signature-256": "sha256=" + signature(SECRET, body)}
    assert httpx.post(f"{forge_service.url}/webhooks/github", content=body, headers=signed).status_code == 400
    assert httpx.get(f"{forge_service.url}/v1/forge/threads").status_code == 401
    with forge_service.client("read") as http:
        assert http.post("/v1/forge/reconcile").status_code == 403
        assert http.get("/v1/forge/threads").json() == []


def test_a_review_of_ten_thousand_comments_is_one_bounded_turn(
    fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.comment(REPO, issue, "alice", "@baton go")
    settled(forge_service, fake, 1)
    [pr] = fake.pulls(REPO)
    comments = [("notes.md", 1, f"nit {n}: " + "x" * 200) for n in range(10_000)]
    fake.review(REPO, pr.number, "alice", "A long review.", comments, deliver_comments=False)
    settled(forge_service, fake, 2)
    prompt = forge_service.store.list_jobs(limit=1)[0].request["prompt"]
    assert "nit 0:" in prompt and "nit 9999:" not in prompt  # bounded, and it says so
    assert len(prompt) < 1_100_000 and "left out" in prompt


def test_a_hundred_megabyte_ci_log_reaches_the_turn_as_a_bounded_tail(
    fake: FakeForge, forge_service: Service, tmp_path: Path
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.comment(REPO, issue, "alice", "@baton go")
    settled(forge_service, fake, 1)
    [pr] = fake.pulls(REPO)
    log = tmp_path / "ci.log"
    with log.open("wb") as out:
        line = b"2026-11-25T06:00:00.0000000Z noise " + b"y" * 90 + b"\n"
        for _ in range(100 * 1024 * 1024 // len(line)):
            out.write(line)
        out.write(b"2026-11-25T06:00:01.0000000Z E   AssertionError: the last words\n")
    fake.add_check_run(REPO, fake.repo(REPO).pr_head(pr), "test", "failure", log=log)
    settled(forge_service, fake, 2)
    prompt = forge_service.store.list_jobs(limit=1)[0].request["prompt"]
    assert "AssertionError: the last words" in prompt and len(prompt) < 200_000


def test_a_pr_from_a_fork_is_read_in_the_fork_and_nothing_is_pushed(
    fake: FakeForge, forge_service: Service
) -> None:
    fake.create_fork(REPO, "mallory")
    fake.commit("mallory/api", "feature", {"evil.py": "import os\n"}, "a contribution")
    before = dict(fake.branches(REPO)), dict(fake.branches("mallory/api"))
    pr = fake.open_pr(REPO, "mallory", "mallory:feature", title="A contribution")
    fake.comment(REPO, pr, "alice", "@baton please review this")
    settled(forge_service, fake, 1)
    binding = binding_of(forge_service, pr)
    assert binding["access"] == "read" and binding["repo_url"] == fake.clone_url("mallory/api")
    job = forge_service.store.list_jobs(limit=1)[0]
    # the agent tried to write (FAKE_AGENT_WRITE): at read, the walls refused it
    assert job.request["access"] == "read" and job.outcome == "failed"
    assert "Permission denied" in str(job.error)
    session = forge_service.store.get_session("fake", str(binding["repo_slug"]), f"pr-{pr}")
    assert session is not None and (Path(session.worktree) / "evil.py").is_file()  # the fork's code
    assert (dict(fake.branches(REPO)), dict(fake.branches("mallory/api"))) == before  # nothing pushed
    [status] = statuses(fake, pr)
    assert "read-only thread pushes nothing" in status


def test_the_bind_api_checks_the_agent_the_issue_and_a_rebind(
    fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    with forge_service.client("run") as http:
        body = {"forge": "github", "repo": REPO, "number": issue}
        nope = http.post("/v1/forge/threads", json={**body, "agent": "nope"})
        assert nope.status_code == 422 and "unknown agent 'nope'" in nope.json()["detail"]
        missing = http.post("/v1/forge/threads", json={**body, "number": 999})
        assert missing.status_code == 404 and "#999" in missing.json()["detail"]
        assert http.post("/v1/forge/threads", json=body).status_code == 201
        assert http.post("/v1/forge/threads", json=body).status_code == 201  # as bound: the binding
        other = http.post("/v1/forge/threads", json={**body, "agent": "claude"})
        assert other.status_code == 409 and "already bound" in other.json()["detail"]
        assert [b["agent"] for b in http.get("/v1/forge/threads").json()] == ["fake"]


def test_a_burst_of_issues_audits_one_decision_each_and_no_refusal_of_batons_own(
    fake: FakeForge, forge_service: Service
) -> None:
    issues = [fake.open_issue(REPO, "alice", f"Task {n}", "") for n in range(8)]
    for issue in issues:
        fake.comment(REPO, issue, "alice", "@baton go")
    settled(forge_service, fake, len(issues))
    # every thread's status comment (posted, then its PR's opening) came back as deliveries
    assert len([d for d in fake.deliveries if d.event == "issue_comment"]) >= 2 * len(issues)
    rows = forge_service.store.list_audit(500)
    accepted = [a for a in rows if a["action"] == "forge.accepted"]
    assert sorted(a["detail"]["identity"] for a in accepted) == sorted(
        {a["detail"]["identity"] for a in accepted}
    )
    assert len(accepted) == len(issues)
    assert [a for a in rows if a["action"] == "forge.refused"] == []
    assert forge_store(forge_service.store).forge_turn_counts()["refused"] == 0  # baton_forge_refused_total
