"""What a turn pushes, on each forge (the fake GitHub, the fake Gitea, the fake GitLab; a real
``baton serve`` and the fake agent): a turn that changes nothing pushes no branch and opens no PR, its
status comment saying so (never the diff stat of someone else's commit), also the turn after an
answered question; the next turn that changes something pushes and opens the PR. A person's PR bound
by a mention after baton's cache clone of the repository exists gets baton's commit on the PR's own
head, not on the base."""

from __future__ import annotations

import pytest

from baton.forge.data.tables import forge_store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_gitlab import FakeGitLab
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    settled,
    statuses,
)
from tests.gitlab_fixtures import (  # noqa: F401 (fixtures)
    gitlab_fixture,
    repo_extra_fixture,
    service_fixture,
)
from tests.gitlab_fixtures import statuses as gitlab_statuses
from tests.service_fixtures import Service

BRANCH = "baton/fake/issue-1"


@pytest.fixture(name="agent")
def agent_fixture(monkeypatch: pytest.MonkeyPatch) -> str:
    register_fake()
    monkeypatch.delenv("FAKE_AGENT_WRITE", raising=False)  # the agent changes nothing until told to
    return "fake"


def said_no_change(status: str) -> None:
    assert "no change" in status, status
    assert "pushed" not in status and "changed" not in status, status  # no diff stat of main's commit


# -- GitHub and Gitea ----------------------------------------------------------------------------------


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_turn_that_changes_nothing_pushes_nothing_and_opens_no_pr(
    forge_kind: str, fake: FakeForge, forge_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = forge_service
    issue = fake.open_issue(REPO, "alice", "A question", "What does app.py print?")
    fake.comment(REPO, issue, "alice", "@baton please tell me")
    settled(service, fake, 1)
    assert BRANCH not in fake.branches(REPO) and fake.pulls(REPO) == []
    [status] = statuses(fake, issue)
    said_no_change(status)
    bound = forge_store(service.store).get_binding(forge_kind, REPO, issue)
    assert bound is not None and bound.pr is None and bound.head_sha is None

    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")  # the next turn changes a file: it pushes
    fake.comment(REPO, issue, "alice", "now write it down in notes.md")
    settled(service, fake, 2)
    [pr] = fake.pulls(REPO)
    head = fake.branches(REPO)[BRANCH]
    assert fake.repo(REPO).git("rev-parse", f"{head}~1") == fake.branches(REPO)["main"]
    [status] = statuses(fake, issue)
    assert f"pushed `{head[:12]}`" in status and "1 file changed" in status, status
    assert f"opened #{pr.number}" in status, status


ASK = '[[tool:ask_human {"question": "Which greeting: hello or hi?", "options": ["hello", "hi"]}]]'


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_an_answered_question_that_changes_nothing_opens_no_pr(
    forge_kind: str, fake: FakeForge, forge_service: Service
) -> None:
    service = forge_service
    issue = fake.open_issue(REPO, "alice", "A greeting", "Which one?")
    fake.comment(REPO, issue, "alice", f"@baton please decide {ASK}")
    settled(service, fake, 1)
    fake.comment(REPO, issue, "alice", "hi, and nothing to change")
    settled(service, fake, 2)
    assert [j.outcome for j in service.store.list_jobs(limit=5, oldest_first=True)] == [
        "needs_input",
        "succeeded",
    ]
    assert BRANCH not in fake.branches(REPO) and fake.pulls(REPO) == []
    [status] = statuses(fake, issue)
    said_no_change(status)


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_persons_pr_gets_batons_commit_on_its_own_head(
    forge_kind: str, fake: FakeForge, forge_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = forge_service
    issue = fake.open_issue(REPO, "alice", "First", "Anything.")
    fake.comment(REPO, issue, "alice", "@baton please look")
    settled(service, fake, 1)  # baton's cache clone of the repository exists from now on

    theirs = fake.commit(REPO, "feature", {"feature.txt": "a person's work\n"}, "a feature", login="alice")
    number = fake.open_pr(REPO, "alice", "feature", title="A person's feature")
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    fake.comment(REPO, number, "alice", "@baton please add notes to this PR")
    settled(service, fake, 2)
    head = fake.branches(REPO)["feature"]
    assert head != theirs and fake.repo(REPO).git("rev-parse", f"{head}~1") == theirs
    assert "a person's work" in fake.repo(REPO).git("show", f"{head}:feature.txt")
    [status] = statuses(fake, number)
    assert f"pushed `{head[:12]}` to `feature`" in status and "refused" not in status, status
    assert [pr.number for pr in fake.pulls(REPO)] == [number]  # no PR of baton's own


def test_what_the_repositorys_setup_made_is_never_pushed(
    fake: FakeForge, forge_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The setup's results (here a build directory the repository does not ignore) are the thread's
    environment, not its work: a turn that changes nothing else pushes nothing, and the next turn's
    commit holds the agent's file alone."""
    service = forge_service
    fake.commit(REPO, "main", {".baton/setup.sh": "mkdir -p build && echo made > build/out.txt\n"}, "setup")
    issue = fake.open_issue(REPO, "alice", "A question", "What does app.py print?")
    fake.comment(REPO, issue, "alice", "@baton please tell me")
    settled(service, fake, 1)
    assert "environment: setup from .baton/setup.sh" in str(service.store.list_jobs(limit=1)[0].result)
    assert BRANCH not in fake.branches(REPO) and fake.pulls(REPO) == []
    said_no_change(statuses(fake, issue)[0])

    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    fake.comment(REPO, issue, "alice", "now write it down in notes.md")
    settled(service, fake, 2)
    head = fake.branches(REPO)[BRANCH]
    assert fake.repo(REPO).git("show", "--name-only", "--format=", head).split() == ["notes.md"]


# -- GitLab --------------------------------------------------------------------------------------------


def test_a_turn_that_changes_nothing_opens_no_mr_on_gitlab(
    gitlab: FakeGitLab, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue = gitlab.open_issue(REPO, "A question", "What does app.py print?", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton please tell me", author="alice")
    settled(service, gitlab, 1)
    assert gitlab.project(REPO).head(BRANCH) is None and gitlab.project(REPO).mrs == {}
    [status] = gitlab_statuses(gitlab, issue.iid)
    said_no_change(status)

    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    gitlab.comment(REPO, issue.iid, "now write it down in notes.md", author="alice")
    settled(service, gitlab, 2)
    [mr] = gitlab.project(REPO).mrs.values()
    assert mr.source_branch == BRANCH
    head = gitlab.project(REPO).head(BRANCH)
    assert head is not None
    [status] = gitlab_statuses(gitlab, issue.iid)
    assert f"pushed `{head[:12]}`" in status and "1 file changed" in status, status


def test_an_answered_question_that_changes_nothing_opens_no_mr_on_gitlab(
    gitlab: FakeGitLab, service: Service
) -> None:
    issue = gitlab.open_issue(REPO, "A greeting", "Which one?", author="alice")
    gitlab.comment(REPO, issue.iid, f"@baton please decide {ASK}", author="alice")
    settled(service, gitlab, 1)
    gitlab.comment(REPO, issue.iid, "hi, and nothing to change", author="alice")
    settled(service, gitlab, 2)
    assert [j.outcome for j in service.store.list_jobs(limit=5, oldest_first=True)] == [
        "needs_input",
        "succeeded",
    ]
    assert gitlab.project(REPO).head(BRANCH) is None and gitlab.project(REPO).mrs == {}
    said_no_change(gitlab_statuses(gitlab, issue.iid)[0])


def test_a_persons_mr_gets_batons_commit_on_its_own_head_on_gitlab(
    gitlab: FakeGitLab, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitlab.open_issue(REPO, "Unbound", "Its #1 is not the MR's !1.", author="alice")
    issue = gitlab.open_issue(REPO, "First", "Anything.", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton please look", author="alice")
    settled(service, gitlab, 1)  # baton's cache clone of the project exists from now on

    theirs = gitlab.commit(REPO, "feature", {"feature.txt": "a person's work\n"}, "a feature", author="alice")
    mr = gitlab.open_mr(REPO, "feature", "A person's feature", author="alice")
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    gitlab.comment(REPO, mr.iid, "@baton please add notes to this MR", author="alice", mr=True)
    settled(service, gitlab, 2)
    project = gitlab.project(REPO)
    head = project.head("feature")
    assert head is not None and head != theirs
    assert project.repo.git("rev-parse", f"{head}~1") == theirs
    [status] = gitlab_statuses(gitlab, mr.iid, mr=True)
    assert f"pushed `{head[:12]}` to `feature`" in status and "refused" not in status, status
    assert list(project.mrs) == [mr.iid]
