"""baton's own git and file reads never trust what a walled agent can write: the worktree's ``.git``
file, its admin dir (``commondir``, ``gitdir``, ``HEAD``, ``index``, ``logs/``), its branch refs and
the transcripts in its key's home. Each test plays the hostile agent, first showing that plain git
(or a plain read) falls for the trap, then that baton does not."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from baton.agents import AGENTS, Agent, get_agent
from baton.keys import Key, make_key
from baton.models import Outcome
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store import SQLStore, Store
from baton.workspace import badrefs, gitlinks, keyspace
from baton.workspace.gitcmd import WorktreeGit, checkout_changes, commit_of, redact, run_git
from baton.workspace.keyspace import key_home
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import commit_file, git, make_repo
from tests.runner.test_runner import go

SID = "6f1c2d3e-0000-4000-8000-00000000beef"


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def key(src_repo: Path) -> Key:
    return make_key("fake", str(src_repo), "t1", AGENTS)


@pytest.fixture
def wt(workdirs: Workdirs, key: Key) -> WorktreeGit:
    workdirs.prepare_worktree(key, branch_for(key), None)
    found = workdirs.worktree_git(key)
    assert found is not None
    return found


def hostile_gitdir(where: Path, marker: Path) -> Path:
    """A git dir whose config has git run a command (touching ``marker``) on every ``git status``."""
    make_repo(where)
    git(where, "config", "core.fsmonitor", f"touch {marker}; false")
    return where / ".git"


def falls_for_it(worktree: Path, marker: Path) -> None:
    """Plain git in the worktree runs the planted command: the trap is real."""
    subprocess.run(["git", "status"], cwd=worktree, capture_output=True, check=False)
    assert marker.exists(), "plain git should have run the planted command"
    marker.unlink()


# -- the worktree's pointers ----------------------------------------------------------------------------


def test_a_git_file_pointing_at_a_hostile_gitdir_is_never_followed(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, tmp_path: Path
) -> None:
    (wt.path / "work.txt").write_text("the agent's work\n")
    marker = tmp_path / "ran"
    (wt.path / ".git").write_text(f"gitdir: {hostile_gitdir(tmp_path / 'evil', marker)}\n")
    falls_for_it(wt.path, marker)

    commit = workdirs.checkpoint(key)
    assert workdirs.head_commit(key) == commit_of(wt.common, f"refs/heads/{branch_for(key)}")
    assert not marker.exists()
    assert commit and "work.txt" in git(wt.common, "ls-tree", "--name-only", commit)
    assert (wt.path / ".git").read_text() == f"gitdir: {wt.admin}\n", "repaired"


def test_a_hostile_commondir_and_admin_configs_are_never_read(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, tmp_path: Path
) -> None:
    (wt.path / "work.txt").write_text("the agent's work\n")
    marker = tmp_path / "ran"
    (wt.admin / "commondir").write_text(f"{hostile_gitdir(tmp_path / 'evil', marker)}\n")
    falls_for_it(wt.path, marker)
    config = f"[core]\n\tfsmonitor = touch {marker}; false\n"
    (wt.admin / "config.worktree").write_text(config)  # read only with extensions.worktreeConfig
    (wt.admin / "config").write_text(config)  # a linked worktree's config is the common dir's

    assert workdirs.checkpoint(key) is not None
    workdirs.catch_up(key, branch_for(key))
    assert not marker.exists()
    assert (wt.admin / "commondir").read_text() == "../..\n", "repaired"
    assert (wt.path / "work.txt").read_text() == "the agent's work\n"


def test_a_run_after_the_agent_rewrote_its_pointers_repairs_them_and_succeeds(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    first = go(settings, src_repo, "write the lexer")
    assert first.ok
    key = make_key("fake", str(src_repo), "t1", AGENTS)
    workdirs = Workdirs(settings)
    path, admin = workdirs.worktree_path(key), gitlinks.admin_dir(workdirs.cache_path(key.repo), key)
    marker = tmp_path / "ran"
    (path / ".git").write_text(f"gitdir: {hostile_gitdir(tmp_path / 'evil', marker)}\n")
    (admin / "commondir").write_text(f"{hostile_gitdir(tmp_path / 'evil2', marker)}\n")
    (admin / "gitdir").write_text("/nonexistent/.git\n")
    (path / "notes.txt").write_text("uncommitted\n")

    second = go(settings, src_repo, "write the parser")
    assert second.ok and second.run.outcome == Outcome.SUCCEEDED
    assert not marker.exists()
    assert (path / ".git").read_text() == f"gitdir: {admin}\n"
    assert (admin / "commondir").read_text() == "../..\n"
    assert (admin / "gitdir").read_text() == f"{path.resolve() / '.git'}\n"
    assert (path / "notes.txt").read_text() == "uncommitted\n"


def test_a_worktree_whose_admin_dir_is_lost_is_checkpointed_and_rebuilt(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    assert go(settings, src_repo, "write the lexer").ok
    key = make_key("fake", str(src_repo), "t1", AGENTS)
    workdirs = Workdirs(settings)
    path = workdirs.worktree_path(key)
    marker = tmp_path / "ran"
    (path / ".git").write_text(f"gitdir: {hostile_gitdir(tmp_path / 'evil', marker)}\n")
    shutil.rmtree(gitlinks.admin_dir(workdirs.cache_path(key.repo), key))  # e.g. pruned: its gitdir lied
    (path / "kept.txt").write_text("the agent's last words\n")
    (path / "README.md").unlink()

    again = go(settings, src_repo, "write the parser")
    assert again.ok
    assert "lost its git links" in str(again.run.note)
    assert not marker.exists()
    assert (path / "kept.txt").read_text() == "the agent's last words\n"
    assert not (path / "README.md").exists(), "the worktree's state, deletions included"
    assert workdirs.worktree_git(key) is not None


def test_a_worktree_made_before_keeps_its_admin_dir_under_the_keys_name(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, src_repo: Path
) -> None:
    legacy = wt.common / "worktrees" / "t1"
    os.rename(wt.admin, legacy)  # as git named it
    (wt.path / ".git").write_text(f"gitdir: {legacy}\n")
    (wt.path / "work.txt").write_text("x\n")
    found = workdirs.worktree_git(key)
    assert found == wt and not legacy.exists()
    assert git(wt.path, "status", "--porcelain") == "?? work.txt", "the agent's own git works too"


def test_a_forged_claim_on_a_legacy_worktree_is_not_trusted(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, src_repo: Path
) -> None:
    other = make_key("fake", str(src_repo), "t2", AGENTS)
    workdirs.prepare_worktree(other, branch_for(other), None)
    os.rename(wt.admin, wt.common / "worktrees" / "t1")
    forged = wt.common / "worktrees" / "t2"
    os.rename(gitlinks.admin_dir(wt.common, other), forged)
    (forged / "gitdir").write_text(f"{wt.path.resolve() / '.git'}\n")  # t2's agent claims t1's worktree
    assert workdirs.worktree_git(key) is None, "two claims: neither is trusted"


# -- links in the admin dir and the refs ----------------------------------------------------------------


def test_git_never_appends_to_a_file_through_a_linked_reflog(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, tmp_path: Path
) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("# baton's own file\n")
    (wt.admin / "logs" / "HEAD").unlink()
    (wt.admin / "logs" / "HEAD").symlink_to(victim)
    (wt.admin / "index").rename(tmp_path / "index")
    (wt.admin / "index").symlink_to(tmp_path / "index")
    fifo = wt.admin / "ORIG_HEAD"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)  # would block git's read forever
    workdirs.catch_up(key, branch_for(key))  # reset --hard, clean: git writes logs/HEAD and the index
    assert victim.read_text() == "# baton's own file\n"
    assert not any(p.is_symlink() for p in wt.admin.rglob("*")) and not stat.S_ISFIFO(fifo.lstat().st_mode)


def test_head_and_branch_refs_are_never_read_through_links_or_out_of_refs(
    workdirs: Workdirs, key: Key, wt: WorktreeGit, tmp_path: Path
) -> None:
    canary = tmp_path / "secret"
    canary.write_text("d" * 40 + "\n")  # looks like a commit id
    ref = wt.common / "refs" / "heads" / branch_for(key)
    ref.unlink()
    ref.symlink_to(canary)
    assert workdirs.read_ref(wt.common, f"refs/heads/{branch_for(key)}") is None
    outside = os.path.relpath(canary, wt.common)
    (wt.admin / "HEAD").write_text(f"ref: refs/heads/../../{outside}\n")
    assert workdirs.read_ref(wt.common, f"refs/heads/../../{outside}") is None
    assert workdirs.head_commit(key) is None


def test_an_unusable_head_is_pointed_at_the_branch(workdirs: Workdirs, key: Key, wt: WorktreeGit) -> None:
    (wt.admin / "HEAD").write_text("ref: refs/heads/../../config\n")
    workdirs.prepare_worktree(key, branch_for(key), None)
    assert (wt.admin / "HEAD").read_text() == f"ref: refs/heads/{branch_for(key)}\n"


def test_checkout_changes_never_deletes_through_a_linked_directory(
    workdirs: Workdirs, key: Key, src_repo: Path, tmp_path: Path
) -> None:
    old = commit_file(src_repo, "pkg/data.txt", "data\n", "add pkg")
    git(src_repo, "rm", "-q", "pkg/data.txt")
    git(src_repo, "commit", "-q", "-m", "drop pkg")
    new = git(src_repo, "rev-parse", "HEAD")
    workdirs.prepare_worktree(key, branch_for(key), None)
    wt = workdirs.worktree_git(key)
    assert wt is not None
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("not baton's to delete\n")
    (wt.path / "pkg").symlink_to(outside)
    checkout_changes(wt, old, new)
    assert (outside / "data.txt").exists()


def test_git_in_a_worktree_without_its_paths_is_refused(wt: WorktreeGit) -> None:
    with pytest.raises(RuntimeError, match="WorktreeGit"):
        run_git(["status"], cwd=wt.path)
    with pytest.raises(RuntimeError, match="WorktreeGit"):
        commit_of(wt.path, "HEAD")
    assert wt.commit_of("HEAD") == commit_of(wt.common, "HEAD")


# -- transcripts and key homes ---------------------------------------------------------------------------


def _transcript(home: Path, project: str, data: bytes, sid: str = SID) -> Path:
    path = home / "projects" / project / f"{sid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def agent(settings: Settings, key: Key) -> Agent:
    return get_agent("fake", settings).with_home(key_home(settings, key))


@pytest.fixture
def canary(tmp_path: Path) -> bytes:
    data = b'{"secret": "the operator\'s private key"}\n'
    (tmp_path / "id_rsa").write_bytes(data)
    return data


def test_a_transcript_replaced_by_a_link_is_not_copied_into_the_snapshot(
    store: Store, agent: Agent, key: Key, tmp_path: Path, canary: bytes
) -> None:
    real = _transcript(agent.home, "-w-a", b'{"type":"user"}\n')
    linked = _transcript(agent.home, "-w-b", b"")
    linked.unlink()
    linked.symlink_to(tmp_path / "id_rsa")
    elsewhere = tmp_path / "other-key-projects"
    _transcript(elsewhere, "-w-c", canary)
    (agent.home / "projects" / "-w-c").symlink_to(elsewhere / "projects" / "-w-c")
    assert canary in b"".join(p.read_bytes() for p in agent.transcript_files(SID)), "a plain read follows"

    snapshot = take_snapshot(store, agent, key, SID)
    assert snapshot is not None
    assert list(snapshot.files) == [str(real.relative_to(agent.home))]
    assert isinstance(store, SQLStore) and store.get_blob(hashlib.sha256(canary).hexdigest()) is None


def test_copies_between_key_homes_skip_links(settings: Settings, tmp_path: Path, canary: bytes) -> None:
    source, target = tmp_path / "source-home", tmp_path / "target-home"
    real = _transcript(source, "-w-a", b'{"type":"user"}\n')
    linked = _transcript(source, "-w-b", b"")
    linked.unlink()
    linked.symlink_to(tmp_path / "id_rsa")
    copies = keyspace.copy_into(source, target, [real, linked])
    assert copies == [target / real.relative_to(source)]
    assert not (target / linked.relative_to(source)).exists()

    base = tmp_path / "base"
    (base / ".gemini").mkdir(parents=True)
    (base / ".gemini" / "oauth_creds.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / ".gemini").symlink_to(outside)
    assert keyspace.seed_home(base, target, (".gemini/oauth_creds.json",)) == []
    assert not any(outside.iterdir())


# -- refs that name no object ---------------------------------------------------------------------------


def test_refs_an_agent_points_at_no_object_never_stop_the_repos_fetches(
    settings: Settings, workdirs: Workdirs, key: Key, wt: WorktreeGit, src_repo: Path
) -> None:
    """git's fetch checks what it got against every ref, every worktree's HEAD included: one naming
    no object fails it for every key of the repo. The agent of t1 writes two such refs."""
    (wt.admin / "HEAD").write_text("1" * 40 + "\n")
    (wt.common / "refs" / "heads" / branch_for(key)).write_text("2" * 40 + "\n")
    new = commit_file(src_repo, "later.txt", "upstream moved on\n", "later")
    plain = subprocess.run(["git", "fetch", "-q", "origin"], cwd=wt.common, capture_output=True, text=True)
    assert plain.returncode != 0 and "bad object" in plain.stderr, "plain git falls for it"

    other = make_key("fake", str(src_repo), "t2", AGENTS)
    workdirs.prepare_worktree(other, branch_for(other), None)  # a new key: fetches first
    assert commit_of(wt.common, "refs/remotes/origin/main") == new
    assert not (wt.admin / "HEAD").exists() and commit_of(wt.common, f"refs/heads/{branch_for(key)}") is None

    after = go(settings, src_repo, "go on", thread="t1")  # t1 itself: its HEAD back on its branch
    assert after.run.outcome == Outcome.SUCCEEDED, after.run.error
    assert (wt.admin / "HEAD").read_text() == f"ref: refs/heads/{branch_for(key)}\n"


def test_a_head_of_git_placeholder_zeros_is_pointed_at_the_branch(
    workdirs: Workdirs, key: Key, wt: WorktreeGit
) -> None:
    (wt.admin / "HEAD").write_text("0" * 40 + "\n")
    workdirs.prepare_worktree(key, branch_for(key), None)
    assert (wt.admin / "HEAD").read_text() == f"ref: refs/heads/{branch_for(key)}\n"


def test_a_bad_ref_behind_a_link_in_the_admin_dir_is_never_removed_through_it(
    wt: WorktreeGit, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "bisect"
    outside.mkdir(parents=True)
    (outside / "bad").write_text("3" * 40 + "\n")  # names no object, as git would report it
    (wt.admin / "refs").symlink_to(outside.parent)
    assert not badrefs.heal(wt.common, f"worktrees/{wt.admin.name}/refs/bisect/bad")
    assert (outside / "bad").read_text() == "3" * 40 + "\n"
    (wt.admin / "refs").unlink()
    (wt.admin / "HEAD").write_text("4" * 40 + "\n")
    assert badrefs.heal(wt.common, f"worktrees/{wt.admin.name}/HEAD") and not (wt.admin / "HEAD").exists()


def test_redact_removes_a_urls_whole_user_info() -> None:
    """Every character of a URL's user-info goes, a password holding ``@`` or a quote included; the
    rest of the text (a path's ``@scope``, quoted text beside the URL) stays."""
    cases = {
        "fatal: unable to access 'https://x-access-token:ghs_s3cret@github.com/acme/api/': 403": (
            "fatal: unable to access 'https://github.com/acme/api/': 403"
        ),
        "https://u:p@ss3cret@host/x": "https://host/x",
        "https://u:it's3cret@host/x": "https://host/x",
        "cannot reach postgresql://baton:pw@localhost:5432/db": "cannot reach postgresql://localhost:5432/db",
        "https://host/a/@scope/pkg and 'a@b'": "https://host/a/@scope/pkg and 'a@b'",
    }
    for text, redacted in cases.items():
        assert redact(text) == redacted, text
