"""The checkpoint memo (``baton.workspace.checkmemo``): a worktree as its last checkpoint left it is
that checkpoint without staging anything; any change of content, mode or set of files — even one that
keeps every file's size and times — is staged into a new checkpoint, as without the memo.

Real git, real worktrees made by real runs of the fake agent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton import RunRequest, run
from baton.keys import Key, make_key
from baton.settings import Settings
from baton.workspace import checkmemo, checkpoints, gitcmd
from baton.workspace.workdirs import Workdirs
from tests.conftest import agent_work, git


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each staging of a checkpoint (the work the memo saves), by its status."""
    calls: list[str] = []
    original = gitcmd.worktree_tree_staged

    def spy(wt: gitcmd.WorktreeGit, env: dict[str, str], status: str, paths: list[str]) -> object:
        calls.append(status)
        return original(wt, env, status, paths)

    monkeypatch.setattr(checkpoints, "worktree_tree_staged", spy)
    return calls


def dirty_key(settings: Settings, src_repo: Path) -> tuple[Workdirs, Path, Key]:
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="memo", prompt="go"), settings=settings)
    assert result.ok, result.run.error
    path = Path(result.session.worktree)
    agent_work(path)  # tracked edits and an untracked file
    return Workdirs(settings), path, make_key("fake", str(src_repo), "memo", ["fake"])


def test_an_unchanged_worktree_is_its_last_checkpoint_without_staging(
    settings: Settings, src_repo: Path, staged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs, path, key = dirty_key(settings, src_repo)
    first = dirs.checkpoint(key, path)
    assert first is not None and len(staged) == 1
    assert checkmemo.path_of(settings.home, key).is_file()
    assert dirs.checkpoint(key, path) == first
    assert len(staged) == 1, "the memo answered: nothing staged again"
    # without the memo, the checkpoint commit itself answers (a take-over's case), and leaves a memo
    checkmemo.forget(settings.home, key)
    assert dirs.checkpoint(key, path) == first and len(staged) == 1
    assert checkmemo.path_of(settings.home, key).is_file()
    # what both answered is what staging gives: the same commit
    checkmemo.forget(settings.home, key)
    monkeypatch.setattr(checkpoints, "_memo_of", lambda *args: None)
    assert dirs.checkpoint(key, path) == first and len(staged) == 2


@pytest.mark.parametrize("memo", ["memo", "no-memo"])
@pytest.mark.parametrize("change", ["same-size-and-times", "mode", "new-file", "removed", "link"])
def test_any_change_is_staged_into_a_new_checkpoint(
    settings: Settings, src_repo: Path, staged: list[str], change: str, memo: str
) -> None:
    dirs, path, key = dirty_key(settings, src_repo)
    first = dirs.checkpoint(key, path)
    if memo == "no-memo":  # then the checkpoint commit itself is checked, and found not to hold it
        checkmemo.forget(settings.home, key)
    edited = path / "README.md"  # changed, not committed
    if change == "same-size-and-times":  # what stat data cannot tell: the content is hashed again
        before = os.stat(edited)
        data = edited.read_bytes()
        edited.write_bytes(bytes([data[0] ^ 1]) + data[1:])
        os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(edited).st_size == before.st_size
    elif change == "mode":
        edited.chmod(0o755)
    elif change == "new-file":
        (path / "another.txt").write_text("more\n")
    elif change == "removed":
        edited.unlink()
    else:
        edited.unlink()
        edited.symlink_to("/etc/passwd")
    second = dirs.checkpoint(key, path)
    assert second is not None and second != first and len(staged) == 2
    tree = git(path, "ls-tree", "-r", second)
    if change == "mode":
        assert "100755 blob" in next(line for line in tree.splitlines() if line.endswith(edited.name))
    if change == "link":
        assert "120000 blob" in next(line for line in tree.splitlines() if line.endswith(edited.name))


def test_a_broken_or_foreign_memo_is_never_believed(
    settings: Settings, src_repo: Path, staged: list[str]
) -> None:
    dirs, path, key = dirty_key(settings, src_repo)
    first = dirs.checkpoint(key, path)
    memo_file = checkmemo.path_of(settings.home, key)
    for garbage in ("{not json", '{"head": 1}', '{"head": "x", "status": "", "commit": "y", "staged": []}'):
        memo_file.write_text(garbage)
        assert dirs.checkpoint(key, path) == first  # the checkpoint commit itself checked: the same
    assert len(staged) == 1
    # a memo claiming another commit for this very content is not believed: its commit is not the ref's
    memo = checkmemo.load(settings.home, key)
    assert memo is not None and memo.commit == first
    checkmemo.save(settings.home, key, checkmemo.Memo(memo.head, memo.status, "f" * 40, memo.staged))
    assert dirs.checkpoint(key, path) == first and len(staged) == 1
    # nor one whose staged entries lie: it does not hold, and the content is staged
    lying: dict[str, tuple[str, str] | None] = {rel: ("100644", "0" * 40) for rel in memo.staged}
    checkmemo.save(settings.home, key, checkmemo.Memo(memo.head, memo.status, first, lying))
    assert dirs.checkpoint(key, path) == first and len(staged) == 2


def test_a_checkpoint_ref_not_on_head_is_staged_anew(
    settings: Settings, src_repo: Path, staged: list[str]
) -> None:
    dirs, path, key = dirty_key(settings, src_repo)
    first = dirs.checkpoint(key, path)
    assert first is not None
    cache = dirs.cache_path(key.repo)
    elsewhere = git(cache, "commit-tree", f"{first}^{{tree}}", "-m", "the same tree on no parent")
    git(cache, "update-ref", dirs.checkpoint_ref(key), elsewhere)  # the same files, another parent
    checkmemo.forget(settings.home, key)
    second = dirs.checkpoint(key, path)
    assert second is not None and second != elsewhere and len(staged) == 2
    assert git(path, "rev-parse", f"{second}^") == git(path, "rev-parse", "HEAD")


def test_the_memo_goes_with_the_key_s_space(settings: Settings, src_repo: Path) -> None:
    from baton.workspace import keyspace

    dirs, path, key = dirty_key(settings, src_repo)
    dirs.checkpoint(key, path)
    assert checkmemo.path_of(settings.home, key).is_file()
    keyspace.remove_space(settings, key)
    assert not checkmemo.path_of(settings.home, key).exists()
