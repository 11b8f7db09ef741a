"""Reflinking the files a git index lists, the index carried over in the same pass, on a real XFS loop
volume (root): git trusts the result without re-reading a file; paths that could leave the target
are refused before anything is written there."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.workspace.cow import gitindex, reflink
from baton.workspace.cow.clonetree import clone
from tests.conftest import git, make_repo
from tests.xfs import per_test_dir, xfs_volume

FILES = {f"d{i % 4}/sub{i % 3}/f{i}.txt": f"file {i}\n" * (300 * i) for i in range(1, 25)}


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with xfs_volume(tmp_path_factory.mktemp("clonetree")) as mount:
        yield mount


@pytest.fixture
def where(volume: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from per_test_dir(volume, request)


def checkout(where: Path, version: int) -> tuple[Path, Path, bytes]:
    """A repository with every kind of entry, and a checkout of it as the pristine ones are made:
    ``read-tree -u`` into its own directory, with its own index of the given version."""
    repo = make_repo(where / "repo", {**FILES, "empty": "", "run.sh": "#!/bin/sh\n"})
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("d1/sub1/f1.txt", repo / "link")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "add", ".")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/sub")  # a submodule
    git(repo, "commit", "-q", "-m", "every kind")
    tree, index = where / "tree", where / "index"
    tree.mkdir()
    env = {**os.environ, "GIT_INDEX_FILE": str(index), "GIT_INDEX_VERSION": str(version)}
    argv = [
        "git",
        "--git-dir",
        str(repo / ".git"),
        "--work-tree",
        str(tree),
        "read-tree",
        "--reset",
        "-u",
        "HEAD",
    ]
    subprocess.run(argv, env=env, check=True)
    return repo, tree, index.read_bytes()


def in_git(repo: Path, tree: Path, index: bytes, *args: str) -> str:
    (tree.parent / "copy.index").write_bytes(index)
    env = {**os.environ, "GIT_INDEX_FILE": str(tree.parent / "copy.index")}
    argv = ["git", "--git-dir", str(repo / ".git"), "--work-tree", str(tree), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


def shared(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(n for _, n, flags in reflink.extents(fd) if flags & reflink.EXTENT_SHARED)
    finally:
        os.close(fd)


@pytest.mark.parametrize("version", [2, 4])
def test_every_file_is_reflinked_and_git_trusts_the_index(where: Path, version: int) -> None:
    repo, tree, index = checkout(where, version)
    target = where / "copy"
    target.mkdir()
    data, missed = clone(tree, target, index, 20)
    assert missed == 1  # the gitlink: git never stats a submodule's directory for its content
    assert data[:8] == index[:8] and len(data) == len(index)
    assert in_git(repo, target, data, "diff-files", "--name-only") == ""
    for name in FILES:
        assert (target / name).read_bytes() == (tree / name).read_bytes()
        assert shared(target / name) == os.stat(target / name).st_blocks * 512 > 0
        assert os.stat(target / name).st_ino != os.stat(tree / name).st_ino
    assert os.access(target / "run.sh", os.X_OK) and not os.access(target / "empty", os.X_OK)
    assert (target / "empty").read_bytes() == b""
    assert os.readlink(target / "link") == "d1/sub1/f1.txt"
    assert (target / "vendor" / "sub").is_dir() and not os.listdir(target / "vendor" / "sub")
    debug = in_git(repo, target, data, "ls-files", "--debug", "--", "d2/sub2/f2.txt")
    assert f"ino: {os.stat(target / 'd2/sub2/f2.txt').st_ino}" in debug
    # with the pristine's own index, git finds every copied file stat-dirty
    assert len(in_git(repo, target, index, "diff-files", "--name-only").split()) == len(FILES) + 3


def test_a_file_that_is_not_its_entrys_is_copied_but_not_trusted(where: Path) -> None:
    repo, tree, index = checkout(where, 4)
    os.utime(tree / "d0/sub0/f12.txt", (1, 1))  # not the mtime its entry holds
    target = where / "copy"
    target.mkdir()
    data, missed = clone(tree, target, index, 20)
    assert missed == 2
    assert in_git(repo, target, data, "diff-files", "--name-only").split() == ["d0/sub0/f12.txt"]


def forged(index: bytes, old: bytes, new: bytes) -> bytes:
    """``index`` with one path replaced by another of the same length (git itself refuses to write
    the forged ones), its checksum made right."""
    assert len(old) == len(new) and index.count(old) == 1
    return gitindex.seal(bytearray(index.replace(old, new)))


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"d3/sub0/f3.txt", b"../sub0/f3.txt"), (b"d3/sub0/f3.txt", b"d3/.GIT/f3.txt")],
    ids=["up", "dot-git"],
)
def test_paths_git_refuses_are_refused(where: Path, old: bytes, new: bytes) -> None:
    _, tree, index = checkout(where, 2)
    target = where / "copy" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(ValueError, match="does not copy"):
        clone(tree, target, forged(index, old, new), 20)
    assert not (where / "copy" / "sub0").exists()


def test_nothing_is_written_through_a_link_the_copy_made(where: Path) -> None:
    _, tree, index = checkout(where, 2)
    outside = where / "outside"
    outside.mkdir()
    (tree / "link").unlink()
    os.symlink(outside, tree / "link")  # the copy makes "link" first: a path under it must fail
    target = where / "copy"
    target.mkdir()
    with pytest.raises(OSError):
        clone(tree, target, forged(index, b"run.sh", b"link/x"), 20)
    assert os.listdir(outside) == []


def test_a_link_in_the_source_is_never_followed(where: Path) -> None:
    """An agent's worktree as the source: a directory of it made a link to one outside holding a file
    of the same name and bytes, and a file made a link. Neither is read: both entries are skipped
    (``skip_unreadable``, for a caller that verifies every file against git) or the copy fails."""
    _, tree, index = checkout(where, 4)
    outside = where / "outside"
    shutil.copytree(tree / "d1", outside)  # the same files, elsewhere
    shutil.rmtree(tree / "d1")
    os.symlink(outside, tree / "d1")
    (tree / "empty").unlink()
    os.symlink(outside / "sub1" / "f1.txt", tree / "empty")
    target = where / "copy"
    target.mkdir()
    _, missed = clone(tree, target, index, 20, skip_unreadable=True)
    under_d1 = [p for p in FILES if p.startswith("d1/")]
    assert under_d1 and not any((target / p).exists() for p in under_d1)
    assert not (target / "empty").exists() and (target / "d0").is_dir()
    assert missed == len(under_d1) + 2  # and the submodule's gitlink, never trusted
    again = where / "again"
    again.mkdir()
    with pytest.raises(OSError):
        clone(tree, again, index, 20)
