"""The fake forge's Gitea dialect (tests.support.fake_gitea) with baton's GiteaClient against it: the
same state as the fake GitHub, served at /api/v1 in Gitea's shapes (every request and answer checked
against Gitea's description: the fixture fails on any violation), git with the token, and Gitea's signed
webhooks, which baton's own readers verify and read."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from baton.forge.data.model import Actor, ForgeError, ForgeKind
from baton.forge.data.records import FeedbackKind
from baton.forge.kinds.gitea.client import GiteaClient
from baton.forge.kinds.gitea.facts import HOOK as GITEA
from baton.forge.reading.events import read_event
from baton.forge.reading.webhook import claimed_signatures, verified
from baton.testing._http import BackgroundServer, QuietHandler
from baton.testing.fake_forge import serve_quickly
from tests.support.fake_gitea import FakeGitea

SECRET = "gitea-hook-secret"
REPO = "acme/api"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver(BackgroundServer):
    """A webhook receiver that keeps every delivery."""

    port: int = 0
    got: list[Received] = field(default_factory=list)

    def handler_class(self) -> type[QuietHandler]:
        class Handler(QuietHandler):
            owner: Receiver

            def do_POST(self) -> None:
                body = self._body()
                self.owner.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self._send(200, b"{}", "application/json")

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/webhooks/gitea"

    def start(self) -> Receiver:
        serve_quickly(self)
        return self


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def fake(tmp_path: Path, receiver: Receiver) -> Iterator[FakeGitea]:
    forge = FakeGitea(tmp_path / "gitea", secret=SECRET, deliver_to=receiver.url)
    with forge:
        forge.create_repo(REPO, {"README.md": "# api\n", "src/app.py": "print('hi')\n"})
        forge.add_user("alice")
        forge.set_permission(REPO, "alice", "write")
        forge.add_user("baton")
        forge.set_permission(REPO, "baton", "admin")
        forge.add_user("mallory")
        yield forge
    assert forge.violations == [], forge.violations


def client(fake: FakeGitea, login: str = "baton") -> GiteaClient:
    return GiteaClient(fake.api_url, fake.token(login), retries=2, sleep=lambda s: None)


def test_permissions_in_giteas_access_modes(fake: FakeGitea) -> None:
    fake.set_permission(REPO, "mallory", "triage")
    with client(fake) as gitea:
        assert gitea.permission(REPO, "acme") == "admin"  # the owner: Gitea says owner
        assert gitea.permission(REPO, "baton") == "admin"
        assert gitea.permission(REPO, "alice") == "write"
        assert gitea.permission(REPO, "mallory") == "read"
        assert gitea.permission(REPO, "nobody") == "none"  # no such user: 404
    with client(fake, "alice") as gitea, pytest.raises(ForgeError) as refused:
        gitea.permission(REPO, "mallory")  # only a repository admin may ask about others
    assert refused.value.status == 403


def test_an_issue_to_a_draft_pr_with_its_comments_and_the_status_comment(
    fake: FakeGitea, receiver: Receiver
) -> None:
    number = fake.open_issue(REPO, "alice", "Fix the parser", "It breaks on empty input.", labels=["bug"])
    fake.comment(REPO, number, "alice", "@baton please fix")
    fake.commit(REPO, "baton/claude/issue-1", {"src/app.py": "print('fixed')\n"}, "fix")
    with client(fake) as gitea:
        issue = gitea.thread(REPO, number)
        assert (issue.is_pr, issue.title, issue.labels, issue.author) == (
            False,
            "Fix the parser",
            ("bug",),
            Actor("alice"),
        )
        assert [c.body for c in gitea.comments(REPO, number)] == ["@baton please fix"]
        assert gitea.default_branch(REPO) == "main"
        pr, url = gitea.open_pr(
            REPO, "baton/claude/issue-1", "main", "Fix the parser", f"Closes #{number}", True
        )
        assert url == f"{fake.web_url}/{REPO}/pulls/{pr}"
        # a second open_pr for the same head: Gitea's 409, answered with the open one
        assert gitea.open_pr(REPO, "baton/claude/issue-1", "main", "Fix the parser", "", True) == (pr, url)
        thread = gitea.thread(REPO, pr)
        assert thread.is_pr and thread.title == "WIP: Fix the parser"
        assert thread.head_sha == fake.branches(REPO)["baton/claude/issue-1"] and thread.base_ref == "main"
        assert thread.mergeable is None and not thread.from_fork  # Gitea's false for a WIP PR: unknown
        status = gitea.post_comment(REPO, number, "baton is on it")
        gitea.edit_comment(REPO, status, "baton finished: 1 turn")
        assert [c.body for c in gitea.comments(REPO, number)][-1] == "baton finished: 1 turn"
        since = fake.issue(REPO, number).updated_at
        assert {t.number for t in gitea.updated_since(REPO, since)} >= {number}
    fake.settle()
    events = [(r.headers["x-gitea-event"], r.headers["x-gitea-event-type"]) for r in receiver.got]
    assert events[:3] == [
        ("issues", "issues"),
        ("issue_comment", "issue_comment"),
        ("pull_request", "pull_request"),
    ]


def test_many_issues_come_in_pages(fake: FakeGitea) -> None:
    for i in range(120):
        fake.open_issue(REPO, "alice", f"issue {i}")
    with client(fake) as gitea:
        found = gitea.updated_since(REPO, 0)
    assert sorted(t.number for t in found) == list(range(1, 121))
    pages = [r for r in fake.requests if r.path == f"/repos/{REPO}/issues"]
    assert len(pages) == 3


def _pr(fake: FakeGitea) -> tuple[int, str]:
    sha = fake.commit(REPO, "feature", {"src/app.py": "print('x')\n"}, "change")
    return fake.open_pr(REPO, "alice", "feature", "main", "Change the app"), sha


def test_a_review_with_inline_comments(fake: FakeGitea, receiver: Receiver) -> None:
    pr, sha = _pr(fake)
    comments = [("src/app.py", 1, "use a constant"), ("README.md", 1, "say why")]
    fake.review(REPO, pr, "alice", "Two things.", comments, state="CHANGES_REQUESTED")
    fake.review(REPO, pr, "alice", "LGTM", state="APPROVED")
    with client(fake) as gitea:
        reviews = gitea.reviews(REPO, pr)
    assert [(r.state, r.body, r.commit) for r in reviews] == [
        ("CHANGES_REQUESTED", "Two things.", sha),
        ("APPROVED", "LGTM", sha),
    ]
    assert [(c.path, c.line, c.body) for c in reviews[0].comments] == [
        ("src/app.py", 1, "use a constant"),
        ("README.md", 1, "say why"),
    ]
    fake.settle()
    hooks = [r for r in receiver.got if r.headers["x-gitea-event"].startswith("pull_request_")]
    # one delivery per review, none per inline comment
    assert [r.headers["x-gitea-event"] for r in hooks] == ["pull_request_rejected", "pull_request_approved"]
    events = read_event(ForgeKind.GITEA, "gitea", hooks[0].headers["x-gitea-event"], _json(hooks[0].body))
    assert isinstance(events, list) and events[0].kind is FeedbackKind.REVIEW
    assert events[0].body == "Two things." and events[0].head_sha == sha


def test_ci_failures_from_gitea_actions_and_an_external_status(fake: FakeGitea) -> None:
    _number, sha = _pr(fake)
    log = "".join(f"2026-05-01T12:00:00.0000000Z step {i}\n" for i in range(5000)) + "FAILED test_app\n"
    fake.add_check_run(REPO, sha, "CI / test", "failure", log=log, title="Run pytest")
    fake.add_check_run(REPO, sha, "CI / lint", "success")
    fake.set_status(REPO, sha, "coverage", "error", "coverage fell", "https://ci.example/9")
    with client(fake) as gitea:
        changed = gitea.checks_changed(REPO, sha, None)
        assert changed.changed and gitea.checks_changed(REPO, sha, changed.etag).changed is False
        failed = gitea.failed_checks(REPO, sha, tail_bytes=300)
        fake.set_status(REPO, sha, "coverage", "success")
        assert gitea.checks_changed(REPO, sha, changed.etag).changed
    by_name = {f.name: f for f in failed}
    assert set(by_name) == {"CI / test (pull_request)", "coverage"}
    test = by_name["CI / test (pull_request)"]
    assert test.conclusion == "failure" and test.steps == ("Run pytest",) and test.job_id is not None
    assert test.log_tail.endswith("FAILED test_app\n") and len(test.log_tail) <= 300
    assert "2026-05-01T" not in test.log_tail  # Gitea's time stamps are cut
    assert by_name["coverage"].annotations == ("coverage fell",) and by_name["coverage"].log_tail == ""


def test_a_run_waiting_for_approval_is_action_required(fake: FakeGitea) -> None:
    _pr_number, sha = _pr(fake)
    fake.add_check_run(REPO, sha, "CI / test", "action_required", status="completed")
    with client(fake) as gitea:
        failed = gitea.failed_checks(REPO, sha)
    assert [(f.name, f.conclusion) for f in failed] == [("CI / test", "action_required")]


def test_deliveries_are_signed_as_gitea_signs_them(fake: FakeGitea, receiver: Receiver) -> None:
    number = fake.open_issue(REPO, "alice", "Hello")
    fake.comment(REPO, number, "alice", "@baton hi")
    fake.settle()
    got = receiver.got[-1]
    assert got.headers["x-gitea-delivery"] == got.headers["x-github-delivery"]
    assert verified(SECRET, got.body, claimed_signatures(GITEA, got.headers))
    assert not verified("wrong", got.body, claimed_signatures(GITEA, got.headers))
    events = read_event(ForgeKind.GITEA, "gitea", got.headers["x-gitea-event"], _json(got.body))
    assert isinstance(events, list) and events[0].identity.startswith("comment:")
    fake.deliver_forged()
    forged = receiver.got[-1]
    assert forged.body == got.body and not verified(
        SECRET, forged.body, claimed_signatures(GITEA, forged.headers)
    )


def test_git_over_http_with_the_token_and_a_push_moves_the_pr(fake: FakeGitea, tmp_path: Path) -> None:
    pr, old = _pr(fake)
    url = fake.clone_url(REPO).replace("http://", f"http://baton:{fake.token('baton')}@")
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=baton", "-c", "user.email=baton@example.com"]
    subprocess.run([*git, "clone", "-q", "-b", "feature", url, str(work)], check=True)
    (work / "NEW.md").write_text("new\n")
    subprocess.run([*git, "-C", str(work), "add", "NEW.md"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "more"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "-q", "origin", "feature"], check=True)
    with client(fake) as gitea:
        assert gitea.thread(REPO, pr).head_sha not in (None, old)


def test_the_fake_refuses_what_gitea_would_and_records_violations(fake: FakeGitea) -> None:
    api = httpx.Client(base_url=fake.api_url, headers={"Authorization": f"token {fake.token('baton')}"})
    with api:
        assert api.get(f"/repos/{REPO}/issues/1/comments", params={"page": 1}).status_code == 400
        assert api.get(f"/repos/{REPO}/check-runs").status_code == 404
        assert httpx.get(f"{fake.api_url}/repos/{REPO}").status_code == 401
    assert [v.kind for v in fake.violations] == ["request"]
    fake.violations.clear()


def test_an_answer_not_of_giteas_shape_is_a_violation(
    fake: FakeGitea, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = fake.gitea.repository
    monkeypatch.setattr(fake.gitea, "repository", lambda repo: {**shape(repo), "stargazers_count": 0})
    with client(fake) as gitea:
        assert gitea.default_branch(REPO) == "main"
    assert [(v.kind, v.what) for v in fake.violations] == [("response", f"GET /repos/{REPO} → 200")]
    assert "stargazers_count" in fake.violations[0].errors[0]
    fake.violations.clear()


def test_faults_are_retried_by_the_client(fake: FakeGitea) -> None:
    number = fake.open_issue(REPO, "alice", "Flaky")
    fake.fail_next(2, 502)
    with client(fake) as gitea:
        assert gitea.thread(REPO, number).number == number
    assert [r.status for r in fake.requests[-3:]] == [502, 502, 200]


def _json(body: bytes) -> dict[str, object]:
    import json

    data = json.loads(body)
    assert isinstance(data, dict)
    return data
