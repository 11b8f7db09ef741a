"""Sync with upstream before a turn (baton.sync.engine), with real git: a source repository as the remote,
people pushing to the key's branch through a clone of it, the base moving on ``main``, and the key's
worktree made by Workdirs. "Exactly as it was" is checked byte for byte: every file's hash (tracked,
untracked, ignored), ``git status``, HEAD, the branch ref and the index file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import baton.sync.apply
import baton.sync.fetch
import baton.workspace.gitcmd
from baton.agents import AGENTS
from baton.errors import GitError
from baton.keys import Key, make_key
from baton.settings import Settings
from baton.sync.engine import (
    Incoming,
    OnConflict,
    SyncHow,
    SyncReport,
    recover_interrupted_sync,
    sync_worktree,
)
from baton.sync.git import IN_PROGRESS
from baton.sync.marker import INDEX_COPY, MARKER
from baton.sync.plan import LABELS
from baton.testing.git_http import GitHttpServer
from baton.workspace.gitcmd import WorktreeGit
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import commit_file, git, wait_for

SHARED = "one\ntwo\nthree\nfour\nfive\n"
HOSTILE = ["-rf dash.txt", "with space.txt", "ünïcødé ✓.txt"]


class Killed(BaseException):
    """Stands for a kill -9 at that point: nothing after it runs, no ``except Exception`` catches it."""


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin" / "api"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    commit_file(repo, "README.md", "hello\n", "first")
    commit_file(repo, "shared.txt", SHARED, "shared")
    commit_file(repo, "app.py", "print(1)\n", "second")
    return repo


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def key(origin: Path) -> Key:
    return make_key("fake", str(origin), "issue-1", AGENTS)


@pytest.fixture
def wt(workdirs: Workdirs, key: Key) -> Path:
    return workdirs.prepare_worktree(key, branch_for(key), None).path


def run_sync(
    workdirs: Workdirs,
    key: Key,
    wt: Path,
    how: SyncHow = SyncHow.REBASE,
    on_conflict: OnConflict = OnConflict.STOP,
    base_ref: str | None = None,
    base_sha: str | None = None,
) -> SyncReport:
    return sync_worktree(workdirs, key, wt, branch_for(key), base_ref, base_sha, how, on_conflict)


def snapshot(wt: Path) -> dict[str, Any]:
    """Everything "exactly as it was" covers: each file's bytes (tracked, untracked, ignored, symlinks
    by target), git status with ignored files, HEAD, the branch, the index file's bytes."""
    files = {}
    for root, dirs, names in os.walk(wt):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            rel = str(path.relative_to(wt))
            if path.is_symlink():
                files[rel] = "-> " + os.readlink(path)
            else:
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + oct(path.stat().st_mode)
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    return {
        "files": files,
        "status": status(wt, "--ignored"),
        "head": (gitdir / "HEAD").read_text(),
        "branch": git(wt, "rev-parse", "HEAD"),
        "index": hashlib.sha256((gitdir / "index").read_bytes()).hexdigest(),
        "staged": git(wt, "ls-files", "--stage", "-z"),
        "state": sorted(n for n in os.listdir(gitdir) if n in {*IN_PROGRESS, MARKER, INDEX_COPY}),
    }


def same_after_rewrite(after: dict[str, Any], before: dict[str, Any]) -> bool:
    """Equal snapshots but for the index file's bytes: a file git had to write back has new stat data,
    which the next `git status` records in the index; the entries (``staged``) must still be equal."""
    return {**after, "index": None} == {**before, "index": None}


def make_dirty(wt: Path) -> None:
    """Uncommitted work of every kind: a modified file, a staged one, an untracked one (hostile name,
    in a new directory), an ignored one, a deleted one."""
    (wt / "README.md").write_text("hello\nlocal edit\n")
    (wt / "app.py").write_text("print(2)\n")
    git(wt, "add", "app.py")
    (wt / "notes dir").mkdir()
    (wt / "notes dir" / "-n ötes.md").write_text("my notes\n")
    (wt / "debug.log").write_text("ignored output\n")
    (wt / "link to readme").symlink_to("README.md")
    os.chmod(wt / "shared.txt", 0o755)


def status(wt: Path, *flags: str) -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", *flags],
        cwd=wt,
        capture_output=True,
        text=True,
        check=True,
    )
    return {entry for entry in out.stdout.split("\0") if entry}


def people_push(origin: Path, tmp_path: Path, branch: str, name: str, text: str, message: str) -> str:
    """Someone clones the remote, commits on ``branch`` and pushes."""
    clone = tmp_path / "people"
    if not clone.exists():
        git(tmp_path, "clone", "--quiet", str(origin), "people")
    git(clone, "fetch", "--quiet", "origin")
    git(clone, "checkout", "--quiet", "-B", branch, f"origin/{branch}")
    commit_file(clone, name, text, message)
    git(clone, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    return git(clone, "rev-parse", "HEAD")


def push_branch(wt: Path, origin: Path, branch: str) -> None:
    git(wt, "push", "--quiet", str(origin), f"HEAD:refs/heads/{branch}")


def subjects(wt: Path, rev_range: str) -> list[str]:
    return git(wt, "log", "--format=%s", rev_range).splitlines()


def fsck(workdirs: Workdirs, key: Key) -> None:
    """The commits sync wrote by hand are well-formed, and every ref's history is complete."""
    git(workdirs.cache_path(key.repo), "fsck", "--strict", "--no-dangling", "--no-progress")


# -- nothing moved -----------------------------------------------------------------------------------


def test_unchanged_costs_no_checkpoint_touches_nothing_and_then_no_git_process(
    workdirs: Workdirs, key: Key, wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dirty(wt)
    before = snapshot(wt)
    report = run_sync(workdirs, key, wt)
    assert report.result == "unchanged" and report.summary() == "unchanged" and report.prompt_text() == ""
    assert report.base_sha == git(wt, "rev-parse", "origin/main")
    assert snapshot(wt) == before
    assert workdirs.read_ref(workdirs.cache_path(key.repo), workdirs.checkpoint_ref(key)) is None

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    with monkeypatch.context() as patch:  # the second time: not one git process
        patch.setattr(subprocess, "run", no_process)
        patch.setattr(subprocess, "Popen", no_process)
        again = run_sync(workdirs, key, wt)
    assert again.result == "unchanged"
    assert snapshot(wt) == before
    commit_file(wt, "one.txt", "1\n", "the agent commits")
    commit_file(wt, "two.txt", "2\n", "twice")
    with monkeypatch.context() as patch:  # nor when the agent committed since
        patch.setattr(subprocess, "run", no_process)
        patch.setattr(subprocess, "Popen", no_process)
        assert run_sync(workdirs, key, wt).result == "unchanged"


def test_commits_since_the_last_check_do_not_hide_what_came_in(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    assert run_sync(workdirs, key, wt).result == "unchanged"
    commit_file(wt, "one.txt", "1\n", "the agent commits")
    git(wt, "gc", "--quiet")  # packed: the shortcut cannot read it, git is asked
    commit_file(wt, "two.txt", "2\n", "and again")
    assert run_sync(workdirs, key, wt).result == "unchanged"
    commit_file(origin, "new.txt", "new\n", "main moves")
    assert run_sync(workdirs, key, wt).result == "integrated"
    assert subjects(wt, "HEAD~3..HEAD") == ["and again", "the agent commits", "main moves"]


def test_off_and_missing_base_and_operation_in_progress_are_skipped(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    assert run_sync(workdirs, key, wt, how=SyncHow.OFF).result == "skipped"
    commit_file(origin, "app.py", "print('main')\n", "main moves")
    missing = run_sync(workdirs, key, wt, base_ref="refs/remotes/origin/nope")
    assert missing.result == "skipped" and "base" in (missing.note or "")
    # the agent left a conflicting cherry-pick of its own in the worktree
    git(wt, "checkout", "--quiet", "-b", "side")
    commit_file(wt, "README.md", "side\n", "side")
    git(wt, "checkout", "--quiet", branch_for(key))
    commit_file(wt, "README.md", "mine\n", "mine")
    subprocess.run(["git", "cherry-pick", "side"], cwd=wt, capture_output=True, check=False)
    before = snapshot(wt)
    busy = run_sync(workdirs, key, wt)
    assert busy.result == "skipped" and "cherry-pick is in progress" in (busy.note or "")
    assert snapshot(wt) == before
    git(wt, "cherry-pick", "--abort")
    git(wt, "checkout", "--quiet", "side")
    other = run_sync(workdirs, key, wt)
    assert other.result == "skipped" and "not on" in (other.note or "")


# -- the base moved ----------------------------------------------------------------------------------


def test_base_moved_rebase_keeps_the_uncommitted_work_uncommitted(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    own = commit_file(wt, "own.txt", "mine\n", "agent's own commit")
    make_dirty(wt)
    upstream = commit_file(origin, "shared.txt", SHARED.replace("five", "FIVE"), "main moves")
    before = status(wt)
    report = run_sync(workdirs, key, wt)
    assert report.result == "integrated", report
    assert report.summary() == "rebased onto origin/main (1 commit, 1 file)"
    assert report.incoming == [
        Incoming("base", "origin/main", 1, [f"{upstream[:7]} main moves"], ["shared.txt"])
    ]
    assert report.base_sha == upstream and report.head_after == git(wt, "rev-parse", "HEAD")
    assert git(wt, "rev-parse", "HEAD^") == upstream  # the agent's commit now sits on the new base
    assert subjects(wt, f"{upstream}..HEAD") == ["agent's own commit"]
    assert git(wt, "log", "-1", "--format=%an %ae", "HEAD") == "t t@t"  # its author is kept
    assert git(wt, "rev-parse", "HEAD") != own
    assert (wt / "shared.txt").read_text() == SHARED.replace("five", "FIVE")
    assert (wt / "README.md").read_text() == "hello\nlocal edit\n"
    assert (wt / "notes dir" / "-n ötes.md").read_text() == "my notes\n"
    assert (wt / "debug.log").read_text() == "ignored output\n"
    # still uncommitted: the staged change is now unstaged, the untracked file is still untracked
    assert status(wt) == (before - {"M  app.py"}) | {" M app.py"}
    assert not (Path(git(wt, "rev-parse", "--absolute-git-dir")) / MARKER).exists()
    # the key's checkpoint follows: the uncommitted work on top of the new HEAD
    checkpoint = workdirs.read_ref(workdirs.cache_path(key.repo), workdirs.checkpoint_ref(key))
    assert checkpoint and git(wt, "rev-parse", f"{checkpoint}^") == report.head_after
    assert git(wt, "show", f"{checkpoint}:notes dir/-n ötes.md") == "my notes"
    fsck(workdirs, key)
    assert run_sync(workdirs, key, wt).result == "unchanged"


def test_base_moved_merge_makes_a_merge_commit(workdirs: Workdirs, key: Key, wt: Path, origin: Path) -> None:
    own = commit_file(wt, "own.txt", "mine\n", "agent's own commit")
    make_dirty(wt)
    upstream = commit_file(origin, "shared.txt", SHARED.replace("one", "ONE"), "main moves")
    report = run_sync(workdirs, key, wt, how=SyncHow.MERGE)
    assert report.result == "integrated" and report.summary() == "merged origin/main (1 commit, 1 file)"
    assert git(wt, "rev-parse", "HEAD^1", "HEAD^2").split() == [own, upstream]
    assert git(wt, "log", "-1", "--format=%s", "HEAD") == f"Merge origin/main into {branch_for(key)}"
    assert (wt / "shared.txt").read_text().startswith("ONE\n")
    assert (wt / "README.md").read_text() == "hello\nlocal edit\n"
    assert " M app.py" in status(wt) and "?? notes dir/-n ötes.md" in status(wt)
    assert report.base_sha == upstream
    assert "merged into your branch" in report.prompt_text() and "main moves" in report.prompt_text()
    fsck(workdirs, key)


def test_base_moved_merge_without_own_commits_fast_forwards(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    upstream = commit_file(origin, "new.txt", "new\n", "main moves")
    report = run_sync(workdirs, key, wt, how=SyncHow.MERGE)
    assert report.result == "integrated" and git(wt, "rev-parse", "HEAD") == upstream
    assert (wt / "new.txt").read_text() == "new\n" and status(wt) == set()


def test_an_uncommitted_edit_follows_an_upstream_rename(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    (wt / "shared.txt").write_text(SHARED.replace("three", "THREE"))
    git(origin, "mv", "shared.txt", "moved.txt")
    git(origin, "commit", "--quiet", "-m", "rename")
    report = run_sync(workdirs, key, wt)
    assert report.result == "integrated", report
    assert not (wt / "shared.txt").exists()
    assert (wt / "moved.txt").read_text() == SHARED.replace("three", "THREE")
    assert status(wt) == {" M moved.txt"}


def test_many_incoming_commits_are_counted_and_listed_newest_first_up_to_twenty(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    for i in range(25):
        commit_file(origin, f"f{i:02}.txt", f"{i}\n", f"upstream {i:02}")
    report = run_sync(workdirs, key, wt, how=SyncHow.MERGE)
    (came,) = report.incoming
    assert came.count == 25 and len(came.commits) == 20 and len(came.files) == 25
    assert came.commits[0].endswith(" upstream 24") and came.commits[-1].endswith(" upstream 05")
    assert "(and 5 more)" in report.prompt_text()


def test_a_branch_with_a_history_of_its_own_is_replayed_from_its_root(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    """No common history with the base (the root commit is picked too): as git rebase does."""
    git(wt, "checkout", "--quiet", "--orphan", "fresh")
    git(wt, "rm", "-r", "--quiet", "--force", ".")
    commit_file(wt, "solo.txt", "alone\n", "a root of its own")
    commit_file(wt, "solo2.txt", "again\n", "and a child")
    git(wt, "branch", "--force", branch_for(key), "fresh")
    git(wt, "checkout", "--quiet", branch_for(key))
    upstream = commit_file(origin, "new.txt", "new\n", "main moves")
    report = run_sync(workdirs, key, wt)
    assert report.result == "integrated", report
    assert subjects(wt, f"{upstream}..HEAD") == ["and a child", "a root of its own"]
    assert (wt / "solo.txt").read_text() == "alone\n" and (wt / "app.py").read_text() == "print(1)\n"
    fsck(workdirs, key)


# -- people pushed to the key's branch ---------------------------------------------------------------


@pytest.mark.parametrize("how", [SyncHow.MERGE, SyncHow.REBASE])
def test_people_pushed_to_the_branch(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, tmp_path: Path, how: SyncHow
) -> None:
    branch = branch_for(key)
    commit_file(wt, "own.txt", "first\n", "agent one")
    push_branch(wt, origin, branch)
    pushed = people_push(origin, tmp_path, branch, "review.txt", "fix this\n", "review note")
    local = commit_file(wt, "own2.txt", "second\n", "agent two")
    (wt / "own.txt").write_text("first\nuncommitted\n")
    report = run_sync(workdirs, key, wt, how=how)
    assert report.result == "integrated", report
    assert [i.source for i in report.incoming] == ["branch"]
    assert report.incoming[0].ref == f"origin/{branch}" and report.incoming[0].files == ["review.txt"]
    assert (wt / "review.txt").read_text() == "fix this\n" and (wt / "own2.txt").read_text() == "second\n"
    assert (wt / "own.txt").read_text() == "first\nuncommitted\n" and status(wt) == {" M own.txt"}
    if how is SyncHow.MERGE:
        assert git(wt, "rev-parse", "HEAD^1", "HEAD^2").split() == [local, pushed]
    else:
        assert git(wt, "rev-parse", "HEAD^") == pushed
        assert subjects(wt, "HEAD~3..HEAD") == ["agent two", "review note", "agent one"]
    fsck(workdirs, key)
    assert run_sync(workdirs, key, wt, how=how).result == "unchanged"


def test_rebase_onto_a_pushed_branch_behind_the_base_copies_no_base_commit(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, tmp_path: Path
) -> None:
    """The branch was pushed before the base moved; the agent's worktree has since been rebased onto
    the new base. The base's commits must not be replayed onto the (older) remote branch."""
    branch = branch_for(key)
    commit_file(wt, "own.txt", "first\n", "agent one")
    push_branch(wt, origin, branch)
    main1 = commit_file(origin, "m1.txt", "m1\n", "main one")
    assert run_sync(workdirs, key, wt).result == "integrated"  # rebased onto main one
    people_push(origin, tmp_path, branch, "review.txt", "fix\n", "review note")
    main2 = commit_file(origin, "m2.txt", "m2\n", "main two")
    report = run_sync(workdirs, key, wt, base_sha=main1)
    assert report.result == "integrated", report
    assert subjects(wt, f"{main2}..HEAD") == ["review note", "agent one"]
    assert git(wt, "rev-list", "--count", "HEAD") == str(int(git(wt, "rev-list", "--count", main2)) + 2)
    assert report.base_sha == main2


# -- conflicts, stop: exactly as it was ----------------------------------------------------------------


def hostile_conflict(wt: Path, origin: Path) -> None:
    """Files with hostile names, changed one way on main and another way in the agent's commit."""
    for name in HOSTILE:
        commit_file(origin, name, "base\n", f"add {name}")
    git(wt, "fetch", "--quiet", str(origin), "main")  # not needed by sync: only to branch from it
    git(wt, "reset", "--quiet", "--hard", "FETCH_HEAD")
    for name in HOSTILE:
        (wt / name).write_text("agent\n")
    git(wt, "add", "--", *HOSTILE)
    git(wt, "commit", "--quiet", "-m", "agent edits")
    for name in HOSTILE:
        (origin / name).write_text("upstream\n")
    git(origin, "commit", "--quiet", "-am", "upstream edits")


@pytest.mark.parametrize("how", [SyncHow.MERGE, SyncHow.REBASE])
def test_conflict_in_history_with_stop_leaves_everything_exactly_as_it_was(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, how: SyncHow
) -> None:
    hostile_conflict(wt, origin)
    make_dirty(wt)
    before = snapshot(wt)
    report = run_sync(workdirs, key, wt, how=how)
    assert report.result == "conflict" and report.conflict_in == "base" and not report.left_for_agent
    assert report.conflicts == sorted(HOSTILE)
    assert report.summary() == f"conflict in {', '.join(sorted(HOSTILE))} (with origin/main)"
    assert "NOT integrated" in report.prompt_text() and "with origin/main" in report.prompt_text()
    assert snapshot(wt) == before


@pytest.mark.parametrize("how", [SyncHow.MERGE, SyncHow.REBASE])
def test_conflict_only_with_uncommitted_work_with_stop_leaves_everything(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, how: SyncHow
) -> None:
    commit_file(wt, "own.txt", "mine\n", "agent's own commit")
    make_dirty(wt)  # README.md: "hello\nlocal edit\n", uncommitted
    commit_file(origin, "README.md", "hello\nupstream edit\n", "main edits the readme")
    before = snapshot(wt)
    report = run_sync(workdirs, key, wt, how=how)
    assert report.result == "conflict" and report.conflict_in == "uncommitted"
    assert report.conflicts == ["README.md"] and report.summary().endswith("(with the uncommitted work)")
    assert snapshot(wt) == before


# -- conflicts for the agent ---------------------------------------------------------------------------


def test_conflict_for_the_agent_in_a_merge_leaves_the_merge_in_progress(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    hostile_conflict(wt, origin)
    make_dirty(wt)
    report = run_sync(workdirs, key, wt, how=SyncHow.MERGE, on_conflict=OnConflict.AGENT)
    assert report.result == "conflict" and report.left_for_agent and report.in_progress == "merge"
    assert report.conflicts == sorted(HOSTILE) and report.conflict_in == "base"
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    assert (gitdir / "MERGE_HEAD").read_text().strip() == git(origin, "rev-parse", "HEAD")
    assert not (gitdir / MARKER).exists()
    for name in HOSTILE:
        text = (wt / name).read_text()
        assert "<<<<<<< HEAD\nagent\n=======\nupstream\n>>>>>>> refs/remotes/origin/main" in text
    # nothing of the uncommitted work is lost: it is a commit on the branch, and still in the files
    assert report.wip_commit and git(wt, "rev-parse", "HEAD") == report.wip_commit
    assert git(wt, "log", "-1", "--format=%s", "HEAD").startswith("baton: uncommitted work before syncing")
    assert git(wt, "show", f"{report.wip_commit}:notes dir/-n ötes.md") == "my notes"
    assert (wt / "README.md").read_text() == "hello\nlocal edit\n"
    assert (wt / "debug.log").read_text() == "ignored output\n"
    text = report.prompt_text()
    assert "git commit --no-edit" in text and "committed on your branch" in text
    # an agent that cannot commit (below full access) is asked only to resolve the files
    below = report.prompt_text(commit=False)
    assert "do not run git add, git commit" in below and "git commit --no-edit" not in below
    # the agent finishes it
    for name in HOSTILE:
        (wt / name).write_text("resolved\n")
    git(wt, "add", "--", *HOSTILE)
    git(wt, "commit", "--quiet", "--no-edit")
    assert git(wt, "rev-parse", "HEAD^2") == git(origin, "rev-parse", "HEAD")
    assert run_sync(workdirs, key, wt, how=SyncHow.MERGE).result == "unchanged"


def test_conflict_for_the_agent_in_a_rebase_leaves_the_rebase_stopped(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    hostile_conflict(wt, origin)
    commit_file(wt, "later.txt", "later\n", "agent later")
    make_dirty(wt)
    upstream = git(origin, "rev-parse", "HEAD")
    report = run_sync(workdirs, key, wt, how=SyncHow.REBASE, on_conflict=OnConflict.AGENT)
    assert report.result == "conflict" and report.left_for_agent and report.in_progress == "rebase"
    assert report.conflicts == sorted(HOSTILE) and report.base_sha == upstream
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    assert (gitdir / "rebase-merge").is_dir() and not (gitdir / MARKER).exists()
    assert git(wt, "rev-parse", "HEAD") == upstream  # stopped at the first commit, on the new base
    assert "<<<<<<< " in (wt / HOSTILE[0]).read_text()
    assert "git rebase --continue" in report.prompt_text()
    for name in HOSTILE:
        (wt / name).write_text("resolved\n")
    git(wt, "add", "--", *HOSTILE)
    env = {**os.environ, "GIT_EDITOR": "true"}
    subprocess.run(["git", "rebase", "--continue"], cwd=wt, env=env, check=True, capture_output=True)
    assert subjects(wt, f"{upstream}..HEAD")[1:] == ["agent later", "agent edits"]
    assert subjects(wt, f"{upstream}..HEAD")[0].startswith("baton: uncommitted work")
    assert (wt / "README.md").read_text() == "hello\nlocal edit\n"
    assert (wt / "notes dir" / "-n ötes.md").read_text() == "my notes\n"
    assert status(wt) == set()


def test_conflict_for_the_agent_only_in_uncommitted_work_leaves_markers_and_no_operation(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path
) -> None:
    make_dirty(wt)
    upstream = commit_file(origin, "README.md", "hello\nupstream edit\n", "main edits the readme")
    report = run_sync(workdirs, key, wt, how=SyncHow.MERGE, on_conflict=OnConflict.AGENT)
    assert report.result == "conflict" and report.conflict_in == "uncommitted"
    assert report.left_for_agent and report.in_progress is None and report.conflicts == ["README.md"]
    assert git(wt, "rev-parse", "HEAD") == upstream
    text = (wt / "README.md").read_text()
    assert (
        text == "hello\n<<<<<<< SYNCED_HEAD\nupstream edit\n=======\nlocal edit\n>>>>>>> UNCOMMITTED_HEAD\n"
    )
    assert status(wt) == {
        " M README.md",
        " M app.py",
        " M shared.txt",
        "?? notes dir/-n ötes.md",
        "?? link to readme",
    }
    assert os.readlink(wt / "link to readme") == "README.md" and os.access(wt / "shared.txt", os.X_OK)
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    assert not [n for n in os.listdir(gitdir) if n in IN_PROGRESS or n in LABELS]
    assert "UNCOMMITTED_HEAD" in report.prompt_text()


# -- stacked threads and squash merges -----------------------------------------------------------------


def test_stacked_base_branch_moved_rebases_onto_it(workdirs: Workdirs, origin: Path) -> None:
    key_a = make_key("fake", str(origin), "A", AGENTS)
    key_b = make_key("fake", str(origin), "B", AGENTS)
    wt_a = workdirs.prepare_worktree(key_a, branch_for(key_a), None).path
    commit_file(wt_a, "a.txt", "a1\n", "a one")
    wt_b = workdirs.prepare_worktree(key_b, branch_for(key_b), branch_for(key_a)).path
    commit_file(wt_b, "b.txt", "b1\n", "b one")
    a2 = commit_file(wt_a, "a.txt", "a2\n", "a two")
    base_ref = f"refs/heads/{branch_for(key_a)}"
    report = run_sync(workdirs, key_b, wt_b, base_ref=base_ref)
    assert report.result == "integrated" and report.incoming[0].ref == branch_for(key_a)
    assert git(wt_b, "rev-parse", "HEAD^") == a2 and subjects(wt_b, f"{a2}..HEAD") == ["b one"]
    assert report.base_sha == a2


def test_base_sha_after_a_squash_merge_carries_only_the_own_commits(workdirs: Workdirs, origin: Path) -> None:
    """B was stacked on A; A was squash-merged into main. Rebasing B onto main from A's old tip carries
    only B's commits; from the merge-base it would replay A's commits onto their own squash."""
    key_a = make_key("fake", str(origin), "A", AGENTS)
    key_b = make_key("fake", str(origin), "B", AGENTS)
    wt_a = workdirs.prepare_worktree(key_a, branch_for(key_a), None).path
    commit_file(wt_a, "feature.txt", "x\n", "a one")
    a_tip = commit_file(wt_a, "feature.txt", "y\n", "a two")
    wt_b = workdirs.prepare_worktree(key_b, branch_for(key_b), branch_for(key_a)).path
    commit_file(wt_b, "b.txt", "b1\n", "b one")
    squash = commit_file(origin, "feature.txt", "y\n", "A (squashed)")
    main = commit_file(origin, "other.txt", "o\n", "main moves on")
    before = snapshot(wt_b)
    without = run_sync(workdirs, key_b, wt_b)
    assert without.result == "conflict" and without.conflicts == ["feature.txt"]  # a one vs the squash
    assert snapshot(wt_b) == before
    report = run_sync(workdirs, key_b, wt_b, base_sha=a_tip)
    assert report.result == "integrated", report
    assert subjects(wt_b, f"{main}..HEAD") == ["b one"] and git(wt_b, "rev-parse", "HEAD^") == main
    assert git(wt_b, "merge-base", "--is-ancestor", squash, "HEAD") == ""
    assert (wt_b / "feature.txt").read_text() == "y\n" and report.base_sha == main


# -- interrupted syncs ---------------------------------------------------------------------------------


def kill_at(monkeypatch: pytest.MonkeyPatch, name: str, after: bool = True) -> None:
    """Make ``<name>`` as :mod:`baton.sync.apply` calls it end the sync like a kill -9, after it ran
    (``after``) or instead of running."""
    real = getattr(baton.sync.apply, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        if after:
            real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(baton.sync.apply, name, dying)


@pytest.mark.parametrize(
    ("how", "on_conflict", "where", "left"),
    [
        (SyncHow.MERGE, OnConflict.AGENT, "finish", "MERGE_HEAD"),  # a merge stopped, marker still there
        (SyncHow.REBASE, OnConflict.AGENT, "finish", "rebase-merge"),  # a rebase stopped, marker there
        (SyncHow.REBASE, OnConflict.AGENT, "commit_wip", None),  # the uncommitted work just committed
        (SyncHow.REBASE, OnConflict.STOP, "checkout_changes", None),  # files written, index not yet
    ],
)
def test_recover_after_a_kill_restores_everything_exactly(
    workdirs: Workdirs,
    key: Key,
    wt: Path,
    origin: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: SyncHow,
    on_conflict: OnConflict,
    where: str,
    left: str | None,
) -> None:
    if where == "checkout_changes":
        commit_file(wt, "own.txt", "mine\n", "agent's own commit")
        commit_file(origin, "shared.txt", SHARED + "six\n", "main moves")
        commit_file(origin, "new dir/new file.txt", "new\n", "main adds a file")
    else:
        hostile_conflict(wt, origin)
    make_dirty(wt)
    before = snapshot(wt)
    with monkeypatch.context() as patch:
        kill_at(patch, where, after=where != "finish")
        with pytest.raises(Killed):
            run_sync(workdirs, key, wt, how=how, on_conflict=on_conflict)
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    assert (gitdir / MARKER).exists()
    if left:
        assert (gitdir / left).exists()
    assert snapshot(wt) != before
    note = recover_interrupted_sync(workdirs, key, wt)
    assert note and "interrupted sync was undone" in note
    assert same_after_rewrite(snapshot(wt), before)
    assert recover_interrupted_sync(workdirs, key, wt) is None
    # the key's checkpoint ref names the worktree's state again (checkpoint finds it unchanged)
    cache = workdirs.cache_path(key.repo)
    kept = workdirs.read_ref(cache, workdirs.checkpoint_ref(key))
    assert kept and workdirs.checkpoint(key, wt) == kept


def test_sync_recovers_an_interrupted_sync_first(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dirty(wt)
    commit_file(origin, "new.txt", "new\n", "main moves")
    with monkeypatch.context() as patch:
        kill_at(patch, "checkout_changes")
        with pytest.raises(Killed):
            run_sync(workdirs, key, wt)
    report = run_sync(workdirs, key, wt)
    assert report.result == "integrated" and "interrupted sync was undone" in (report.note or "")
    assert (wt / "new.txt").exists() and (wt / "README.md").read_text() == "hello\nlocal edit\n"


def test_a_real_kill_9_mid_sync_is_recovered(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, tmp_path: Path
) -> None:
    """A separate process syncs and is SIGKILLed while the new files are half written."""
    commit_file(wt, "own.txt", "mine\n", "agent's own commit")
    for i in range(30):
        (origin / f"gen{i}.txt").write_text(f"{i}\n")
    git(origin, "add", ".")
    git(origin, "commit", "--quiet", "-m", "main adds files")
    make_dirty(wt)
    before = snapshot(wt)
    ready = tmp_path / "ready"
    script = f"""
import sys, time
from pathlib import Path
import baton.sync.engine as s
import baton.sync.apply
from baton.agents import AGENTS
from baton.keys import make_key
from baton.settings import load_settings
from baton.workspace.workdirs import Workdirs, branch_for
real = baton.sync.apply.checkout_changes
def slow(worktree, old, new):
    real(worktree, old, new)
    Path({str(ready)!r}).write_text("x")
    time.sleep(60)
baton.sync.apply.checkout_changes = slow
workdirs = Workdirs(load_settings(overrides={{"home": {str(workdirs.home)!r}}}, environ={{}}))
key = make_key("fake", {str(origin)!r}, "issue-1", AGENTS)
how, stop = s.SyncHow.REBASE, s.OnConflict.STOP
s.sync_worktree(workdirs, key, Path({str(wt)!r}), branch_for(key), None, None, how, stop)
"""
    child = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        wait_for(lambda: ready.exists() or child.poll() is not None, timeout=60)
        assert child.poll() is None, "the sync process ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    assert (wt / "gen0.txt").exists() and snapshot(wt) != before
    assert recover_interrupted_sync(workdirs, key, wt)
    assert same_after_rewrite(snapshot(wt), before)


def test_a_stale_marker_is_dropped_without_touching_the_worktree(
    workdirs: Workdirs, key: Key, wt: Path
) -> None:
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    old = git(wt, "rev-parse", "HEAD")
    commit_file(wt, "later.txt", "later\n", "a later turn")
    make_dirty(wt)
    marker = {"version": 1, "branch": branch_for(key), "head_before": old, "checkpoint": None, "targets": []}
    (gitdir / MARKER).write_text(json.dumps(marker))
    before = snapshot(wt)
    note = recover_interrupted_sync(workdirs, key, wt)
    assert note and "stale" in note
    before["state"] = []
    assert snapshot(wt) == before


def test_a_malformed_marker_is_removed_and_nothing_is_touched(workdirs: Workdirs, key: Key, wt: Path) -> None:
    make_dirty(wt)
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    (gitdir / MARKER).write_text("{not json")
    before = snapshot(wt)
    note = recover_interrupted_sync(workdirs, key, wt)
    assert note and "malformed" in note and not (gitdir / MARKER).exists()
    assert snapshot(wt) == {**before, "state": []}


def test_a_git_failure_while_applying_puts_everything_back_and_raises(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dirty(wt)
    commit_file(origin, "new.txt", "new\n", "main moves")
    before = snapshot(wt)
    real = baton.workspace.gitcmd.checkout_changes
    calls: list[str] = []

    def failing(worktree: WorktreeGit, old: str, new: str) -> None:
        real(worktree, old, new)
        calls.append(new)
        if len(calls) == 1:  # the sync's; putting things back works
            raise GitError("git restore failed: disk on fire")

    monkeypatch.setattr(baton.sync.apply, "checkout_changes", failing)
    with pytest.raises(GitError, match="disk on fire"):
        run_sync(workdirs, key, wt)
    assert same_after_rewrite(snapshot(wt), before)


# -- remotes -------------------------------------------------------------------------------------------


def test_fetches_only_when_the_local_remote_moved(
    workdirs: Workdirs, key: Key, wt: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[list[str]] = []
    real = baton.workspace.gitcmd.run_git

    def counting(args: list[str], *rest: Any, **kwargs: Any) -> str:
        if "fetch" in args:
            fetches.append(args)
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(baton.sync.fetch, "run_git", counting)
    assert run_sync(workdirs, key, wt).result == "unchanged" and fetches == []
    commit_file(origin, "new.txt", "new\n", "main moves")
    assert run_sync(workdirs, key, wt).result == "integrated" and len(fetches) == 1
    assert "+refs/heads/main*:refs/remotes/origin/main*" in fetches[0]
    assert run_sync(workdirs, key, wt).result == "unchanged" and len(fetches) == 1
    git(origin, "pack-refs", "--all")  # packed refs are read as well
    assert run_sync(workdirs, key, wt).result == "unchanged" and len(fetches) == 1


def test_sync_over_http_with_a_partial_clone(
    workdirs: Workdirs, tmp_path: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "t0ken-for-sync"
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(origin), "api.git")
    git(root / "api.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setenv("BATON_GIT_TOKEN", token)
    with GitHttpServer(root=root, token=token) as server:
        key = make_key("fake", server.url("api.git"), "issue-1", AGENTS)
        wt = workdirs.prepare_worktree(key, branch_for(key), None).path
        commit_file(wt, "shared.txt", SHARED.replace("one", "ONE"), "agent edits")
        (wt / "README.md").write_text("hello\nlocal\n")
        rejected = server.rejected
        assert run_sync(workdirs, key, wt).result == "unchanged"
        assert server.rejected == rejected  # the fetch sent the token up front (no 401 round trip)
        people = tmp_path / "people"
        git(tmp_path, "clone", "--quiet", str(root / "api.git"), "people")
        commit_file(people, "shared.txt", SHARED.replace("five", "FIVE"), "main moves")
        commit_file(people, "added/new file.txt", "new\n", "main adds a file")  # only written, never merged
        git(people, "push", "--quiet", "origin", "main")
        report = run_sync(workdirs, key, wt, how=SyncHow.MERGE)
    assert report.result == "integrated", report
    assert (wt / "shared.txt").read_text() == SHARED.replace("one", "ONE").replace("five", "FIVE")
    assert (wt / "README.md").read_text() == "hello\nlocal\n"
    assert (wt / "added" / "new file.txt").read_text() == "new\n"


# -- the report ----------------------------------------------------------------------------------------


def test_report_json_round_trip_and_tolerance() -> None:
    report = SyncReport(
        "rebase",
        "conflict",
        [Incoming("base", "origin/main", 3, ["abc1234 x"], ["a.txt"])],
        ["a.txt"],
        conflict_in="base",
        left_for_agent=True,
        in_progress="rebase",
        base_sha="b" * 40,
    )
    assert SyncReport.from_json(json.loads(json.dumps(report.to_json()))) == report
    bad: Any
    for bad in (
        None,
        [],
        "x",
        {"how": 1, "result": "x"},
        {"how": "merge"},
        {**report.to_json(), "conflicts": [1]},
    ):
        assert SyncReport.from_json(bad) is None
    assert SyncReport.from_json({**report.to_json(), "incoming": [{"source": "base"}]}) is None
    assert SyncReport.from_json({"how": "merge", "result": "unchanged"}) == SyncReport("merge", "unchanged")
    assert report.summary() == "conflict in a.txt (with origin/main; left for the agent)"
    assert "abc1234 x" in report.prompt_text() and "rebase --continue" in report.prompt_text()
