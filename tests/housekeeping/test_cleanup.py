"""Closing the sessions of a gone branch: checkpoint first, worktree and local transcript freed, the
session closed; a new run resumes the same conversation in a worktree rebuilt from the checkpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from baton import Mode, open_store
from baton.housekeeping.cleanup import close_branch, close_session
from baton.keys import key_of
from baton.models import SessionStatus
from baton.settings import Settings
from baton.testing.fake import fake_agent_bin
from baton.workspace.keyspace import session_agent
from baton.workspace.workdirs import Workdirs
from tests.conftest import git, wait_for
from tests.runner.test_runner import go


def test_close_branch_then_a_new_run_resumes_with_the_uncommitted_file(
    settings: Settings, src_repo: Path
) -> None:
    first = go(settings, src_repo, "one")
    other = go(settings, src_repo, "other", thread="t2")
    worktree = Path(first.session.worktree)
    (worktree / "notes.txt").write_text("uncommitted work\n")
    sid = str(first.session.agent_session_id)
    agent = session_agent(first.session, settings)
    assert agent.transcript_files(sid)
    store = open_store(settings.resolved_store_url)
    try:
        ref = "refs/heads/baton/fake/t1"
        report = close_branch(store, settings, first.run.repo, ref, "webhook:github:d1")
        session = store.get_session("fake", first.run.repo, "t1")
        audit = store.list_audit(limit=5)
        untouched = store.get_session("fake", first.run.repo, "t2")
    finally:
        store.close()
    key = f"fake:{first.run.repo}:t1"
    assert report["closed"] == [key] and report["errors"] == {}
    assert report["checkpoints"][key] == "refs/baton/checkpoints/fake/t1"
    assert not worktree.exists()
    assert agent.transcript_files(sid) == [] and not agent.home.exists(), "the key's agent home went too"
    assert session is not None and session.status == SessionStatus.CLOSED
    assert session.agent_session_id == sid
    assert session.expires_at > time.time() + 6 * 86400  # the grace period (7 days by default)
    close = next(a for a in audit if a["action"] == "close")
    assert close["actor"] == "webhook:github:d1" and close["detail"]["worktree_removed"]
    assert close["detail"]["checkpoint_ref"] == "refs/baton/checkpoints/fake/t1"
    cache = Workdirs(settings).cache_path(key_of(session).repo)
    assert git(cache, "rev-parse", "--verify", "refs/heads/baton/fake/t1")  # the branch stays
    # the other key on another branch is untouched
    assert untouched is not None and untouched.status == SessionStatus.ACTIVE
    assert Path(other.session.worktree).is_dir()

    again = go(settings, src_repo, "two")
    assert again.run.mode == Mode.RESUME and "hydrated" in str(again.run.note)
    assert again.session.agent_session_id == sid
    assert again.run.result == "fake reply: received 4 messages"  # the whole conversation came back
    assert (worktree / "notes.txt").read_text() == "uncommitted work\n"
    assert again.session.status == SessionStatus.ACTIVE


def test_close_waits_for_the_running_run_to_end(settings: Settings, src_repo: Path, tmp_path: Path) -> None:
    """A close during a run takes effect after it, never mid-run."""
    go(settings, src_repo, "one")
    (tmp_path / "bin").mkdir()
    # beside the agent script: what the walls (and the agent's mount namespace) give it, the gate included
    gate = tmp_path / "bin" / "gate"
    slow = tmp_path / "bin" / "slow-agent"
    cmd = " ".join(fake_agent_bin())
    slow.write_text(f'#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexec {cmd} "$@"\n')
    slow.chmod(0o755)
    slow_settings = settings.with_(extra={"fake_bin": str(slow)})
    results = []
    runner = threading.Thread(target=lambda: results.append(go(slow_settings, src_repo, "two")))
    runner.start()
    store = open_store(settings.resolved_store_url)
    try:
        session = store.get_session("fake", store.list_sessions()[0].repo, "t1")
        assert session is not None
        wait_for(lambda: _status(settings, session.repo) == SessionStatus.RUNNING)
        closing: list[object] = []
        closer = threading.Thread(
            target=lambda: closing.append(close_session(store, settings, key_of(session), "test"))
        )
        closer.start()
        # a check that nothing happens has no condition to wait for: a close that did not wait for
        # the run would have ended within this pause (it takes milliseconds)
        time.sleep(0.5)
        assert not closing and Path(session.worktree).is_dir()  # waiting for the run
        gate.touch()
        runner.join(60)
        closer.join(60)
    finally:
        store.close()
    assert results[0].run.outcome == "succeeded"
    assert closing and not Path(session.worktree).exists()
    assert _status(settings, session.repo) == SessionStatus.CLOSED


def _status(settings: Settings, repo: str) -> SessionStatus | None:
    store = open_store(settings.resolved_store_url)
    try:
        session = store.get_session("fake", repo, "t1")
        return session.status if session else None
    finally:
        store.close()


def test_close_branch_matches_only_that_repo_and_branch(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    store = open_store(settings.resolved_store_url)
    try:
        assert close_branch(store, settings, first.run.repo, "other-branch", "t")["closed"] == []
        assert close_branch(store, settings, "example.com/x/y", "baton/fake/t1", "t")["closed"] == []
        assert close_branch(store, settings, first.run.repo, "baton/fake/t1", "t")["closed"]
        again = close_branch(store, settings, first.run.repo, "baton/fake/t1", "t")
    finally:
        store.close()
    assert again["closed"] == [] and again["already_closed"] == [f"fake:{first.run.repo}:t1"]


@pytest.mark.parametrize("dirty", [False, True])
def test_only_a_dirty_worktree_leaves_a_checkpoint(settings: Settings, src_repo: Path, dirty: bool) -> None:
    first = go(settings, src_repo, "one")
    if dirty:
        (Path(first.session.worktree) / "README.md").write_text("changed\n")
    store = open_store(settings.resolved_store_url)
    try:
        report = close_branch(store, settings, first.run.repo, "baton/fake/t1", "t")
    finally:
        store.close()
    ref = report["checkpoints"][f"fake:{first.run.repo}:t1"]
    assert ref == ("refs/baton/checkpoints/fake/t1" if dirty else None)
    again = go(settings, src_repo, "two")
    assert (Path(again.session.worktree) / "README.md").read_text() == ("changed\n" if dirty else "# demo\n")
