"""``disk_usage`` agrees with ``du -s --block-size=1``: files, directories' own blocks, symlinks
themselves, hard links once, on a generated tree of a few thousand directories, and on a real home
(a cache clone and several worktrees)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from baton.keys import make_key
from baton.settings import Settings
from baton.workspace.du import disk_usage
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import git


def du(path: Path) -> int:
    """What GNU ``du -s --block-size=1`` says of ``path``."""
    done = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[0])


def files_only(path: Path) -> int:
    """The old measure: regular files' blocks only (what ``baton du`` counted before)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, f)).st_blocks * 512 for f in files)
    return total


def make_tree(root: Path, dirs: int = 3000) -> None:
    """``dirs`` nested directories, a small file in most, a larger one now and then, empty ones,
    symlinks to files and to directories (and a dangling one), and hard links."""
    for i in range(dirs):
        d = root / f"d{i % 30}" / f"e{i}"
        d.mkdir(parents=True)
        if i % 5:
            (d / "small.txt").write_text(f"file {i}\n")
        if i % 97 == 0:
            (d / "big.bin").write_bytes(os.urandom(50_000 + i))
    (root / "link-to-file").symlink_to(root / "d1" / "e1" / "small.txt")
    (root / "link-to-dir").symlink_to(root / "d2", target_is_directory=True)
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "long-link").symlink_to("x" * 200)  # a symlink with a target too long to be inline
    os.link(root / "d0" / "e0" / "big.bin", root / "hard-1")
    os.link(root / "d0" / "e0" / "big.bin", root / "d3" / "hard-2")


def test_disk_usage_equals_du_on_a_tree_of_thousands_of_directories(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    expected = du(root)
    assert disk_usage(root) == expected
    # what was missing before: the directories' own blocks, far more than the 3 % allowed
    assert files_only(root) < 0.97 * expected


def test_disk_usage_counts_hard_links_once_symlinks_unfollowed(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "a").write_bytes(b"x" * 100_000)
    single = disk_usage(root)
    os.link(root / "a", root / "hardlink")
    assert disk_usage(root) == single == du(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"y" * 1_000_000)
    (root / "to-outside").symlink_to(outside, target_is_directory=True)
    assert disk_usage(root) == du(root) < 1_000_000  # the link, not what it points at
    assert disk_usage(tmp_path / "missing") == 0
    assert disk_usage(root / "a") == du(root / "a")  # a file: its own blocks


def test_a_home_of_worktrees_measures_as_du_says(settings: Settings) -> None:
    src = settings.home.parent / "src"
    src.mkdir()
    git(src, "init", "--quiet", "-b", "main")
    for i in range(400):
        path = src / f"pkg{i % 40}" / f"mod{i % 7}" / f"file{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"x = {i}\n" * (1 + i % 50))
    git(src, "add", ".")
    git(src, "commit", "--quiet", "-m", "files")
    workdirs = Workdirs(settings)
    for n in range(5):
        key = make_key("fake", str(src), f"t{n}", ["fake"])
        workdirs.ensure_worktree(key, branch_for(key), None)
    expected = du(settings.home)
    assert abs(disk_usage(settings.home) - expected) <= 0.03 * expected
    assert disk_usage(settings.home) == expected  # nothing changes it between the two walks
