"""The fake GitHub (baton.testing.fake_forge): its endpoints as GitHub's description has them (every
response of every test here is checked, and the fixture fails on any violation), its git with token
auth, ETags, the log redirect and its ranges, and webhook deliveries that verify and conform."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from baton.forge.kinds.github.facts import HOOK as GITHUB
from baton.forge.reading.webhook import claimed_signatures, verified
from baton.testing._http import BackgroundServer, QuietHandler
from baton.testing.fake_forge import FakeForge, main, serve_quickly
from baton.testing.fake_forge_openapi import rest_description, webhook_description
from tests.conftest import wait_for

SECRET = "hook-secret"
REPO = "acme/api"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver(BackgroundServer):
    """A webhook receiver that keeps every delivery and answers ``status``."""

    port: int = 0
    status: int = 200
    got: list[Received] = field(default_factory=list)
    on_delivery: Callable[[], object] | None = None  # what the receiver does before it answers

    def handler_class(self) -> type[QuietHandler]:
        class Handler(QuietHandler):
            owner: Receiver

            def do_POST(self) -> None:
                body = self._body()
                self.owner.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if self.owner.on_delivery is not None:
                    self.owner.on_delivery()
                self._send(self.owner.status, b"{}", "application/json")

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        serve_quickly(self)
        return self


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def fake(tmp_path: Path, receiver: Receiver) -> Iterator[FakeForge]:
    forge = FakeForge(tmp_path / "forge", secret=SECRET, deliver_to=receiver.url)
    with forge:
        forge.create_repo(REPO, {"README.md": "# api\n", "src/app.py": "print('hi')\n"})
        forge.add_user("alice")
        forge.set_permission(REPO, "alice", "write")
        forge.add_user("baton[bot]", "Bot")
        forge.set_permission(REPO, "baton[bot]", "write")
        yield forge
    assert forge.violations == [], forge.violations


def api(fake: FakeForge, login: str = "baton[bot]") -> httpx.Client:
    # plain http: verify=False skips loading the CA bundle (60 ms a client)
    return httpx.Client(
        base_url=fake.api_url, headers={"Authorization": f"Bearer {fake.token(login)}"}, verify=False
    )


def _pr_with_feedback(fake: FakeForge) -> tuple[int, int, str, int, int]:
    """An issue, a PR with two commits, a review with two inline comments, a failing check and status."""
    issue = fake.open_issue(REPO, "alice", "Fix the parser", "It breaks on empty input.")
    fake.comment(REPO, issue, "alice", "@baton please fix")
    fake.commit(REPO, "baton/issue-1", {"src/app.py": "print('fixed')\n"}, "fix")
    pr = fake.open_pr(REPO, "baton[bot]", "baton/issue-1", title="Fix the parser", body=f"Fixes #{issue}")
    sha = fake.commit(REPO, "baton/issue-1", {"tests/test_app.py": "def test(): pass\n"}, "test")
    review = fake.review(
        REPO,
        pr,
        "alice",
        "Two things",
        [("src/app.py", 1, "use logging"), ("tests/test_app.py", 1, "assert")],
        "CHANGES_REQUESTED",
    )
    run = fake.add_check_run(
        REPO,
        sha,
        "CI / test",
        "failure",
        log="collecting\nFAILED test_app\n",
        title="1 failed",
        summary="test_app failed",
        annotations=[("tests/test_app.py", 1, "AssertionError")],
    )
    fake.set_status(REPO, sha, "ci/lint", "failure", "lint failed")
    return issue, pr, sha, review, run


def test_every_endpoint_answers_as_githubs_description_says(fake: FakeForge) -> None:
    issue, pr, sha, review, run = _pr_with_feedback(fake)
    with api(fake) as c:
        repo = c.get(f"/repos/{REPO}").json()
        assert (repo["full_name"], repo["default_branch"]) == (REPO, "main")
        assert repo["clone_url"] == fake.clone_url(REPO)
        perm = c.get(f"/repos/{REPO}/collaborators/alice/permission").json()
        assert (perm["permission"], perm["role_name"]) == ("write", "write")
        fake.set_permission(REPO, "alice", "maintain")  # the legacy field says write, role_name the role
        perm = c.get(f"/repos/{REPO}/collaborators/alice/permission").json()
        assert (perm["permission"], perm["role_name"]) == ("write", "maintain")
        assert c.get(f"/repos/{REPO}/collaborators/nobody/permission").status_code == 404
        got = c.get(f"/repos/{REPO}/issues/{issue}").json()
        assert (got["number"], got["title"], got["user"]["login"]) == (issue, "Fix the parser", "alice")
        assert "pull_request" not in got and got["comments"] == 1
        got_pr = c.get(f"/repos/{REPO}/pulls/{pr}").json()
        assert (got_pr["head"]["ref"], got_pr["head"]["sha"], got_pr["base"]["ref"]) == (
            "baton/issue-1",
            sha,
            "main",
        )
        assert got_pr["user"]["type"] == "Bot" and got_pr["user"]["url"].endswith("/users/baton%5Bbot%5D")
        assert (got_pr["mergeable"], got_pr["draft"], got_pr["merged"]) == (True, False, False)
        fake.set_mergeable(REPO, pr, False)
        assert c.get(f"/repos/{REPO}/pulls/{pr}").json()["mergeable_state"] == "dirty"
        comments = c.get(f"/repos/{REPO}/issues/{issue}/comments").json()
        assert [x["body"] for x in comments] == ["@baton please fix"]
        reviews = c.get(f"/repos/{REPO}/pulls/{pr}/reviews").json()
        assert [(r["id"], r["state"], r["commit_id"]) for r in reviews] == [
            (review, "CHANGES_REQUESTED", sha)
        ]
        inline = c.get(f"/repos/{REPO}/pulls/{pr}/reviews/{review}/comments").json()
        assert [(x["path"], x["line"], x["body"]) for x in inline] == [
            ("src/app.py", 1, "use logging"),
            ("tests/test_app.py", 1, "assert"),
        ]
        assert all(x["diff_hunk"].startswith("@@") for x in inline)
        runs = c.get(f"/repos/{REPO}/commits/{sha}/check-runs").json()
        assert runs["total_count"] == 1
        assert (runs["check_runs"][0]["id"], runs["check_runs"][0]["conclusion"]) == (run, "failure")
        assert runs["check_runs"][0]["output"]["annotations_count"] == 1
        notes = c.get(f"/repos/{REPO}/check-runs/{run}/annotations").json()
        assert [(a["path"], a["start_line"], a["message"]) for a in notes] == [
            ("tests/test_app.py", 1, "AssertionError")
        ]
        status = c.get(f"/repos/{REPO}/commits/{sha}/status").json()
        assert (status["state"], status["statuses"][0]["context"]) == ("failure", "ci/lint")
        by_branch = c.get(f"/repos/{REPO}/commits/baton%2Fissue-1/status").json()  # a branch as the ref
        assert (by_branch["sha"], by_branch["total_count"]) == (sha, 1)
        posted = c.post(f"/repos/{REPO}/issues/{pr}/comments", json={"body": "working on it"})
        assert posted.status_code == 201 and posted.json()["user"]["login"] == "baton[bot]"
        edited = c.patch(f"/repos/{REPO}/issues/comments/{posted.json()['id']}", json={"body": "done"})
        assert edited.status_code == 200 and edited.json()["body"] == "done"
        assert [x.body for x in fake.comments(REPO, pr, login="baton[bot]")] == ["done"]
        pulls = c.get(f"/repos/{REPO}/pulls", params={"head": "acme:baton/issue-1"}).json()
        assert [p["number"] for p in pulls] == [pr]
        assert c.get(f"/repos/{REPO}/issues/999").status_code == 404
    assert {(r.method, r.status) for r in fake.requests} >= {("GET", 200), ("POST", 201), ("PATCH", 200)}


def test_create_pr_as_github_does(fake: FakeForge) -> None:
    with api(fake) as c:
        same = c.post(f"/repos/{REPO}/pulls", json={"head": "main", "base": "main", "title": "t"})
        assert same.status_code == 422  # no commits between them
        fake.commit(REPO, "feature", {"a.txt": "a\n"})
        made = c.post(
            f"/repos/{REPO}/pulls", json={"head": "acme:feature", "base": "main", "title": "t", "draft": True}
        )
        assert made.status_code == 201 and made.json()["draft"] is True
        again = c.post(f"/repos/{REPO}/pulls", json={"head": "feature", "base": "main", "title": "t"})
        assert again.status_code == 422 and "already exists" in again.json()["errors"][0]["message"]
    with api(fake, "reader") as c:
        fake.set_permission(REPO, "reader", "read")
        fake.commit(REPO, "other", {"b.txt": "b\n"})
        assert c.post(f"/repos/{REPO}/pulls", json={"head": "other", "base": "main"}).status_code == 403
    assert [p.number for p in fake.pulls(REPO)] == [made.json()["number"]]


def test_the_fake_can_be_driven_over_its_api(fake: FakeForge) -> None:
    """What a person trying the offline tour does with curl: every write sends its delivery."""
    fake.commit(REPO, "feature", {"a.txt": "a\n"})
    with api(fake, "alice") as c:
        issue = c.post(f"/repos/{REPO}/issues", json={"title": "Broken", "body": "fix", "labels": ["bug"]})
        number = issue.json()["number"]
        assert issue.status_code == 201 and issue.json()["labels"][0]["name"] == "bug"
        labels = c.post(f"/repos/{REPO}/issues/{number}/labels", json={"labels": ["baton"]})
        assert [x["name"] for x in labels.json()] == ["bug", "baton"]
        assigned = c.post(f"/repos/{REPO}/issues/{number}/assignees", json={"assignees": ["baton[bot]"]})
        assert assigned.json()["assignees"][0]["login"] == "baton[bot]"
        pr = fake.open_pr(REPO, "baton[bot]", "feature")
        sha = fake.branches(REPO)["feature"]
        review = c.post(
            f"/repos/{REPO}/pulls/{pr}/reviews",
            json={
                "event": "REQUEST_CHANGES",
                "body": "no",
                "comments": [{"path": "a.txt", "line": 1, "body": "b"}],
            },
        )
        assert review.json()["state"] == "CHANGES_REQUESTED"
        status = c.post(f"/repos/{REPO}/statuses/{sha}", json={"state": "failure", "context": "ci/x"})
        assert status.status_code == 201 and status.json()["creator"]["login"] == "alice"
        run = c.post(
            f"/repos/{REPO}/check-runs",
            json={"name": "CI", "head_sha": sha, "status": "completed", "conclusion": "action_required"},
        )
        assert run.status_code == 201 and run.json()["conclusion"] == "action_required"
    fake.settle()
    assert [(d.event, d.action) for d in fake.deliveries][-8:] == [
        ("issues", "labeled"),
        ("issues", "assigned"),
        ("pull_request", "opened"),
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
        ("status", None),
        ("check_run", "completed"),
        ("check_suite", "completed"),
    ]


def test_a_pull_request_from_a_fork(fake: FakeForge) -> None:
    fake.create_fork(REPO, "mallory")
    first = fake.commit("mallory/api", "evil", {"a.txt": "evil\n"}, login="mallory")
    pr = fake.open_pr(REPO, "mallory", "mallory:evil", title="Improve things")
    with api(fake) as c:
        got = c.get(f"/repos/{REPO}/pulls/{pr}").json()
        assert (got["head"]["repo"]["full_name"], got["head"]["repo"]["fork"], got["head"]["sha"]) == (
            "mallory/api",
            True,
            first,
        )
        assert (got["head"]["label"], got["base"]["repo"]["full_name"]) == ("mallory:evil", REPO)
        assert [
            p["number"] for p in c.get(f"/repos/{REPO}/pulls", params={"head": "mallory:evil"}).json()
        ] == [pr]
        assert c.get(f"/repos/{REPO}/pulls", params={"head": "acme:evil"}).json() == []
        moved = fake.commit("mallory/api", "evil", {"b.txt": "more\n"}, login="mallory")
        assert c.get(f"/repos/{REPO}/pulls/{pr}").json()["head"]["sha"] == moved
    sync = fake.last_delivery("pull_request").payload
    assert (sync["action"], sync["before"], sync["after"], sync["repository"]["full_name"]) == (
        "synchronize",
        first,
        moved,
        REPO,
    )
    assert fake.branches(REPO).get("evil") is None  # the base repo only keeps refs/pull/N/head
    fake.add_check_run(REPO, moved, "CI", "action_required")
    assert (
        fake.last_delivery("check_run").payload["check_run"]["pull_requests"] == []
    )  # as GitHub: none from forks


def test_issues_since_sorted_and_paginated(fake: FakeForge) -> None:
    numbers = [fake.open_issue(REPO, "alice", f"issue {i}") for i in range(5)]
    fake.close(REPO, numbers[0], "alice")
    with api(fake) as c:
        first = c.get(f"/repos/{REPO}/issues", params={"state": "all", "sort": "updated", "per_page": 2})
        assert len(first.json()) == 2 and 'rel="next"' in first.headers["Link"]
        pages, url = [], f"{fake.api_url}/repos/{REPO}/issues?state=all&sort=updated&per_page=2"
        while url:
            page = c.get(url)
            pages += page.json()
            url = page.links.get("next", {}).get("url", "")
        assert sorted(i["number"] for i in pages) == numbers
        assert len(c.get(f"/repos/{REPO}/issues").json()) == 4  # open only, by default
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        assert c.get(f"/repos/{REPO}/issues", params={"state": "all", "since": future}).json() == []


def test_a_reviews_comments_page_by_page(fake: FakeForge) -> None:
    fake.commit(REPO, "feature", {"a.txt": "a\n"})
    pr = fake.open_pr(REPO, "baton[bot]", "feature")
    review = fake.review(
        REPO, pr, "alice", "many", [("a.txt", 1, f"c{i}") for i in range(150)], deliver_comments=False
    )
    bodies, url = [], f"{fake.api_url}/repos/{REPO}/pulls/{pr}/reviews/{review}/comments?per_page=100"
    with api(fake) as c:
        while url:
            page = c.get(url)
            bodies += [x["body"] for x in page.json()]
            url = page.links.get("next", {}).get("url", "")
    assert bodies == [f"c{i}" for i in range(150)]
    assert [d.event for d in fake.deliveries][-1] == "pull_request_review"  # the comments' left out


def test_the_validator_can_fail(fake: FakeForge, monkeypatch: pytest.MonkeyPatch) -> None:
    rest = rest_description()
    good = rest.example("issue")
    assert rest.check_response(
        "/repos/{owner}/{repo}/issues/{issue_number}", "GET", 200, json.dumps(good).encode()
    ).ok
    bad = {k: v for k, v in good.items() if k != "number"}
    checked = rest.check_response(
        "/repos/{owner}/{repo}/issues/{issue_number}", "GET", 200, json.dumps(bad).encode()
    )
    assert not checked.ok and "number" in checked.errors[0]
    hooks = webhook_description()
    example = hooks.example("issue_comment", "created")
    del example["comment"]["user"]
    assert not hooks.check("issue_comment", "created", example).ok
    with api(fake) as c:
        answer = c.get(f"/repos/{REPO}/issues", params={"state": "sideways"})
        assert answer.status_code == 400 and "sideways" in answer.json()["message"]
        assert c.post(f"/repos/{REPO}/issues/1/comments", json={"text": "no body"}).status_code == 400
        # a fake whose answer loses a required field: answered all the same, and recorded
        number = fake.open_issue(REPO, "alice", "Broken")
        whole = fake.render.issue
        monkeypatch.setattr(
            fake.render, "issue", lambda *a: {k: v for k, v in whole(*a).items() if k != "user"}
        )
        assert c.get(f"/repos/{REPO}/issues/{number}").status_code == 200
        # and a delivery that loses one
        monkeypatch.setattr(fake.payloads, "issue", lambda *a, **k: {"action": "labeled"})
        fake.label(REPO, number, "alice", "bug")
    assert [v.kind for v in fake.violations] == ["request", "request", "response", "webhook"]
    assert "user" in fake.violations[2].errors[0]
    fake.violations.clear()


def test_token_required(fake: FakeForge) -> None:
    assert httpx.get(f"{fake.api_url}/repos/{REPO}").status_code == 401
    wrong = httpx.get(f"{fake.api_url}/repos/{REPO}", headers={"Authorization": "token nope"})
    assert wrong.status_code == 401
    right = httpx.get(
        f"{fake.api_url}/repos/{REPO}", headers={"Authorization": f"token {fake.token('alice')}"}
    )
    assert right.status_code == 200


def _git(*args: str, cwd: Path | None = None, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    extra = []
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        extra = ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    ident = ["-c", "user.name=baton", "-c", "user.email=baton@example.com"]
    return subprocess.run(["git", *extra, *ident, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_git_clone_and_push_with_the_token(fake: FakeForge, receiver: Receiver, tmp_path: Path) -> None:
    url, token = fake.clone_url(REPO), fake.token("baton[bot]")
    refused = _git("clone", url, str(tmp_path / "anon"))
    assert refused.returncode != 0 and not (tmp_path / "anon").exists()
    assert _git("clone", url, str(tmp_path / "wc"), token=token).returncode == 0
    wc = tmp_path / "wc"
    assert (wc / "src" / "app.py").read_text() == "print('hi')\n"
    (wc / "new.txt").write_text("new\n")
    _git("checkout", "-q", "-b", "baton/issue-7", cwd=wc)
    _git("add", "new.txt", cwd=wc)
    _git("commit", "-qm", "new", cwd=wc)
    assert _git("push", "-q", "origin", "baton/issue-7", cwd=wc, token=token).returncode == 0
    first = fake.branches(REPO)["baton/issue-7"]
    assert (
        fake.pushes[-1].branch == "baton/issue-7" and fake.pushes[-1].login == "baton[bot]"
    )  # the token's user
    pr = fake.open_pr(REPO, "baton[bot]", "baton/issue-7")
    (wc / "new.txt").write_text("newer\n")
    _git("commit", "-qam", "newer", cwd=wc)
    assert _git("push", "-q", "origin", "baton/issue-7", cwd=wc, token=token).returncode == 0
    moved = fake.branches(REPO)["baton/issue-7"]
    with api(fake) as c:
        assert c.get(f"/repos/{REPO}/pulls/{pr}").json()["head"]["sha"] == moved != first
    fake.settle()  # the hook's synchronize goes from the delivery thread
    sync = fake.last_delivery("pull_request").payload
    assert (sync["action"], sync["before"], sync["after"]) == ("synchronize", first, moved)


def test_a_protected_branch_refuses_pushes_in_githubs_words(fake: FakeForge, tmp_path: Path) -> None:
    token = fake.token("baton[bot]")
    fake.protect(REPO, "main")
    fake.protect(REPO, "release", allow_push=True)
    fake.commit(REPO, "release", {"r.txt": "1\n"})
    wc = tmp_path / "wc"
    assert _git("clone", "-q", fake.clone_url(REPO), str(wc), token=token).returncode == 0
    (wc / "x.txt").write_text("x\n")
    _git("add", "x.txt", cwd=wc)
    _git("commit", "-qm", "x", cwd=wc)
    before = fake.branches(REPO)
    refused = _git("push", "origin", "HEAD:main", cwd=wc, token=token)
    assert refused.returncode != 0 and "GH006: Protected branch update failed" in refused.stderr
    forced = _git("push", "-f", "origin", "HEAD:release", cwd=wc, token=token)  # not a fast-forward
    assert forced.returncode != 0 and "Cannot force-push" in forced.stderr
    assert fake.branches(REPO) == before
    _git("fetch", "-q", "origin", "release", cwd=wc, token=token)
    _git("merge", "-q", "--no-edit", "FETCH_HEAD", cwd=wc)
    assert _git("push", "-q", "origin", "HEAD:release", cwd=wc, token=token).returncode == 0
    assert _git("push", "-q", "origin", "HEAD:baton/free", cwd=wc, token=token).returncode == 0


def test_etag_and_304(fake: FakeForge) -> None:
    sha = fake.branches(REPO)["main"]
    fake.add_check_run(REPO, sha, "build", "success")
    path = f"/repos/{REPO}/commits/{sha}/check-runs"
    with api(fake) as c:
        first = c.get(path)
        tag = first.headers["ETag"]
        again = c.get(path, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        fake.add_check_run(REPO, sha, "test", "failure")
        changed = c.get(path, headers={"If-None-Match": tag})
        assert changed.status_code == 200 and changed.headers["ETag"] != tag
        assert changed.json()["total_count"] == 2
    assert [r.status for r in fake.requests if r.path == path] == [200, 304, 200]


def test_job_log_redirect_and_a_bounded_tail_of_100_mb(fake: FakeForge) -> None:
    sha = fake.branches(REPO)["main"]
    log = b"x" * (100 * 1024 * 1024 - 16) + b"\nthe last line!\n"
    job = fake.add_check_run(REPO, sha, "CI / test", "failure", log=log)
    with api(fake) as c:
        redirect = c.get(f"/repos/{REPO}/actions/jobs/{job}/logs")
        assert redirect.status_code == 302
        download = redirect.headers["Location"]
    tail = httpx.get(download, headers={"Range": "bytes=-15"})  # a pre-signed URL: no token
    assert tail.status_code == 206 and tail.content == b"the last line!\n"
    assert tail.headers["Content-Range"] == f"bytes {len(log) - 15}-{len(log) - 1}/{len(log)}"
    middle = httpx.get(download, headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == b"x" * 10
    assert httpx.get(download, headers={"Range": f"bytes={len(log)}-"}).status_code == 416
    assert httpx.get(download.replace("key=", "key=wrong")).status_code == 404


def test_deliveries_are_signed_and_can_be_redelivered_or_forged(fake: FakeForge, receiver: Receiver) -> None:
    number = fake.open_issue(REPO, "alice", "Broken")
    fake.comment(REPO, number, "alice", "@baton fix it")
    got = receiver.got[-1]
    assert got.headers["x-github-event"] == "issue_comment"
    assert got.headers["content-type"] == "application/json"
    assert verified(SECRET, got.body, claimed_signatures(GITHUB, got.headers))
    assert not verified("other", got.body, claimed_signatures(GITHUB, got.headers))
    payload = json.loads(got.body)
    assert (payload["comment"]["body"], payload["issue"]["number"], payload["sender"]["login"]) == (
        "@baton fix it",
        number,
        "alice",
    )
    delivery = fake.last_delivery()
    assert fake.redeliver(delivery) == 200
    again = receiver.got[-1]
    assert again.headers["x-github-delivery"] == got.headers["x-github-delivery"] and again.body == got.body
    receiver.status = 401
    assert fake.deliver_forged(delivery) == 401
    forged = receiver.got[-1]
    assert not verified(SECRET, forged.body, claimed_signatures(GITHUB, forged.headers))
    assert delivery.statuses == [200, 200, 401]


def test_every_driven_change_delivers_a_payload_that_conforms(fake: FakeForge) -> None:
    issue, pr, sha, _review, _run = _pr_with_feedback(fake)
    fake.label(REPO, issue, "alice", "baton")
    fake.assign(REPO, issue, "alice", "baton[bot]")
    fake.label(REPO, pr, "alice", "ready")
    fake.assign(REPO, pr, "alice", "alice")
    fake.close(REPO, pr, "alice", merged=True)
    kinds = [(d.event, d.action) for d in fake.deliveries]
    assert kinds == [
        ("issues", "opened"),
        ("issue_comment", "created"),
        ("pull_request", "opened"),
        ("pull_request", "synchronize"),
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
        ("pull_request_review_comment", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("status", None),
        ("issues", "labeled"),
        ("issues", "assigned"),
        ("pull_request", "labeled"),
        ("pull_request", "assigned"),
        ("pull_request", "closed"),
    ]
    hooks = webhook_description()
    for d in fake.deliveries:  # the fixture asserts the same through fake.violations
        assert hooks.check(d.event, d.action, d.payload).ok, (d.event, d.action)
    check_run = next(d for d in fake.deliveries if d.event == "check_run").payload["check_run"]
    assert check_run["head_sha"] == sha and check_run["pull_requests"][0]["number"] == pr
    # the payloads are GitHub's own examples filled in: fields the fake never sets are still there
    example = hooks.example("check_run", "completed")["check_run"]
    assert set(example) <= set(check_run)
    closed = fake.deliveries[-1].payload["pull_request"]
    assert closed["merged"] is True and closed["head"]["sha"] == sha


def test_faults(fake: FakeForge) -> None:
    fake.fail_next(2, status=502)
    with api(fake) as c:
        assert [c.get(f"/repos/{REPO}").status_code for _ in range(3)] == [502, 502, 200]
        fake.fail_next(1, status=429)
        assert c.get(f"/repos/{REPO}").headers["Retry-After"] == "1"
        fake.stall_next(1, seconds=1.0)
        with pytest.raises(httpx.TimeoutException):
            c.get(f"/repos/{REPO}", timeout=0.2)
        assert c.get(f"/repos/{REPO}").status_code == 200


def test_validators_load_once_per_process(tmp_path: Path) -> None:
    rest_description(), webhook_description()  # loaded by the other tests or now
    started = time.perf_counter()
    with FakeForge(tmp_path / "again"):
        pass
    assert time.perf_counter() - started < 1.0


def test_deliveries_wait_until_the_api_has_answered(fake: FakeForge, receiver: Receiver) -> None:
    """A delivery a request caused reaches the receiver after the request's response, as GitHub's do:
    the receiver waits for the client's answer, which it would never see if the fake delivered first."""
    number = fake.open_issue(REPO, "alice", "Broken")
    answered, after = threading.Event(), []
    receiver.on_delivery = lambda: after.append(answered.wait(timeout=5))
    with api(fake) as c:
        assert c.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "on it"}).status_code == 201
        answered.set()
    fake.settle()
    assert after == [True]
    assert receiver.got[-1].headers["x-github-event"] == "issue_comment"
    assert json.loads(receiver.got[-1].body)["sender"]["login"] == "baton[bot]"


def test_a_receiver_may_call_the_api_back_before_it_answers(fake: FakeForge, receiver: Receiver) -> None:
    """Deliveries go once the change's lock is released: a receiver asking the API (the trust policy's
    permission check) while it handles one does not wait on the fake."""
    answers: list[int] = []
    with api(fake) as c:
        receiver.on_delivery = lambda: answers.append(
            c.get(f"/repos/{REPO}/collaborators/alice/permission").status_code
        )
        number = fake.open_issue(REPO, "alice", "Broken")
        fake.comment(REPO, number, "alice", "@baton fix it")
        c.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "on it"})
        fake.settle()
    assert answers == [200, 200, 200]  # a deadlock would have timed the callbacks out


def test_deliveries_held_until_flushed(fake: FakeForge, receiver: Receiver) -> None:
    fake.hold = True
    number = fake.open_issue(REPO, "alice", "Broken")
    fake.comment(REPO, number, "alice", "first")
    assert receiver.got == [] and len(fake.held) == 2
    assert fake.flush() == [200, 200]
    assert [r.headers["x-github-event"] for r in receiver.got] == ["issues", "issue_comment"]


def test_the_api_github_com_description_fits_too(tmp_path: Path) -> None:
    """The default is GHES 3.19's description (its server is ``…/api/v3``, as the fake's URL); the
    fake's answers and deliveries also conform to api.github.com's."""
    with FakeForge(tmp_path / "dotcom", description="api.github.com") as fake:
        fake.create_repo(REPO)
        fake.commit(REPO, "feature", {"a.txt": "a\n"})
        number = fake.open_issue(REPO, "acme", "Broken")
        fake.comment(REPO, number, "acme", "hi")
        pr = fake.open_pr(REPO, "acme", "feature")
        with api(fake, "acme") as c:
            assert c.get(f"/repos/{REPO}/issues", params={"state": "all"}).status_code == 200
            assert c.get(f"/repos/{REPO}/pulls/{pr}").status_code == 200
            assert c.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "x"}).status_code == 201
            assert c.get(f"/repos/{REPO}/issues", params={"state": "sideways"}).status_code == 400
        fake.settle()
        assert [v.kind for v in fake.violations] == ["request"]


def test_the_command_line_serves_a_fake_until_terminated(receiver: Receiver, tmp_path: Path) -> None:
    """The README's offline tour: the fake in its own process, driven with a token over HTTP."""
    command = [
        sys.executable, "-m", "baton.testing.fake_forge", "--secret", SECRET, "--deliver-to", receiver.url,
        "--repo", REPO, "--user", "alice:write:tok-alice", "--root", str(tmp_path / "cli"),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split(": ", 1) for _ in range(2))
        headers = {"Authorization": "token tok-alice"}
        repo = httpx.get(f"{lines['api']}/repos/{REPO}", headers=headers).json()
        assert repo["clone_url"] == lines["clone"]
        assert _git("ls-remote", lines["clone"], token="tok-alice").stdout.strip().endswith("refs/heads/main")
        issue = httpx.post(f"{lines['api']}/repos/{REPO}/issues", headers=headers, json={"title": "Broken"})
        assert issue.status_code == 201
        deadline = time.monotonic() + 10
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.02)
        got = receiver.got[-1]
        assert got.headers["x-github-event"] == "issues"
        assert verified(SECRET, got.body, claimed_signatures(GITHUB, got.headers))
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--port", "--secret", "--deliver-to", "--repo", "--user"):
        assert flag in out


def test_a_merge_over_the_api_merges_and_sends_the_closed_webhook(fake: FakeForge) -> None:
    fake.commit(REPO, "feature", {"a.txt": "a\n"})
    fake.commit(REPO, "main", {"b.txt": "b\n"}, "main moved")  # so the merge is a real one
    pr = fake.open_pr(REPO, "baton[bot]", "feature")
    head, base = fake.branches(REPO)["feature"], fake.branches(REPO)["main"]
    with api(fake, "alice") as c:
        stale = c.put(f"/repos/{REPO}/pulls/{pr}/merge", json={"sha": "0" * 40})
        assert stale.status_code == 409
        merged = c.put(f"/repos/{REPO}/pulls/{pr}/merge", json={"sha": head})
        assert merged.status_code == 200 and merged.json()["merged"] is True
        again = c.put(f"/repos/{REPO}/pulls/{pr}/merge", json={})
        assert again.status_code == 405
        shown = c.get(f"/repos/{REPO}/pulls/{pr}").json()
    assert shown["merged"] is True and shown["state"] == "closed"
    main_now = fake.branches(REPO)["main"]
    assert main_now == merged.json()["sha"]
    parents = fake.repo(REPO).git("rev-list", "--parents", "--max-count=1", main_now).split()[1:]
    assert parents == [base, head]
    assert fake.repo(REPO).git("show", f"{main_now}:a.txt") == "a"
    fake.settle()
    closed = fake.last_delivery("pull_request")
    assert closed.action == "closed" and closed.payload["pull_request"]["merged"] is True


def test_a_conflicting_merge_is_refused(fake: FakeForge) -> None:
    fake.commit(REPO, "feature", {"README.md": "theirs\n"})
    fake.commit(REPO, "main", {"README.md": "ours\n"}, "main moved")
    pr = fake.open_pr(REPO, "baton[bot]", "feature")
    with api(fake, "alice") as c:
        assert c.put(f"/repos/{REPO}/pulls/{pr}/merge", json={}).status_code == 405
    assert fake.issue(REPO, pr).state == "open"


def test_the_command_line_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag in ("--port", "--git-port"):
            command = [
                sys.executable,
                "-m",
                "baton.testing.fake_forge",
                flag,
                str(port),
                "--root",
                str(tmp_path),
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
            assert done.returncode == 1, done.stderr
            assert done.stderr.strip() == (
                f"python -m baton.testing.fake_forge: cannot listen on 127.0.0.1:{port} ({flag}): "
                "Address already in use"
            )


def test_it_starts_from_a_plain_server_install_checking_nothing(tmp_path: Path) -> None:
    """``pip install '.[server]'`` has neither of the referee's checkers (openapi-core, jsonschema-rs:
    the test extra's): ``python -m baton.testing.fake_forge`` still serves — an issue made over its API
    is delivered, signed — checking nothing; in the tests' process (their conftest installed the
    checker) the library's fake still checks, as the tests need."""
    got: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    blocked = "import sys; sys.modules.update(openapi_core=None, jsonschema_rs=None); "
    run_main = "from baton.testing.fake_forge import main; main(sys.argv[1:])"
    argv = [
        "--repo",
        "acme/api",
        "--user",
        "alice:write:tok-a",
        "--secret",
        "s3cret",
        "--root",
        str(tmp_path),
    ]
    argv += ["--deliver-to", f"http://127.0.0.1:{receiver.server_port}/webhooks/github"]
    server = subprocess.Popen(
        [sys.executable, "-c", blocked + run_main, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        api = server.stdout.readline().strip().removeprefix("api: ")
        assert api.startswith("http://127.0.0.1:"), api + server.stderr.read()
        made = httpx.post(
            f"{api}/repos/acme/api/issues", json={"title": "t"}, headers={"Authorization": "token tok-a"}
        )
        assert made.status_code == 201, made.text
        wait_for(lambda: bool(got), timeout=10)
        assert json.loads(got[0])["issue"]["title"] == "t"
    finally:
        server.terminate()
        server.wait(30)
        receiver.shutdown()
        receiver.server_close()
    assert server.stdout is not None and server.stderr is not None
    said = server.stderr.read()
    server.stdout.close()
    server.stderr.close()
    assert "Traceback" not in said, said
    assert rest_description().checked and webhook_description().checked
