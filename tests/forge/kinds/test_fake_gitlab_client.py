"""baton's GitLab client against the fake GitLab, every answer checked against GitLab's published
types: who and what the token may, a thread and its notes, the draft MR (and the one a second open
finds), a review's diff notes replied to and resolved, a failed pipeline's log tail, and the merge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.forge.kinds.gitlab.client import GitLabClient
from baton.forge.kinds.gitlab.merge import GitLabMerge
from baton.testing.fake_gitlab import FakeGitLab

REPO = "acme/api"


@pytest.fixture(name="fake")
def fake_fixture(tmp_path: Path) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(tmp_path / "gitlab").start()
    fake.add_project(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    fake.add_user("baton-bot", "developer")
    fake.add_user("alice", "maintainer")
    yield fake
    fake.stop()
    assert fake.violations == [], fake.violations


@pytest.fixture(name="client")
def client_fixture(fake: FakeGitLab) -> Iterator[GitLabClient]:
    client = GitLabClient(fake.api_url, fake.token("baton-bot"))
    yield client
    client.close()


def test_the_client_through_a_whole_loop(fake: FakeGitLab, client: GitLabClient) -> None:
    since = time.time() - 5
    fake.open_issue(REPO, "Bug", "@baton fix it", labels=("bug",))
    fake.comment(REPO, 1, "@baton please")
    assert client.whoami().login == "baton-bot" and "api" in client.token_scopes().scopes
    assert (client.access_level(REPO, "alice"), client.access_level(REPO, "baton-bot")) == (40, 30)
    assert [t.number for t in client.updated_since(REPO, since)] == [1]
    assert [c.body for c in client.comments(REPO, 1)] == ["@baton please"]
    sha = fake.commit(REPO, "baton/issue-1", {"app.py": "print('fixed')\n"}, author="baton-bot")
    opened = client.open_pr(REPO, "baton/issue-1", "main", "fix", "Closes #1", True)
    assert opened == client.open_pr(REPO, "baton/issue-1", "main", "fix", "Closes #1", True)  # the 409's MR
    fake.review(REPO, 1, "alice", [("app.py", 1, "why?")])
    [inline] = client.inline_comments(REPO, 1)
    assert (inline.body, inline.author.login) == ("why?", "alice")
    assert client.reply_inline(REPO, 1, inline.id, "because") > inline.id
    assert client.resolve_inline(REPO, 1, [inline.id]) == [inline.id]
    fake.fail_pipeline(REPO, sha, [("test", "x\n" * 5000 + "boom\n")])
    [failed] = client.failed_checks(REPO, sha, 200)
    assert failed.log_tail.endswith("boom\n") and len(failed.log_tail) <= 200
    merge = GitLabMerge(client)
    assert merge.pull_state(REPO, 1).draft
    merge.mark_ready(REPO, 1)
    fake.set_access(REPO, "baton-bot", "maintainer")
    running = fake.add_pipeline(REPO, sha)
    merge.enable_auto_merge(REPO, 1, sha)
    fake.finish_pipeline(REPO, running.id, "success")
    state = merge.pull_state(REPO, 1)
    assert (state.open, state.draft) == (False, False)
    assert fake.issue(REPO, 1).state == "closed"
