"""Finding and removing a worktree's rebuildable artefacts on a real git repository: only what an
ignore rule matches itself and nothing tracked lies under; hostile names are names; a removal never
follows a link, at the artefact or above it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from baton.workspace import artefacts
from baton.workspace.artefacts import Artefact
from baton.workspace.du import measure
from baton.workspace.gitcmd import WorktreeGit
from tests.conftest import git, make_repo

KINDS = frozenset({"node_modules", "__pycache__", "dist", "build", "target", "venv"})


@pytest.fixture
def repo(tmp_path: Path) -> WorktreeGit:
    path = make_repo(tmp_path / "r", {".gitignore": "node_modules\n__pycache__/\ndist/\nbuild/\n*.o\n"})
    (path / "build").mkdir()
    (path / "build" / "kept.txt").write_text("tracked\n")
    git(path, "add", "-f", "build/kept.txt")
    git(path, "commit", "-q", "-m", "tracked under an ignored dir")
    return WorktreeGit(path, path / ".git", path / ".git")


def put(root: Path, *files: str) -> None:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")


def test_only_directories_an_ignore_rule_matches(repo: WorktreeGit) -> None:
    root = repo.path
    put(root, "node_modules/a/node_modules/b.js", "src/pkg/__pycache__/m.pyc", "dist/w.whl", "build/x.o")
    put(root, "target/a.o", "target/b.o")  # untracked, every file ignored: the directory itself is not
    put(root, "venv/.gitignore", "venv/lib.py")
    (root / "venv/.gitignore").write_text("*\n")  # what newer venvs write: their contents ignored, not them
    put(root, "new/node_modules/c.js")  # an ignored directory inside an untracked one
    put(root, "build2/node_modules")  # a regular file with a kind's name
    (root / "build2/node_modules").write_text("a file\n")
    put(root, ":x/node_modules/f", "a*b/node_modules/f", "sp ace/dist/f")  # pathspec magic and globs
    found = artefacts.find(repo, KINDS)
    expected = [":x/node_modules", "a*b/node_modules", "dist", "new/node_modules", "node_modules"]
    assert [a.path for a in found] == sorted([*expected, "sp ace/dist", "src/pkg/__pycache__"])
    assert not any(a.link for a in found)
    assert {a.kind for a in found} == {"node_modules", "dist", "__pycache__"}
    assert artefacts.find(repo, frozenset()) == []


def test_a_tracked_file_below_keeps_its_directory(repo: WorktreeGit) -> None:
    put(repo.path, "dist/out.whl")
    git(repo.path, "add", "-f", "dist/out.whl")  # force-added, not committed: tracked all the same
    assert "dist" not in [a.path for a in artefacts.find(repo, KINDS)]


def test_a_link_is_removed_as_a_link(repo: WorktreeGit, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    put(outside, "precious/keep.txt")
    (repo.path / "node_modules").symlink_to(outside, target_is_directory=True)
    [found] = artefacts.find(repo, KINDS)
    assert found == Artefact("node_modules", "node_modules", link=True)
    assert artefacts.size(repo.path, found) == os.lstat(repo.path / "node_modules").st_blocks * 512
    assert artefacts.remove(repo.path, found)
    assert not os.path.lexists(repo.path / "node_modules")
    assert (outside / "precious/keep.txt").is_file()


def test_a_parent_swapped_for_a_link_stops_the_removal(repo: WorktreeGit, tmp_path: Path) -> None:
    put(repo.path, "web/node_modules/m.js")
    [found] = artefacts.find(repo, KINDS)
    outside = tmp_path / "outside"
    put(outside, "node_modules/precious.js")
    os.rename(repo.path / "web", tmp_path / "moved")
    (repo.path / "web").symlink_to(outside, target_is_directory=True)  # after the listing, before removal
    assert artefacts.size(repo.path, found) == 0
    assert not artefacts.remove(repo.path, found)
    assert (outside / "node_modules/precious.js").is_file()


def test_removal_frees_what_size_said(repo: WorktreeGit) -> None:
    put(repo.path, *(f"node_modules/p{i}/index.js" for i in range(50)))
    [found] = artefacts.find(repo, KINDS)
    before = measure(repo.path).allocated
    size = artefacts.size(repo.path, found)
    assert size == measure(repo.path / "node_modules").allocated > 50 * 4096
    assert artefacts.remove(repo.path, found) and not artefacts.remove(repo.path, found)
    assert measure(repo.path).allocated == before - size


def test_marks_split_one_walk(repo: WorktreeGit) -> None:
    put(repo.path, "node_modules/a.js", "src/pkg/__pycache__/m.pyc")
    marks = dict.fromkeys((a.path for a in artefacts.find(repo, KINDS)), 0)
    total = measure(repo.path, marks=marks).allocated
    assert marks == {p: measure(repo.path / p).allocated for p in marks}
    assert total == measure(repo.path).allocated > sum(marks.values())


def test_each_check_holds_alone(repo: WorktreeGit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three questions to git overlap on purpose; each is enough alone where git's listing is
    stale or odd (a file tracked between the listing and the check, a listing that did not descend)."""
    put(repo.path, "target/a.o", "dist/new.whl")
    git(repo.path, "add", "-f", "dist/new.whl")
    assert artefacts.find(repo, KINDS) == []
    monkeypatch.setattr(artefacts, "_ignored", lambda wt, paths: set(paths))  # every candidate "ignored"
    assert artefacts.find(repo, KINDS) == [], "the listing descended into target/: not itself ignored"
    monkeypatch.undo()
    monkeypatch.setattr(artefacts, "_listed", lambda wt: ["target/"])  # as if git had stopped there
    assert artefacts.find(repo, KINDS) == [], "no ignore rule matches target/ itself"
    monkeypatch.setattr(artefacts, "_listed", lambda wt: ["dist/"])
    monkeypatch.setattr(artefacts, "_ignored", lambda wt, paths: set(paths))
    assert artefacts.find(repo, KINDS) == [], "dist/ holds a tracked file"
    monkeypatch.setattr(artefacts, "_tracked", lambda wt, paths: [])
    assert [a.path for a in artefacts.find(repo, KINDS)] == ["dist"], "only the tracked check kept dist/"


def test_a_fifo_for_a_gitignore_does_not_hang(repo: WorktreeGit, monkeypatch: pytest.MonkeyPatch) -> None:
    """git opens every .gitignore it meets and would wait on a FIFO forever: the answer has a limit."""
    put(repo.path, "node_modules/a.js")
    (repo.path / "trap").mkdir()
    os.mkfifo(repo.path / "trap" / ".gitignore")
    monkeypatch.setattr(artefacts, "GIT_TIMEOUT", 1.0)
    started = time.monotonic()
    assert artefacts.find(repo, KINDS) == []
    assert time.monotonic() - started < 10
