"""The fake GitLab's git over HTTP (clone and push with a token; scopes, roles and protected branches
refused as GitLab refuses them) and its webhooks (GitLab's headers; the events a test, baton's API
calls and baton's pushes make; a resend repeating an event), and its command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.testing.fake_gitlab import FakeGitLab
from tests.support.gitlab_client import Api, Receiver

PROJECT = "acme/api"
P = "/projects/acme%2Fapi"
SECRET = "hook-secret"


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(name="fake")
def fake_fixture(tmp_path: Path, receiver: Receiver) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(tmp_path / "gitlab", secret=SECRET, deliver_to=receiver.url).start()
    fake.add_project(PROJECT, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    fake.add_user("baton-bot", "developer")
    fake.add_user("alice", "maintainer")
    yield fake
    fake.stop()
    assert fake.violations == [], fake.violations


def git(
    *args: str, cwd: Path | None = None, token: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """git with the token given as GIT_ASKPASS gives it (never in a URL)."""
    askpass = Path(os.environ.get("TMPDIR", "/tmp")) / f"askpass-{os.getpid()}"
    askpass.write_text('#!/bin/sh\ncase "$1" in Username*) echo oauth2;; *) echo "$GL_TOKEN";; esac\n')
    askpass.chmod(0o700)
    env = {**os.environ, "GIT_ASKPASS": str(askpass), "GL_TOKEN": token, "GIT_TERMINAL_PROMPT": "0"}
    env |= {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check)


def clone(fake: FakeGitLab, where: Path, token: str) -> Path:
    git("clone", "-q", fake.clone_url(PROJECT), str(where), token=token)
    return where


# -- git over HTTP ------------------------------------------------------------------------------------------


def test_clone_and_push_with_a_token(fake: FakeGitLab, receiver: Receiver, tmp_path: Path) -> None:
    token = fake.token("baton-bot")
    work = clone(fake, tmp_path / "work", token)
    assert (work / "app.py").read_text() == "print('hi')\n"
    git("checkout", "-qb", "baton/issue-1", cwd=work)
    (work / "app.py").write_text("print('fixed')\n")
    git("commit", "-qam", "fix", cwd=work)
    pushed = git("push", "-q", "origin", "baton/issue-1", cwd=work, token=token)
    assert pushed.returncode == 0, pushed.stderr
    fake.settle()
    head = fake.project(PROJECT).head("baton/issue-1")
    push = receiver.events("Push Hook")[-1].body
    assert (push["ref"], push["after"], push["user_username"], push["total_commits_count"]) == (
        "refs/heads/baton/issue-1", head, "baton-bot", 1,
    )  # fmt: skip
    assert push["commits"][0]["modified"] == ["app.py"]


def test_git_refuses_as_gitlab_does(fake: FakeGitLab, tmp_path: Path) -> None:
    assert git("ls-remote", fake.clone_url(PROJECT), token="glpat-wrong", check=False).returncode != 0
    reader = fake.add_token("baton-bot", scopes=("read_repository",)).value
    work = clone(fake, tmp_path / "work", reader)
    git("checkout", "-qb", "topic", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=work)
    refused = git("push", "origin", "topic", cwd=work, token=reader, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    git("checkout", "-q", "main", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "y", cwd=work)
    protected = git("push", "origin", "main", cwd=work, token=fake.token("baton-bot"), check=False)
    assert (
        "GitLab: You are not allowed to push code to protected branches on this project." in protected.stderr
    )
    assert fake.project(PROJECT).head("main") != git("rev-parse", "HEAD", cwd=work).stdout.strip()
    fake.set_access(PROJECT, "baton-bot", "reporter")
    refused = git("push", "origin", "topic", cwd=work, token=fake.token("baton-bot"), check=False)
    assert refused.returncode != 0
    fake.set_access(PROJECT, "baton-bot", None)
    assert (
        git("ls-remote", fake.clone_url(PROJECT), token=fake.token("baton-bot"), check=False).returncode != 0
    )
    assert [r.status for r in fake.git_requests if not r.authorized][:1] == [401]


def test_a_push_moves_the_merge_request(fake: FakeGitLab, receiver: Receiver, tmp_path: Path) -> None:
    token = fake.token("baton-bot")
    first = fake.commit(PROJECT, "baton/issue-1", {"app.py": "print('one')\n"}, author="baton-bot")
    fake.open_mr(PROJECT, "baton/issue-1", "Draft: fix", author="baton-bot")
    work = clone(fake, tmp_path / "work", token)
    git("checkout", "-q", "baton/issue-1", cwd=work)
    (work / "app.py").write_text("print('two')\n")
    git("commit", "-qam", "two", cwd=work)
    assert git("push", "-q", "origin", "baton/issue-1", cwd=work, token=token).returncode == 0
    fake.settle()
    second = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert Api(fake, token).get(f"{P}/merge_requests/1").body["sha"] == second
    update = receiver.events("Merge Request Hook")[-1].body
    attributes = update["object_attributes"]
    assert (attributes["action"], attributes["oldrev"], attributes["last_commit"]["id"]) == (
        "update",
        first,
        second,
    )


# -- webhooks ----------------------------------------------------------------------------------------------


def test_a_note_with_gitlabs_headers(fake: FakeGitLab, receiver: Receiver) -> None:
    fake.open_issue(PROJECT, "Bug", "it breaks")
    note = fake.comment(PROJECT, 1, "@baton please fix")
    hit = receiver.events("Note Hook")[-1]
    assert hit.header("X-Gitlab-Token") == SECRET
    assert hit.header("X-Gitlab-Instance") == fake.web_url
    assert (hit.header("User-Agent") or "").startswith("GitLab/")
    assert "X-Gitlab-Event" in hit.headers and "X-Gitlab-Event-UUID" in hit.headers  # GitLab's case, kept
    body = hit.body
    assert (body["object_kind"], body["event_type"]) == ("note", "note")
    attributes = body["object_attributes"]
    assert (attributes["id"], attributes["note"], attributes["noteable_type"], attributes["type"]) == (
        note.id, "@baton please fix", "Issue", None,
    )  # fmt: skip
    assert body["issue"]["iid"] == 1 and body["user"]["username"] == "alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", attributes["created_at"])
    for name in ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "Idempotency-Key"):
        assert len({h.header(name) for h in receiver.hits}) == len(receiver.hits) == 2  # one each


def test_a_resend_repeats_the_event(fake: FakeGitLab, receiver: Receiver) -> None:
    fake.open_issue(PROJECT, "Bug")
    first = receiver.hits[-1]
    event = fake.last_event("Issue Hook")
    assert fake.resend(event.uuid) == [200]
    again = receiver.hits[-1]
    assert again.body == first.body and again.header("Idempotency-Key") == first.header("Idempotency-Key")
    for name in ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"):  # the resend is a request of its own
        assert again.header(name) != first.header(name)
    assert fake.deliveries[-1].resent == event.uuid
    receiver.status = 401
    assert fake.deliver_forged(token="wrong") == 401 and receiver.hits[-1].header("X-Gitlab-Token") == "wrong"


def test_issue_labels_and_assignees_say_what_changed(fake: FakeGitLab, receiver: Receiver) -> None:
    fake.open_issue(PROJECT, "Bug", labels=("bug",))
    fake.label(PROJECT, 1, "baton", by="alice")
    fake.assign(PROJECT, 1, "baton-bot", by="alice")
    opened, labelled, assigned = (h.body for h in receiver.events("Issue Hook"))
    assert (opened["object_attributes"]["action"], opened["changes"]) == ("open", {})
    labels = labelled["changes"]["labels"]
    assert [x["title"] for x in labels["previous"]] == ["bug"]
    assert [x["title"] for x in labels["current"]] == ["bug", "baton"]
    assert labelled["object_attributes"]["action"] == "update"
    assignees = assigned["changes"]["assignees"]
    assert (assignees["previous"], [a["username"] for a in assignees["current"]]) == ([], ["baton-bot"])
    assert assigned["object_attributes"]["assignee_ids"] == [fake.users["baton-bot"].id]
    # the times as GitLab's examples write them: the issue's own in ISO 8601, a change's in Ruby's to_s
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", assigned["object_attributes"]["updated_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", assigned["changes"]["updated_at"]["current"])


def test_a_review_is_several_diff_notes(fake: FakeGitLab, receiver: Receiver) -> None:
    fake.commit(PROJECT, "topic", {"app.py": "print('hi')\nprint('more')\n"})
    fake.open_mr(PROJECT, "topic", "Draft: topic", author="baton-bot")
    notes = fake.review(PROJECT, 1, "alice", [("app.py", 1, "keep"), ("app.py", 2, "why?")])
    hits = receiver.events("Note Hook")
    assert len(hits) == 2
    for hit, note in zip(hits, notes, strict=True):
        attributes = hit.body["object_attributes"]
        assert (attributes["type"], attributes["id"], attributes["discussion_id"]) == (
            "DiffNote",
            note.id,
            note.discussion_id,
        )
        assert attributes["position"]["new_path"] == "app.py"
        assert hit.body["merge_request"]["iid"] == 1
    assert hits[0].body["object_attributes"]["position"]["old_line"] == 1  # an unchanged line
    assert hits[1].body["object_attributes"]["position"]["old_line"] is None  # an added one
    fake.reply(PROJECT, 1, notes[1].discussion_id, "because", author="baton-bot")
    reply = receiver.events("Note Hook")[-1].body["object_attributes"]
    assert (reply["discussion_id"], reply["type"]) == (notes[1].discussion_id, "DiffNote")


def test_api_calls_and_ci_send_their_events(fake: FakeGitLab, receiver: Receiver) -> None:
    api = Api(fake, fake.token("baton-bot"))
    sha = fake.commit(PROJECT, "fix", {"app.py": "print('fixed')\n"}, author="baton-bot")
    body = {
        "source_branch": "fix",
        "target_branch": "main",
        "title": "Draft: fix",
        "remove_source_branch": True,
    }
    assert api("POST", f"{P}/merge_requests", body).status == 201
    assert api("POST", f"{P}/merge_requests/1/notes", {"body": "status"}).status == 201
    fake.settle()
    opened = receiver.events("Merge Request Hook")[-1].body
    assert (opened["object_attributes"]["action"], opened["user"]["username"]) == ("open", "baton-bot")
    assert receiver.events("Note Hook")[-1].body["object_attributes"]["noteable_type"] == "MergeRequest"
    fake.fail_pipeline(PROJECT, sha, [("test", "boom\n")])
    pipeline = receiver.events("Pipeline Hook")[-1].body
    assert (pipeline["object_attributes"]["status"], pipeline["object_attributes"]["sha"]) == ("failed", sha)
    assert {b["name"]: b["status"] for b in pipeline["builds"]} == {"build": "success", "test": "failed"}
    fake.update_mr(PROJECT, 1, title="fix", by="alice")
    fake.pass_pipeline(PROJECT, sha)
    fake.merge_mr(PROJECT, 1, by="alice")
    actions = [h.body["object_attributes"]["action"] for h in receiver.events("Merge Request Hook")]
    assert actions == ["open", "update", "merge"]
    deleted = receiver.events("Push Hook")[-1].body
    assert (deleted["ref"], deleted["after"], deleted["checkout_sha"]) == ("refs/heads/fix", "0" * 40, None)


def test_project_hooks_choose_their_events(fake: FakeGitLab, receiver: Receiver) -> None:
    with Receiver() as notes_only:
        fake.add_hook(PROJECT, notes_only.url, "other-secret", events=("note",))
        fake.open_issue(PROJECT, "Bug")
        fake.comment(PROJECT, 1, "hi")
        assert [h.event for h in notes_only.hits] == ["Note Hook"]
        mine, default = notes_only.hits[0], receiver.events("Note Hook")[0]
        assert (mine.header("X-Gitlab-Token"), default.header("X-Gitlab-Token")) == ("other-secret", SECRET)
        assert mine.header("X-Gitlab-Event-UUID") == default.header("X-Gitlab-Event-UUID")  # one event
        assert mine.header("Idempotency-Key") != default.header("Idempotency-Key")  # two deliveries


def test_held_deliveries_wait_for_flush(fake: FakeGitLab, receiver: Receiver) -> None:
    fake.hold = True
    fake.open_issue(PROJECT, "Bug")
    assert receiver.hits == [] and len(fake.held) == 1
    fake.hold = False
    assert fake.flush() == [200] and len(receiver.hits) == 1


# -- the command line ----------------------------------------------------------------------------------------


def test_the_command_line_serves_a_project_and_a_token(tmp_path: Path) -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "baton.testing.fake_gitlab", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--token-file" in helped.stdout
    token_file = tmp_path / "token"
    command = [
        sys.executable,
        "-m",
        "baton.testing.fake_gitlab",
        "--project",
        PROJECT,
        "--user",
        "baton-bot:developer",
    ]
    command += ["--token-file", str(token_file), "--root", str(tmp_path / "root")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ}) as proc:
        try:
            assert proc.stdout is not None
            api_url = proc.stdout.readline().split()[-1]
            clone_url = proc.stdout.readline().split()[-1]
            deadline = time.monotonic() + 10
            while not token_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert oct(token_file.stat().st_mode & 0o777) == "0o600"
            token = token_file.read_text().strip()
            answer = Api(api_url, token).get("/user")
            assert (answer.status, answer.body["username"]) == (200, "baton-bot")
            assert clone_url == f"{api_url.removesuffix('/api/v4')}/acme/api.git"
            assert git("ls-remote", clone_url, token=token).stdout.count("refs/heads/main") == 1
        finally:
            proc.terminate()
    assert proc.returncode == 0


def test_a_merge_request_from_a_fork(fake: FakeGitLab, receiver: Receiver) -> None:
    fork = fake.fork(PROJECT, "mallory")
    first = fake.commit(fork.path, "feature", {"app.py": "print('fork')\n"}, author="mallory")
    fake.open_mr(PROJECT, "feature", "from a fork", author="mallory", source_project=fork.path)
    api = Api(fake, fake.token("baton-bot"))
    mr = api.get(f"{P}/merge_requests/1").body
    assert (mr["sha"], mr["source_project_id"], mr["target_project_id"]) == (
        first,
        fork.id,
        fake.project(PROJECT).id,
    )
    assert [d["new_path"] for d in api.get(f"{P}/merge_requests/1/diffs").body] == ["app.py"]
    second = fake.commit(fork.path, "feature", {"app.py": "print('fork 2')\n"}, author="mallory")
    assert api.get(f"{P}/merge_requests/1").body["sha"] == second
    update = receiver.events("Merge Request Hook")[-1].body["object_attributes"]
    assert (update["action"], update["oldrev"], update["source"]["path_with_namespace"]) == (
        "update",
        first,
        fork.path,
    )
    assert api.get(f"/projects/{fork.id}").status == 404  # baton is no member of the fork (private)


def test_a_merge_request_pipeline_names_its_merge_request(fake: FakeGitLab, receiver: Receiver) -> None:
    sha = fake.commit(PROJECT, "fix", {"app.py": "print('fixed')\n"}, author="baton-bot")
    fake.open_mr(PROJECT, "fix", "Draft: fix", author="baton-bot")
    fake.fail_pipeline(PROJECT, sha, [("test", "boom\n")], source="merge_request_event")
    body = receiver.events("Pipeline Hook")[-1].body
    assert (body["object_attributes"]["ref"], body["object_attributes"]["source"]) == (
        "refs/merge-requests/1/head",
        "merge_request_event",
    )
    assert (body["merge_request"]["iid"], body["merge_request"]["source_branch"]) == (1, "fix")
    fake.pass_pipeline(PROJECT, sha)
    assert receiver.events("Pipeline Hook")[-1].body["merge_request"] is None  # a branch pipeline
