"""A prepared tree's results: found from the commit's tracked files (not the tree's own git), copied into
a worktree without writing over or through what it holds, relocated in text files and links only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from baton.environment.results import find, give, tracked
from tests.conftest import git, make_repo


def test_results_are_what_the_commit_does_not_track_as_high_up_as_possible(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"src/a.py": "x\n", "README.md": "r\n"})
    (repo / ".venv/bin").mkdir(parents=True)
    (repo / ".venv/bin/tool").write_text("t\n")
    (repo / "src/build").mkdir()
    (repo / "src/build/out.o").write_text("o\n")
    (repo / "made.txt").write_text("m\n")
    files = tracked(repo / ".git", git(repo, "rev-parse", "HEAD"))
    assert files == {"src/a.py", "README.md"}
    assert find(repo, files) == [".venv", "made.txt", "src/build"]


def test_give_copies_and_relocates_text_and_links_never_binaries(tmp_path: Path) -> None:
    tree, worktree = tmp_path / "prepared/tree", tmp_path / "wt"
    (tree / ".venv/bin").mkdir(parents=True)
    (tree / ".venv/bin/tool").write_text(f"#!{tree}/.venv/bin/python\n")
    (tree / ".venv/bin/tool").chmod(0o755)
    (tree / ".venv/lib.so").write_bytes(b"\0ELF" + os.fsencode(tree))
    os.symlink(f"{tree}/.venv/bin/tool", tree / ".venv/link")
    (tree / "kept").mkdir()
    worktree.mkdir()
    (worktree / "kept").mkdir()  # the worktree has it already: untouched
    given = give(tree, worktree, [".venv", "kept"])
    assert given.copied == [".venv"] and given.kept == ["kept"]
    assert (worktree / ".venv/bin/tool").read_text() == f"#!{worktree}/.venv/bin/python\n"
    assert os.access(worktree / ".venv/bin/tool", os.X_OK)
    assert os.readlink(worktree / ".venv/link") == f"{worktree}/.venv/bin/tool"
    assert (worktree / ".venv/lib.so").read_bytes() == b"\0ELF" + os.fsencode(tree)
    assert (given.rewritten, given.links, given.binary) == (1, 1, 1)
    assert (tree / ".venv/bin/tool").read_text() == f"#!{tree}/.venv/bin/python\n"  # the source as it was


def test_give_never_writes_through_a_link_in_the_worktree(tmp_path: Path) -> None:
    tree, worktree, outside = tmp_path / "tree", tmp_path / "wt", tmp_path / "outside"
    (tree / "sub/node_modules").mkdir(parents=True)
    (tree / "sub/node_modules/x.js").write_text("x\n")
    outside.mkdir()
    worktree.mkdir()
    os.symlink(outside, worktree / "sub")  # an agent's link where a tracked directory was
    given = give(tree, worktree, ["sub/node_modules"])
    assert given.copied == [] and given.kept == ["sub/node_modules"]
    assert list(outside.iterdir()) == []


def test_a_path_written_percent_encoded_or_json_escaped_is_relocated_too(tmp_path: Path) -> None:
    """An editable install's ``direct_url.json`` names the tree as a ``file://`` URL (``@`` as ``%40``,
    as in the prepared tree's ``@<id>``), and a JSON file escapes a non-ASCII name: both spellings are
    relocated, so ``pip list -e`` in a thread names the thread."""
    tree, worktree = tmp_path / "prepared/@abc/trée", tmp_path / "wt@2/ïssue"
    site = tree / ".venv/lib/site-packages/proj-0.1.dist-info"
    site.mkdir(parents=True)
    url = "file://" + quote(str(tree), safe="/")
    (site / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {"editable": True}}))
    (site / "paths.json").write_text(json.dumps({"root": str(tree)}))  # ensure_ascii: \\u00e9
    worktree.mkdir(parents=True)
    give(tree, worktree, [".venv"])
    moved = worktree / ".venv/lib/site-packages/proj-0.1.dist-info"
    assert json.loads((moved / "direct_url.json").read_text())["url"] == "file://" + quote(
        str(worktree), safe="/"
    )
    assert json.loads((moved / "paths.json").read_text())["root"] == str(worktree)
    assert "%40abc" not in (moved / "direct_url.json").read_text()
