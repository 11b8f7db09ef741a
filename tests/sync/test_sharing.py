"""Two keys of one machine on one branch (baton.sync.sharing, baton.workspace.parking), with real git and
the keys' worktrees made by Workdirs, one cache clone for both: the key taking the branch parks the
other's worktree (no file changed, its state checkpointed) and takes its own back onto the branch's
tip with its uncommitted work on top; what it cannot do safely is refused with nothing changed in the
key's worktree; a take killed at any step is finished by the next. The runs themselves:
tests/runner/test_branch_lease.py."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import baton.sync.sharing
import baton.workspace.gitcmd
from baton.agents import AGENTS
from baton.errors import BranchConflict
from baton.keys import Key, make_key
from baton.models import SessionRecord
from baton.settings import Settings
from baton.sync.sharing import Taken, take_branch
from baton.workspace.archives import list_archives
from baton.workspace.workdirs import Workdirs
from tests.conftest import commit_file, git, make_repo, status

SHARED = "one\ntwo\nthree\nfour\nfive\n"


class Killed(BaseException):
    """Stands for a kill -9 at that point: nothing after it runs, no ``except Exception`` catches it."""


class Sessions:
    """The store's sessions of the repository, as take_branch reads them."""

    def __init__(self, *records: SessionRecord) -> None:
        self.records = list(records)

    def list_sessions(self, agent: str | None = None, repo: str | None = None) -> list[SessionRecord]:
        return [r for r in self.records if repo in (None, r.repo)]


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "origin", {"README.md": "hello\n", "shared.txt": SHARED})


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def a(origin: Path) -> Key:
    return make_key("fake", str(origin), "t1", AGENTS)


@pytest.fixture
def b(origin: Path) -> Key:
    return make_key("fake", str(origin), "t2", AGENTS)


def session(key: Key, branch: str = "feat") -> SessionRecord:
    return SessionRecord(key.agent, key.repo.slug, key.thread, key.repo.url, branch, "")


@pytest.fixture
def sessions(a: Key, b: Key) -> Sessions:
    return Sessions(session(a), session(b))


def take(workdirs: Workdirs, sessions: Sessions, key: Key) -> tuple[Path, Taken]:
    """What a run of ``key`` does first under the branch's lease: take the branch, then its worktree."""
    taken = take_branch(workdirs, sessions, key, "feat")
    return workdirs.prepare_worktree(key, "feat", None).path, taken


def head(worktree: Path) -> str:
    return git(worktree, "rev-parse", "--symbolic-full-name", "HEAD")


def state(worktree: Path) -> dict[str, object]:
    """Everything a take must leave as it was: HEAD, each file's bytes, status, the index's entries."""
    files = {
        str(p.relative_to(worktree)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(worktree.rglob("*"))
        if p.is_file() and p.name != ".git"
    }
    return {
        "head": git(worktree, "rev-parse", "HEAD"),
        "attached": head(worktree),
        "files": files,
        "status": git(worktree, "status", "--porcelain", "--untracked-files=all"),
        "index": git(worktree, "ls-files", "--stage"),
    }


def subjects(worktree: Path) -> list[str]:
    return git(worktree, "log", "--format=%s").splitlines()


def edit(worktree: Path, line: int, text: str) -> None:
    """Replace line ``line`` (from 1) of shared.txt."""
    lines = (worktree / "shared.txt").read_text().splitlines()
    lines[line - 1] = text
    (worktree / "shared.txt").write_text("\n".join(lines) + "\n")


def test_taking_a_branch_parks_its_holder_without_changing_a_file(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    tip = commit_file(wa, "a.txt", "a's\n", "a: commit")
    edit(wa, 5, "FIVE by a")
    (wa / "notes.md").write_text("a's notes\n")
    before = state(wa)

    wb, taken = take(workdirs, sessions, b)  # git worktree add feat: refused before parking
    assert head(wb) == "refs/heads/feat" and git(wb, "rev-parse", "HEAD") == tip
    assert taken.note == f"parked the worktree of {a} (on 'feat', which this key writes now)"
    after = state(wa)
    assert after.pop("attached") == "HEAD" and before.pop("attached") == "refs/heads/feat"
    assert after == before  # detached at the same commit: not a byte changed
    cache = workdirs.cache_path(a.repo)
    assert git(cache, "rev-parse", workdirs.parked_ref(a)) == tip
    checkpoint = git(cache, "rev-parse", workdirs.checkpoint_ref(a))
    assert git(cache, "show", f"{checkpoint}:notes.md") == "a's notes"  # its work, checkpointed first


def test_the_parked_key_takes_the_branch_back_on_the_others_commits_keeping_its_own_work(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    edit(wa, 5, "FIVE by a")  # uncommitted, in a file b changes too (another line)
    (wa / "notes.md").write_text("a's notes\n")
    wb, _ = take(workdirs, sessions, b)
    edit(wb, 1, "ONE by b")
    git(wb, "commit", "-qam", "b: line one")
    commit_file(wb, "b.txt", "b's\n", "b: its file")

    wa, taken = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat" and head(wb) == "HEAD"  # a on the branch, b parked
    assert git(wa, "rev-parse", "HEAD") == git(wb, "rev-parse", "HEAD")
    assert (wa / "shared.txt").read_text() == "ONE by b\ntwo\nthree\nfour\nFIVE by a\n"
    assert (wa / "b.txt").read_text() == "b's\n" and (wa / "notes.md").read_text() == "a's notes\n"
    assert status(wa) == {"M shared.txt", "?? notes.md"}  # its own work uncommitted still, nothing staged
    added = [line for line in git(wa, "diff").splitlines() if line[:1] == "+" and line[:3] != "+++"]
    assert added == ["+FIVE by a"]  # b's change is committed, not a's
    assert taken.note and "'feat' gained 2 commits while this worktree was parked" in taken.note
    assert "b: line one" in taken.text and "b: its file" in taken.text
    cache = workdirs.cache_path(a.repo)
    assert git(cache, "for-each-ref", "refs/baton/parked/fake/t1") == ""  # no longer parked
    checkpoint = git(cache, "rev-parse", workdirs.checkpoint_ref(a))
    assert git(cache, "rev-parse", f"{checkpoint}^") == git(wa, "rev-parse", "HEAD")  # on the new tip


def test_uncommitted_work_that_conflicts_with_the_others_commits_is_refused_untouched(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    edit(wa, 1, "ONE by a")
    wb, _ = take(workdirs, sessions, b)
    edit(wb, 1, "ONE by b")
    git(wb, "commit", "-qam", "b: line one")
    before = state(wa)

    with pytest.raises(BranchConflict) as info:
        take(workdirs, sessions, a)
    said = str(info.value)
    assert "its uncommitted changes conflict with those commits in shared.txt" in said, said
    assert state(wa) == before  # exactly as it was: parked, its change in place
    git(wa, "stash", "--quiet")  # what the message says to do: put them aside (or undo them)
    wa, _ = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat" and (wa / "shared.txt").read_text().startswith("ONE by b\n")


def test_commits_made_in_a_parked_worktree_fast_forward_the_branch(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    take(workdirs, sessions, b)
    made = commit_file(wa, "by-hand.txt", "made while parked\n", "by hand, detached")

    wa, taken = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat"
    assert git(workdirs.cache_path(a.repo), "rev-parse", "feat") == made  # nothing left behind
    assert taken.note and "moved 'feat' to" in taken.note


def test_commits_in_a_parked_worktree_while_the_branch_moved_on_are_refused_untouched(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    wb, _ = take(workdirs, sessions, b)
    commit_file(wa, "by-hand.txt", "made while parked\n", "by hand, detached")
    commit_file(wb, "b.txt", "b's\n", "b: its file")
    before = state(wa)
    with pytest.raises(BranchConflict) as info:
        take(workdirs, sessions, a)
    assert "with commits made since it was parked" in str(info.value)
    assert state(wa) == before
    git(wa, "rebase", "--quiet", "feat")  # what the message says to do
    wa, _ = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat" and subjects(wa)[:2] == ["by hand, detached", "b: its file"]


def test_a_rewritten_branch_is_followed_and_the_old_state_archived(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key, origin: Path
) -> None:
    wa, _ = take(workdirs, sessions, a)
    old = commit_file(wa, "a.txt", "a's\n", "a: commit")
    (wa / "notes.md").write_text("a's notes\n")
    wb, _ = take(workdirs, sessions, b)
    git(wb, "reset", "-q", "--hard", "HEAD~1")  # b rewrites the branch (as a rebase would)
    new = commit_file(wb, "b.txt", "b's\n", "b: instead")

    wa, taken = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat" and git(wa, "rev-parse", "HEAD") == new
    assert not (wa / "a.txt").exists() and (wa / "notes.md").read_text() == "a's notes\n"
    (archive,) = list_archives(workdirs, a)
    assert taken.note and f"its former state is kept at {archive}" in taken.note
    cache = workdirs.cache_path(a.repo)
    assert old in git(cache, "rev-list", "--parents", "-n1", archive).split()  # a's commit kept


def test_a_holder_with_a_merge_in_progress_is_not_parked(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    wa, _ = take(workdirs, sessions, a)
    git(wa, "switch", "-q", "-c", "side")
    edit(wa, 1, "ONE on side")
    git(wa, "commit", "-qam", "side")
    git(wa, "switch", "-q", "feat")
    edit(wa, 1, "ONE on feat")
    git(wa, "commit", "-qam", "feat")
    with pytest.raises(Exception):  # noqa: B017 (git merge exits 1 on its conflict)
        git(wa, "merge", "-q", "side")
    before = state(wa)
    with pytest.raises(BranchConflict) as info:
        take(workdirs, sessions, b)
    assert f"checked out in the worktree of {a} with a merge in progress" in str(info.value)
    assert state(wa) == before and not workdirs.worktree_path(b).exists()


def test_a_worktree_of_no_key_on_the_branch_is_not_parked(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key, origin: Path
) -> None:
    stranger = make_key("fake", str(origin), "t3", AGENTS)
    sessions.records.append(session(stranger, branch="other"))
    wc = workdirs.prepare_worktree(stranger, "other", None).path
    workdirs.prepare_worktree(a, "feat", None)
    take(workdirs, sessions, a)  # a on feat
    take(workdirs, sessions, b)  # b on feat, a parked
    git(wb := workdirs.worktree_path(b), "switch", "-q", "--detach")  # feat free for a moment
    git(wc, "switch", "-q", "feat")  # t3's agent switches its worktree to feat
    with pytest.raises(BranchConflict) as info:
        take(workdirs, sessions, a)
    assert "which belongs to no key working on that branch" in str(info.value)
    assert head(wc) == "refs/heads/feat" and head(wb) == "HEAD"


@pytest.mark.parametrize("step", ["files", "index"])
def test_a_take_killed_midway_is_finished_by_the_next(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the files were written (HEAD still where it was parked), or after index and HEAD
    went to the tip (HEAD not yet on the branch): the next take ends where an unkilled one would."""
    wa, _ = take(workdirs, sessions, a)
    edit(wa, 5, "FIVE by a")
    (wa / "notes.md").write_text("a's notes\n")
    wb, _ = take(workdirs, sessions, b)
    edit(wb, 1, "ONE by b")
    git(wb, "commit", "-qam", "b: line one")

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    if step == "files":
        real = baton.workspace.gitcmd.checkout_changes

        def then_killed(*args: object) -> None:
            real(*args)  # type: ignore[arg-type]
            raise Killed

        monkeypatch.setattr(baton.sync.sharing, "checkout_changes", then_killed)
    else:
        monkeypatch.setattr(baton.sync.sharing, "_attach", killed)
    with pytest.raises(Killed):
        take(workdirs, sessions, a)
    assert head(wa) == "HEAD"  # still detached
    monkeypatch.undo()

    wa, _ = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat" and git(wa, "rev-parse", "HEAD") == git(wb, "rev-parse", "HEAD")
    assert (wa / "shared.txt").read_text() == "ONE by b\ntwo\nthree\nfour\nFIVE by a\n"
    assert status(wa) == {"M shared.txt", "?? notes.md"}


def test_a_parked_worktree_removed_and_rebuilt_is_on_the_branch_and_parked_no_more(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    take(workdirs, sessions, a)
    take(workdirs, sessions, b)
    cache = workdirs.cache_path(a.repo)
    parked = "refs/baton/parked/fake/t1"
    assert git(cache, "for-each-ref", "--format=%(refname)", "refs/baton/parked/") == parked
    workdirs.remove_worktree_dir(a)  # closed or evicted: where it was parked is kept with its checkpoint
    assert git(cache, "for-each-ref", "--format=%(refname)", "refs/baton/parked/") == parked
    wa, _ = take(workdirs, sessions, a)  # rebuilt on the branch, b parked in turn
    assert head(wa) == "refs/heads/feat" and head(workdirs.worktree_path(b)) == "HEAD"
    assert (
        git(cache, "for-each-ref", "--format=%(refname)", "refs/baton/parked/") == "refs/baton/parked/fake/t2"
    )
    workdirs.drop_checkpoint(b)  # a reset drops it with the checkpoint
    assert git(cache, "for-each-ref", "refs/baton/parked/") == ""


def test_a_holder_whose_worktree_is_gone_lets_go_of_the_branch(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    take(workdirs, sessions, a)
    wb, _ = take(workdirs, sessions, b)  # a parked, b on feat
    shutil.rmtree(wb)  # gone without git knowing: its admin dir still claims feat
    wa, _ = take(workdirs, sessions, a)
    assert head(wa) == "refs/heads/feat"
    wb, _ = take(workdirs, sessions, b)  # rebuilt on the branch, a parked in turn
    assert head(wb) == "refs/heads/feat" and head(wa) == "HEAD"


def test_a_parked_worktree_removed_then_rebuilt_gets_its_work_back_on_the_new_tip(
    workdirs: Workdirs, sessions: Sessions, a: Key, b: Key
) -> None:
    """A parked key's worktree removed (closed, evicted: its checkpoint stays) and rebuilt after the
    other key moved the branch: its checkpoint, taken on the old tip, is re-applied on the new one —
    or, when it conflicts there, kept under an archive ref, never dropped."""
    wa, _ = take(workdirs, sessions, a)
    edit(wa, 5, "FIVE by a")
    (wa / "notes.md").write_text("a's notes\n")
    wb, _ = take(workdirs, sessions, b)
    workdirs.remove_worktree_dir(a)  # as a close does: the checkpoint ref stays
    edit(wb, 1, "ONE by b")
    git(wb, "commit", "-qam", "b: line one")

    take_branch(workdirs, sessions, a, "feat")
    made = workdirs.prepare_worktree(a, "feat", None)
    assert made.note and "re-applied on the branch's new tip" in made.note
    assert (made.path / "shared.txt").read_text() == "ONE by b\ntwo\nthree\nfour\nFIVE by a\n"
    assert status(made.path) == {"M shared.txt", "?? notes.md"}

    edit(made.path, 1, "ONE by a")  # now a conflict with b's next commit
    take(workdirs, sessions, b)
    workdirs.remove_worktree_dir(a)
    edit(wb, 1, "ONE by b, again")
    git(wb, "commit", "-qam", "b: line one again")
    take_branch(workdirs, sessions, a, "feat")
    made = workdirs.prepare_worktree(a, "feat", None)
    assert made.note and "conflicts with the branch's commits since: not re-applied, kept at" in made.note
    (kept,) = list_archives(workdirs, a)
    assert git(workdirs.cache_path(a.repo), "show", f"{kept}:shared.txt").startswith("ONE by a\n")
    assert status(made.path) == set()  # the branch's tip, clean
