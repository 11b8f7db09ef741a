"""Sync before a turn, with the REAL Claude Code CLI against the mock: the base moved upstream, or a person
pushed to the key's branch; ``--sync rebase|merge`` brings it in before the agent starts, keeps the agent's
uncommitted work, resumes the same conversation and tells it what came in. A conflict stops the run with
outcome ``conflict`` (worktree byte for byte as before, the conversation untouched: the mock sees no request),
or with ``--on-conflict agent`` leaves the markers and names the files in the prompt. The mock counts the
messages each request carried: 2, 4, 6 prove a resumed conversation."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from baton import RunRequest, run
from baton.models import Mode, OnConflict, Outcome, SyncHow
from baton.runner.request import RunResult
from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import git

pytestmark = pytest.mark.slow


def turn(settings: Settings, repo: Path, thread: str, prompt: str, **extra: object) -> RunResult:
    request = RunRequest(agent="claude", repo=str(repo), thread=thread, prompt=prompt, **extra)  # type: ignore[arg-type]
    return run(request, settings=settings)


@pytest.fixture
def claude(settings: Settings, claude_bin: str, mock: MockAnthropic) -> Settings:
    return dataclasses.replace(settings, claude_bin=claude_bin)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` but .git, by its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def push_as_person(tmp_path: Path, remote: Path, branch: str, files: dict[str, str], message: str) -> str:
    """A person commits ``files`` on ``branch`` of ``remote`` (through their own clone); the commit id."""
    clone = tmp_path / f"person-{hashlib.sha1(message.encode()).hexdigest()[:8]}"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    git(clone, "checkout", "-q", branch)
    for name, text in files.items():
        (clone / name).write_text(text)
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", branch)
    return git(clone, "rev-parse", "HEAD")


def test_base_moved_and_sync_rebase_brings_it_under_the_same_conversation(
    claude: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    first = turn(claude, src_repo, "issue-1", "start on the issue")
    worktree = Path(first.session.worktree)
    (worktree / "src" / "app.py").write_text("print('agent was here')\n")  # uncommitted agent work
    (worktree / "notes.txt").write_text("untracked notes\n")
    (src_repo / "UPSTREAM.md").write_text("new upstream file\n")
    git(src_repo, "add", ".")
    git(src_repo, "commit", "-q", "-m", "Upstream adds UPSTREAM.md")
    upstream = git(src_repo, "rev-parse", "HEAD")

    second = turn(claude, src_repo, "issue-1", "go on", sync=SyncHow.REBASE)

    assert second.run.outcome == Outcome.SUCCEEDED and second.run.mode == Mode.RESUME
    assert second.session.agent_session_id == first.session.agent_session_id
    assert mock.message_counts() == [2, 4]  # the same conversation, resumed
    assert (worktree / "UPSTREAM.md").read_text() == "new upstream file\n"
    assert git(worktree, "merge-base", "--is-ancestor", upstream, "HEAD") == ""
    assert (worktree / "src" / "app.py").read_text() == "print('agent was here')\n"
    assert (worktree / "notes.txt").read_text() == "untracked notes\n"
    status = git(worktree, "status", "--porcelain").splitlines()
    assert (
        "M src/app.py" in [s.strip() for s in status] and "?? notes.txt" in status
    )  # uncommitted, untracked
    told = mock.conversation()[-1].text()
    assert "Upstream adds UPSTREAM.md" in told and upstream[:7] in told
    assert second.run.sync is not None and second.run.sync["result"] == "integrated"
    assert second.run.sync["incoming"][0]["source"] == "base"


def test_a_person_pushed_merge_brings_it_and_a_conflict_stops_or_goes_to_the_agent(
    claude: Settings, src_repo: Path, mock: MockAnthropic, tmp_path: Path
) -> None:
    first = turn(claude, src_repo, "issue-2", "start")
    worktree, branch = Path(first.session.worktree), first.session.branch
    git(worktree, "push", "-q", str(src_repo), f"HEAD:refs/heads/{branch}")  # the agent's branch, published
    pushed = push_as_person(
        tmp_path, src_repo, branch, {"PERSON.md": "from a person\n"}, "Person adds PERSON.md"
    )

    second = turn(claude, src_repo, "issue-2", "continue", sync=SyncHow.MERGE)
    assert second.run.outcome == Outcome.SUCCEEDED and mock.message_counts() == [2, 4]
    assert (worktree / "PERSON.md").read_text() == "from a person\n"
    assert git(worktree, "merge-base", "--is-ancestor", pushed, "HEAD") == ""
    assert "Person adds PERSON.md" in mock.conversation()[-1].text()
    assert second.run.sync and second.run.sync["incoming"][0]["source"] == "branch"

    # a conflicting push: the person and the agent (uncommitted) both change README.md
    push_as_person(tmp_path, src_repo, branch, {"README.md": "# the person's title\n"}, "Person retitles")
    (worktree / "README.md").write_text("# the agent's title\n")
    (worktree / "scratch.txt").write_text("untracked scratch\n")
    before, status_before = tree_digest(worktree), git(worktree, "status", "--porcelain")
    head_before = git(worktree, "rev-parse", "HEAD")

    stopped = turn(claude, src_repo, "issue-2", "continue", sync=SyncHow.MERGE)
    assert stopped.run.outcome == Outcome.CONFLICT
    assert "README.md" in (stopped.run.error or "")
    assert tree_digest(worktree) == before and git(worktree, "status", "--porcelain") == status_before
    assert git(worktree, "rev-parse", "HEAD") == head_before
    assert mock.message_counts() == [2, 4]  # the conversation untouched: the agent never ran
    assert stopped.session.agent_session_id == first.session.agent_session_id

    handed = turn(claude, src_repo, "issue-2", "continue", sync=SyncHow.MERGE, on_conflict=OnConflict.AGENT)
    assert handed.run.outcome == Outcome.SUCCEEDED and mock.message_counts() == [2, 4, 6]
    told = mock.conversation()[-1].text()
    assert "README.md" in told and "conflict" in told.lower()
    assert "<<<<<<<" in (worktree / "README.md").read_text()
    assert (worktree / "scratch.txt").read_text() == "untracked scratch\n"  # nothing of the agent's lost
    assert handed.run.sync and handed.run.sync["result"] == "conflict" and handed.run.sync["left_for_agent"]


def test_sync_off_is_the_default_and_touches_nothing(
    claude: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    first = turn(claude, src_repo, "issue-3", "start")
    worktree = Path(first.session.worktree)
    (src_repo / "LATER.md").write_text("later\n")
    git(src_repo, "add", ".")
    git(src_repo, "commit", "-q", "-m", "Later upstream")
    second = turn(claude, src_repo, "issue-3", "go on")
    assert second.run.outcome == Outcome.SUCCEEDED and second.run.sync is None
    assert not (worktree / "LATER.md").exists()
    assert "Later upstream" not in mock.conversation()[-1].text()
