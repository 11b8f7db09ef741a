"""Taking what the setup made out of a branch's new commits (:mod:`baton.workspace.scrub`), on real
git: each commit keeps its author, dates and message, the same commits always become the same ones, a
commit the forge already has is kept, and the files stay in the worktree, untracked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from baton.workspace.gitcmd import WorktreeGit
from baton.workspace.scrub import scrub
from tests.conftest import git, make_repo

WHO = {
    "GIT_AUTHOR_NAME": "Ann Agent",
    "GIT_AUTHOR_EMAIL": "ann@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0200",
    "GIT_COMMITTER_NAME": "Carl Committer",
    "GIT_COMMITTER_EMAIL": "carl@example.com",
    "GIT_COMMITTER_DATE": "1700000100 -0500",
}


def commit(repo: Path, message: str, *paths: str) -> None:
    git(repo, "add", "-f", *paths)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, env={**os.environ, **WHO}, check=True)


def branch_with_results(path: Path) -> tuple[Path, str]:
    repo = make_repo(path, {"README.md": "hi\n"})
    base = git(repo, "rev-parse", "HEAD")
    (repo / ".venv").mkdir()
    (repo / ".venv/pyvenv.cfg").write_text("home = /somewhere\n")
    (repo / "a.txt").write_text("a\n")
    commit(repo, "first\n\nwith a body, é", ".venv", "a.txt")
    (repo / "b.txt").write_text("b\n")
    commit(repo, "second", "b.txt")
    return repo, base


def wt_of(repo: Path) -> WorktreeGit:
    return WorktreeGit(repo, repo / ".git", repo / ".git")


def test_the_new_commits_lose_the_results_and_keep_the_rest(tmp_path: Path) -> None:
    repo, base = branch_with_results(tmp_path / "r")
    twin = tmp_path / "twin"
    shutil.copytree(repo, twin, symlinks=True)
    head = git(repo, "rev-parse", "HEAD")
    before = git(repo, "log", "--format=%an|%ae|%ad|%cn|%ce|%cd|%B", "--date=raw", f"{base}..HEAD")
    done = scrub(wt_of(repo), dict(os.environ), head, [base], [".venv", "node_modules"])
    assert done is not None and done.rewritten == 2 and done.paths == (".venv",)
    assert git(repo, "rev-parse", "HEAD") == done.head != head
    assert git(repo, "ls-tree", "-r", "--name-only", "HEAD").split() == ["README.md", "a.txt", "b.txt"]
    after = git(repo, "log", "--format=%an|%ae|%ad|%cn|%ce|%cd|%B", "--date=raw", f"{base}..HEAD")
    assert after == before  # authors, committers, dates and messages kept
    assert (repo / ".venv/pyvenv.cfg").read_text() == "home = /somewhere\n"  # the files stay
    assert git(repo, "status", "--porcelain") == "?? .venv/"  # untracked again
    again = scrub(wt_of(twin), dict(os.environ), head, [base], [".venv"])
    assert again is not None and again.head == done.head  # the same commits, the same rewrite
    assert scrub(wt_of(repo), dict(os.environ), done.head, [base], [".venv"]) is None  # nothing left


def test_commits_the_forge_has_are_never_rewritten(tmp_path: Path) -> None:
    repo, _base = branch_with_results(tmp_path / "r")
    head = git(repo, "rev-parse", "HEAD")
    first = git(repo, "rev-parse", "HEAD~1")
    assert scrub(wt_of(repo), dict(os.environ), head, [first], [".venv"]) is None
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_result_named_like_an_option_or_a_pattern_is_a_literal_path(tmp_path: Path) -> None:
    repo, base = branch_with_results(tmp_path / "r")
    head = git(repo, "rev-parse", "HEAD")
    assert scrub(wt_of(repo), dict(os.environ), head, [base], ["--all", "*.txt", "/etc", ""]) is None
    assert git(repo, "rev-parse", "HEAD") == head
