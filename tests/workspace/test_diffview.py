"""A thread's worktree as a diff, with real git after a turn of the fake agent: a tracked file changed and
a new file are both in it (the new one "intent to add" on a copy of the index), the worktree's own index
and files are left byte for byte as they were; an index the agent swapped for a link is not read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, run
from baton.agents import AGENTS
from baton.keys import make_key
from baton.settings import Settings
from baton.workspace import gitlinks
from baton.workspace.diffview import worktree_diff
from baton.workspace.workdirs import Workdirs


def test_a_worktrees_changes_and_new_files_are_read_without_a_write(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.txt")
    request = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="Take notes.")
    assert run(request, settings=settings).run.outcome == Outcome.SUCCEEDED
    key = make_key("fake", str(src_repo), "t1", AGENTS)
    workdirs = Workdirs(settings)
    tree = workdirs.worktree_path(key)
    tracked = sorted(p.name for p in tree.iterdir() if p.is_file() and p.name not in ("notes.txt", ".git"))[0]
    (tree / tracked).write_text("changed by the agent\n")
    admin = gitlinks.find(workdirs.cache_path(key.repo), key)
    assert admin is not None
    before = (admin / "index").read_bytes(), sorted(os.listdir(admin)), (tree / "notes.txt").read_bytes()

    found = worktree_diff(settings, key, None)

    assert found is not None and not found.truncated
    assert f"+++ b/{tracked}" in found.diff and "+changed by the agent" in found.diff, found.diff
    assert "+++ b/notes.txt" in found.diff and "+turn 1: " in found.diff, found.diff
    assert found.untracked == ["notes.txt"] and "2 files changed" in found.stat, found.stat
    assert found.base == found.head
    after = (admin / "index").read_bytes(), sorted(os.listdir(admin)), (tree / "notes.txt").read_bytes()
    assert after == before  # nothing written: no index refresh, no intent-to-add in its own index

    (admin / "index").unlink()
    (admin / "index").symlink_to("/etc/passwd")
    assert worktree_diff(settings, key, None) is None
