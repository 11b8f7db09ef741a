"""Reset with real git and the fake agent: it archives before it removes, under a ref it names, deletes
only the session's own branch, refuses a branch another key works on, and is always audited."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Busy, Mode, RunRequest, RunResult, open_store, run
from baton.errors import BadInput, GitError
from baton.keys import Key, make_key
from baton.sessions.manage import ResetResult, Scope, import_session, reset_session
from baton.settings import Settings
from baton.store import Store
from baton.store.leases import LeaseHolder
from baton.workspace.archives import list_archives, restore_worktree
from baton.workspace.workdirs import Workdirs
from tests.conftest import git


def go(settings: Settings, repo: Path, prompt: str = "do it", thread: str = "t1", **kw: object) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt, **kw)  # type: ignore[arg-type]
    result = run(request, settings=settings)
    assert result.ok, result.run.error
    return result


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings.resolved_store_url)
    yield opened
    opened.close()


def key_of(src_repo: Path, thread: str = "t1") -> Key:
    return make_key("fake", str(src_repo), thread, ["fake"])


def do_agent_work(worktree: Path) -> str:
    """A commit on the branch, a changed tracked file and an untracked one; returns the commit."""
    (worktree / "lexer.py").write_text("TOKENS = []\n")
    git(worktree, "add", "lexer.py")
    git(worktree, "commit", "--quiet", "-m", "agent: lexer")
    (worktree / "README.md").write_text("# changed, not committed\n")
    (worktree / "notes.md").write_text("untracked notes\n")
    return git(worktree, "rev-parse", "HEAD")


def test_reset_worktree_archives_everything_under_the_ref_it_names(
    settings: Settings, store: Store, src_repo: Path, tmp_path: Path
) -> None:
    first = go(settings, src_repo)
    worktree = Path(first.session.worktree)
    agent_commit = do_agent_work(worktree)
    key = key_of(src_repo)

    result = reset_session(store, settings, key, Scope.WORKTREE)

    assert isinstance(result, ResetResult)
    assert not worktree.exists()
    cache = Workdirs(settings).cache_path(key.repo)
    assert git(cache, "branch", "--list", "baton/*") == ""  # the branch is gone...
    ref = str(result.archive_ref)
    assert ref.startswith("refs/baton/archive/fake/t1/")
    assert list_archives(Workdirs(settings), key) == [ref]
    git(cache, "gc", "--quiet", "--prune=now")  # ...but nothing is dangling: the archive keeps it all
    assert git(cache, "show", f"{ref}:notes.md") == "untracked notes"
    assert git(cache, "show", f"{ref}:README.md") == "# changed, not committed"
    assert git(cache, "show", f"{ref}:lexer.py") == "TOKENS = []"
    git(cache, "merge-base", "--is-ancestor", agent_commit, ref)
    assert result.worktree is True and result.branch == "baton/fake/t1"
    assert ref in result.describe() and "worktree add" in result.describe()
    assert result.describe().count(".") >= 1 and "\n" not in result.describe()

    back = restore_worktree(Workdirs(settings), key, ref, tmp_path / "back")
    assert (back / "notes.md").read_text() == "untracked notes\n"
    assert (back / "lexer.py").is_file()
    assert str(cache) in str(result.restore) and ref in str(result.restore)


def test_reset_with_the_worktree_already_gone_archives_its_checkpoint(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    first = go(settings, src_repo)
    worktree = Path(first.session.worktree)
    (worktree / "wip.txt").write_text("only in the checkpoint\n")
    go(settings, src_repo)  # the run's end checkpoints the dirty worktree
    shutil.rmtree(worktree)

    result = reset_session(store, settings, key_of(src_repo), Scope.WORKTREE)

    cache = Workdirs(settings).cache_path(key_of(src_repo).repo)
    assert result.worktree is False and result.checkpoint is True
    assert git(cache, "show", f"{result.archive_ref}:wip.txt") == "only in the checkpoint"
    assert git(cache, "for-each-ref", "refs/baton/checkpoints/") == ""


def test_reset_deletes_the_sessions_own_branch(settings: Settings, store: Store, src_repo: Path) -> None:
    first = go(settings, src_repo, branch="feature/lexer")
    tip = do_agent_work(Path(first.session.worktree))
    cache = Workdirs(settings).cache_path(key_of(src_repo).repo)

    result = reset_session(store, settings, key_of(src_repo), Scope.WORKTREE)

    assert result.branch == "feature/lexer"
    assert git(cache, "branch", "--list", "feature/*") == ""
    git(cache, "merge-base", "--is-ancestor", tip, str(result.archive_ref))
    again = go(settings, src_repo)  # the session keeps its branch: rebuilt from the base
    assert git(Path(again.session.worktree), "rev-parse", "--abbrev-ref", "HEAD") == "feature/lexer"


def test_reset_refuses_a_branch_another_key_works_on(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    go(settings, src_repo, thread="t1")
    reset_session(store, settings, key_of(src_repo, "t1"), Scope.WORKTREE)  # t1 keeps its branch name
    other = go(settings, src_repo, thread="t2", branch="baton/fake/t1")  # t2 now works on that branch
    other_tree = Path(other.session.worktree)
    (other_tree / "precious.txt").write_text("t2's work\n")
    audit_before = len(store.list_audit())

    with pytest.raises(BadInput, match="also used by") as caught:
        reset_session(store, settings, key_of(src_repo, "t1"), Scope.ALL)

    assert "session fake:" in str(caught.value) and "t2" in str(caught.value)
    assert (other_tree / "precious.txt").read_text() == "t2's work\n"
    assert git(other_tree, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/t1"
    assert store.get_session("fake", key_of(src_repo).repo.slug, "t1") is not None  # nothing reset
    entries = store.list_audit()
    assert len(entries) == audit_before + 1
    assert entries[0]["action"] == "reset-failed" and "also used by" in entries[0]["detail"]["error"]


def test_a_failure_half_way_is_audited_with_what_was_done(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo)
    do_agent_work(Path(first.session.worktree))

    def broken(*_args: object, **_kw: object) -> bool:
        raise GitError("git update-ref failed: simulated")

    monkeypatch.setattr(Workdirs, "delete_branch", broken)
    with pytest.raises(GitError, match="simulated"):
        reset_session(store, settings, key_of(src_repo), Scope.ALL)

    entry = store.list_audit()[0]
    assert entry["action"] == "reset-failed"
    assert entry["detail"]["worktree"] is True  # what was done before the failure...
    assert entry["detail"]["archive_ref"]  # ...where its work is kept...
    assert "simulated" in entry["detail"]["error"]  # ...and what failed
    cache = Workdirs(settings).cache_path(key_of(src_repo).repo)
    assert git(cache, "show", f"{entry['detail']['archive_ref']}:notes.md") == "untracked notes"
    assert store.get_session("fake", key_of(src_repo).repo.slug, "t1") is not None


def test_reset_all_keeps_the_conversation_in_an_export_that_imports_back(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    first = go(settings, src_repo, "remember the number 41")

    result = reset_session(store, settings, key_of(src_repo), Scope.ALL)

    assert result.session is True and result.runs == 1 and result.snapshot is True
    assert result.transcript_files == 1
    assert store.get_session("fake", key_of(src_repo).repo.slug, "t1") is None
    saved = Path(str(result.conversation_archive))
    assert saved.is_relative_to(settings.home / "archive")
    assert f"baton sessions import {saved} --replace" in result.describe()
    import_session(store, settings, json.loads(saved.read_text()), replace=True)
    again = go(settings, src_repo, "what was the number?")
    assert again.run.mode == Mode.RESUME
    assert again.session.agent_session_id == first.session.agent_session_id
    assert again.run.result == "fake reply: received 4 messages"


def test_reset_is_audited_with_its_result_and_serialises(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    go(settings, src_repo)
    result = reset_session(store, settings, key_of(src_repo), Scope.CONVERSATION, actor="alice")
    entry = store.list_audit()[0]
    assert (entry["action"], entry["actor"]) == ("reset", "alice")
    assert entry["detail"] == json.loads(json.dumps(result.to_json()))
    assert result.to_json()["scope"] == "conversation"
    assert result.archive_ref is None and result.worktree is False  # the worktree was not touched
    assert result.describe().startswith(f"Reset {key_of(src_repo)} (conversation): removed 1 transcript")


def test_reset_of_a_busy_key_is_refused_and_audited(settings: Settings, store: Store, src_repo: Path) -> None:
    first = go(settings, src_repo)
    key = key_of(src_repo)
    holder = LeaseHolder(store, key.id, 60)
    holder.acquire(0)
    try:
        with pytest.raises(Busy):
            reset_session(store, settings, key, Scope.ALL)
    finally:
        holder.release()
    assert Path(first.session.worktree).is_dir()
    assert store.list_audit()[0]["action"] == "reset-failed"
