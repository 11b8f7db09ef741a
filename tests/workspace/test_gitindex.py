"""Carrying a git index over to a copy of its work tree (any file system: the copy here is plain), and
the setting that turns reflinked worktrees off."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.settings import load_settings
from baton.workspace.cow.gitindex import backdate, restat
from tests.conftest import git, make_repo, status


def stat_lines(repo: Path, index: Path) -> dict[str, str]:
    """``ls-files --debug`` per path: the stat data git holds."""
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    out = subprocess.run(
        ["git", "ls-files", "--debug"], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line
            found[name] = ""
        else:
            found[name] += line.strip() + ";"
    return found


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_the_copy_gets_its_own_stat_data_and_git_reads_no_file(tmp_path: Path, version: str) -> None:
    files = {f"d{i}/{'long-name-' * (i % 3)}f{i}.txt": f"{i}\n" * i for i in range(1, 40)}
    repo = make_repo(tmp_path / "repo", files)
    git(repo, "update-index", "--index-version", version)
    if version == "3":
        git(repo, "update-index", "--skip-worktree", "d3/f3.txt")  # an extended flag: version 3
    (repo / "d2" / "long-name-long-name-f2.txt").write_text("changed after the index\n")  # stat differs: left
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True)  # new inodes and ctimes, mtimes kept
    index = (repo / ".git" / "index").read_bytes()
    data, missed = restat(index, copy)
    assert missed == 1
    assert len(data) == len(index) and data[:12] == index[:12]
    (copy / ".git" / "index").write_bytes(data)
    before, after = stat_lines(repo, repo / ".git" / "index"), stat_lines(copy, copy / ".git" / "index")
    st = os.lstat(copy / "d5" / "long-name-long-name-f5.txt")
    assert f"ino: {st.st_ino}" in after["d5/long-name-long-name-f5.txt"]
    assert (
        after["d2/long-name-long-name-f2.txt"] == before["d2/long-name-long-name-f2.txt"]
    )  # not the file it described
    # git accepts the checksum, and its stat check (diff-files does not re-read files) passes every
    # entry but the changed one; with the original's index it would fail all of them
    assert diff_files(copy) == ["d2/long-name-long-name-f2.txt"]
    (copy / ".git" / "index").write_bytes(index)
    assert len(diff_files(copy)) == len(files) - (version == "3")  # git never checks a skip-worktree one


def diff_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "diff-files", "--name-only"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"DIRC",
        b"XXXX" + bytes(40),
        b"DIRC\0\0\0\x09" + bytes(40),
        b"DIRC\0\0\0\x02\0\0\0\x05" + bytes(30),
    ],
)
def test_what_is_not_an_index_is_refused(tmp_path: Path, garbage: bytes) -> None:
    with pytest.raises(ValueError):
        restat(garbage, tmp_path)


def test_the_reflink_setting_is_auto_or_off(tmp_path: Path) -> None:
    assert load_settings(overrides={"home": str(tmp_path)}, environ={}).reflink == "auto"
    assert load_settings(environ={"BATON_HOME": str(tmp_path), "BATON_REFLINK": "off"}).reflink == "off"
    with pytest.raises(BadInput, match="'reflink' must be one of auto, off"):
        load_settings(overrides={"home": str(tmp_path), "reflink": "always"}, environ={})


def racy(repo: Path) -> list[str]:
    """The entries git would re-read on every ``status``: ``mtime`` not before the index's second."""
    second = os.lstat(repo / ".git" / "index").st_mtime_ns // 10**9
    return [
        path
        for path, data in stat_lines(repo, repo / ".git" / "index").items()
        if int(data.split("mtime: ")[1].split(":")[0]) >= second
    ]


@pytest.mark.parametrize("version", ["2", "4"])
def test_a_fresh_checkout_settled_is_trusted_and_any_later_edit_is_still_seen(
    tmp_path: Path, version: str
) -> None:
    files = {f"d{i % 4}/f{i}.txt": f"content {i}\n" for i in range(30)}
    src = make_repo(tmp_path / "src", files)
    (src / "link").symlink_to("d0/f0.txt")
    git(src, "add", "link")
    git(src, "commit", "--quiet", "-m", "a link")
    repo = tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", str(src), str(repo))
    git(repo, "update-index", "--index-version", version)
    (repo / "d1" / "f1.txt").write_text("changed before, a longer file\n")  # not the file its entry names
    (repo / "d3" / "f3.txt").unlink()  # gone (or never checked out: a sparse checkout)
    index = repo / ".git" / "index"
    # the index as written in the second its checkout began, so that every entry is racy however many
    # seconds the checkout took (under a loaded machine's four test workers, up to several)
    checked_out = [p for p in repo.rglob("*") if ".git" not in p.parts and not p.is_dir()]
    began = min(os.lstat(p).st_mtime_ns for p in checked_out)
    os.utime(index, ns=(began, began))
    before = racy(repo)
    assert len(before) == 31  # the 30 files and the link
    data, moved = backdate(index.read_bytes(), repo, began)
    index.write_bytes(data)
    os.utime(index, ns=(began, began))  # as written in that second (a later one would settle them all)
    # every racy entry but the changed file and the missing one: 28 files and the link
    assert moved == len(set(before) - {"d1/f1.txt", "d3/f3.txt"}) == 29
    assert racy(repo) == ["d1/f1.txt", "d3/f3.txt"]  # git reads those, as it should
    assert diff_files(repo) == ["d1/f1.txt", "d3/f3.txt"]  # the others pass its stat check unread
    assert os.readlink(repo / "link") == "d0/f0.txt"
    (repo / "d2" / "f2.txt").write_text("content X\n")  # the same size, at once
    assert status(repo) == {"M d1/f1.txt", "M d2/f2.txt", "D d3/f3.txt"}


def test_a_settled_index_leaves_entries_already_older_than_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    index = repo / ".git" / "index"
    later = os.lstat(index).st_mtime_ns + 5 * 10**9
    data, moved = backdate(index.read_bytes(), repo, later)
    assert moved == 0 and data == index.read_bytes()
