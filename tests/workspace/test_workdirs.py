"""Workdirs with real git: cache clones, stable worktrees, checkpoints, identity and askpass, disk usage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton.agents import AGENTS
from baton.errors import BadInput, GitError, RemoteError
from baton.keys import Key, Repo, make_key
from baton.settings import Settings, load_settings
from baton.testing.git_http import GitHttpServer
from baton.workspace.gitcmd import parallel_checkout, remote_error
from baton.workspace.workdirs import Workdirs, branch_for, disk_usage
from tests.conftest import commit_file, git

TOKEN = "t0ken-for-the-test-server"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin" / "api"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    commit_file(repo, "README.md", "hello\n", "first")
    commit_file(repo, "app.py", "print(1)\n", "second")
    return repo


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"home": str(tmp_path / "home")}, environ={})


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def key(origin: Path) -> Key:
    return make_key("fake", str(origin), "issue-1", AGENTS)


def index_bytes(worktree: Path) -> bytes:
    return Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index")).read_bytes()


# -- cache clones ---------------------------------------------------------------------------------


def test_cache_clone_of_a_local_repo_is_bare_and_reused(workdirs: Workdirs, key: Key, origin: Path) -> None:
    cache = workdirs.ensure_cache(key.repo, key.agent)
    assert cache == workdirs.home / "repos" / f"{key.repo.slug}.git"
    assert git(cache, "rev-parse", "--is-bare-repository") == "true"
    assert git(cache, "rev-parse", "refs/remotes/origin/main") == git(origin, "rev-parse", "HEAD")
    marker = cache / "baton-test-marker"
    marker.write_text("x")
    new_head = commit_file(origin, "later.txt", "later\n", "third")
    assert workdirs.ensure_cache(key.repo, key.agent) == cache
    assert marker.exists()  # the same clone, not a new one
    assert git(cache, "rev-parse", "refs/remotes/origin/main") == new_head  # but fetched
    assert not [p.name for p in cache.parent.iterdir() if p.name.startswith(".clone-")]


def test_clone_of_an_unreachable_repo_is_bad_input(workdirs: Workdirs, tmp_path: Path) -> None:
    repo_dir = tmp_path / "gone"
    repo_dir.mkdir()
    git(repo_dir, "init", "--quiet")
    key = make_key("fake", str(repo_dir), "issue-1", AGENTS)
    (repo_dir / ".git" / "HEAD").write_text("garbage\n")  # no longer a repository git can clone
    with pytest.raises(BadInput, match="cannot clone repo"):
        workdirs.ensure_cache(key.repo, key.agent)
    assert not workdirs.cache_path(key.repo).exists()


@pytest.fixture
def served(tmp_path: Path, origin: Path) -> Iterator[GitHttpServer]:
    """``origin`` served over smart HTTP on 127.0.0.1 as ``api.git``, behind a Basic-auth token."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(origin), "api.git")
    git(root / "api.git", "config", "uploadpack.allowFilter", "true")
    with GitHttpServer(root=root, token=TOKEN) as server:
        yield server


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_clone_over_http_with_the_token(
    workdirs: Workdirs, served: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    key = make_key("fake", served.url("api.git"), "issue-1", AGENTS)
    path, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert built and (path / "app.py").read_text() == "print(1)\n"


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong token", "Authentication failed"),
        ("no such repository", "not found"),
        ("connection refused", "Failed to connect"),
    ],
)
def test_unreachable_remote_is_a_remote_error_naming_the_url(
    workdirs: Workdirs, served: GitHttpServer, monkeypatch: pytest.MonkeyPatch, case: str, words: str
) -> None:
    monkeypatch.setenv("BATON_GIT_TOKEN", "wrong-token" if case == "wrong token" else TOKEN)
    url = {
        "wrong token": served.url("api.git"),
        "no such repository": served.url("missing.git"),
        "connection refused": f"http://127.0.0.1:{closed_port()}/api.git",
    }[case]
    key = make_key("fake", url, "issue-1", AGENTS)
    with pytest.raises(RemoteError) as caught:
        workdirs.ensure_worktree(key, branch_for(key), None)
    message = str(caught.value)
    assert caught.value.exit_code == 4
    assert url in message and words in message
    assert TOKEN not in message and "wrong-token" not in message
    assert not workdirs.cache_path(key.repo).exists()
    assert not workdirs.worktree_path(key).exists()


def test_fetch_of_a_remote_gone_away_is_a_remote_error(
    workdirs: Workdirs, served: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    key = make_key("fake", served.url("api.git"), "issue-1", AGENTS)
    workdirs.ensure_cache(key.repo, key.agent)
    monkeypatch.setenv("BATON_GIT_TOKEN", "revoked")
    with pytest.raises(RemoteError, match="fetch"):
        workdirs.ensure_cache(key.repo, key.agent)


def test_credentials_in_a_url_never_reach_the_message(workdirs: Workdirs) -> None:
    # make_key refuses such a URL up front; a Repo built by hand (an API caller) is the last line
    url = f"http://bot:{TOKEN}@127.0.0.1:{closed_port()}/api.git"
    with pytest.raises(RemoteError) as caught:
        workdirs.ensure_cache(Repo(url, "127.0.0.1/api", False), "fake")
    assert TOKEN not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_baton_run_on_an_unreachable_remote_exits_4_and_writes_nothing(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cli_here: Callable[..., subprocess.CompletedProcess[str]],
    home: Path,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api.git"
    out = cli("run", "-a", "fake", "-r", url, "-t", "issue-1", "hello")
    assert out.returncode == 4, out.stderr
    assert url in out.stderr and "Failed to connect" in out.stderr
    assert "Traceback" not in out.stderr
    assert cli_here("sessions", "ls", "--json").stdout.strip() == "[]"
    assert not (home / "worktrees").exists()


def test_malformed_url_stays_bad_input() -> None:
    error = remote_error(
        Repo("https://[bad/x", "bad/x", False),
        "clone",
        GitError("git clone failed: fatal: unable to access 'https://[bad/x/': URL using bad/illegal format"),
    )
    assert type(error) is BadInput


# -- worktrees ------------------------------------------------------------------------------------


def test_worktree_at_the_stable_path_on_the_key_branch(workdirs: Workdirs, key: Key, origin: Path) -> None:
    path, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert built is True
    assert path == workdirs.home / "worktrees" / "fake" / key.repo.slug / "issue-1"
    assert branch_for(key) == "baton/fake/issue-1"
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/issue-1"
    assert git(path, "rev-parse", "HEAD") == git(origin, "rev-parse", "HEAD")
    assert (path / "app.py").read_text() == "print(1)\n"


def test_a_checked_out_worktree_has_no_entry_git_must_read_again(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    index = Path(git(path, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    second = os.lstat(index).st_mtime_ns // 10**9
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    debug = subprocess.run(
        ["git", "ls-files", "--debug"], cwd=path, env=env, capture_output=True, text=True, check=True
    ).stdout
    mtimes = [int(line.split()[1].split(":")[0]) for line in debug.splitlines() if "mtime:" in line]
    assert len(mtimes) == 3 and max(mtimes) < second  # none racily clean: no re-read on every status
    (path / "app.py").write_text("print(9)\n")  # the same size, at once
    assert git(path, "status", "--porcelain") == "M app.py"


def test_existing_worktree_is_reused_without_a_rebuild(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "scratch.txt").write_text("work in progress\n")
    (path / "app.py").write_text("print(2)\n")
    again, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert again == path
    assert built is False
    assert (path / "scratch.txt").read_text() == "work in progress\n"
    assert (path / "app.py").read_text() == "print(2)\n"


def test_two_threads_get_separate_worktrees_and_branches(workdirs: Workdirs, key: Key, origin: Path) -> None:
    other = make_key("fake", str(origin), "issue-2", AGENTS)
    one, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    two, _ = workdirs.ensure_worktree(other, branch_for(other), None)
    assert one != two
    assert git(two, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/issue-2"
    (one / "only-in-one").write_text("x")
    assert not (two / "only-in-one").exists()


def test_base_ref_is_honoured(workdirs: Workdirs, key: Key, origin: Path) -> None:
    git(origin, "checkout", "--quiet", "-b", "feature")
    feature_head = commit_file(origin, "feature.txt", "f\n", "feature work")
    git(origin, "checkout", "--quiet", "main")
    path, built = workdirs.ensure_worktree(key, branch_for(key), "feature")
    assert built
    assert git(path, "rev-parse", "HEAD") == feature_head
    assert (path / "feature.txt").is_file()


def test_base_can_be_a_commit(workdirs: Workdirs, key: Key, origin: Path) -> None:
    first = git(origin, "rev-parse", "HEAD~1")
    path, _ = workdirs.ensure_worktree(key, branch_for(key), first)
    assert git(path, "rev-parse", "HEAD") == first
    assert not (path / "app.py").exists()


def test_bad_base_is_bad_input_and_leaves_no_worktree(workdirs: Workdirs, key: Key) -> None:
    with pytest.raises(BadInput, match="base 'no-such-branch'"):
        workdirs.ensure_worktree(key, branch_for(key), "no-such-branch")
    assert not (workdirs.worktree_path(key) / ".git").exists()


def test_half_made_worktree_directory_is_replaced(workdirs: Workdirs, key: Key) -> None:
    path = workdirs.worktree_path(key)
    path.mkdir(parents=True)
    (path / "junk").write_text("left by a crash")
    rebuilt, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert built and rebuilt == path
    assert (path / ".git").is_file()
    assert not (path / "junk").exists()


@pytest.mark.parametrize("wait_for", ["locked", "HEAD", "files"])
def test_a_git_worktree_add_killed_midway_is_undone_and_the_key_rebuilt(
    workdirs: Workdirs, key: Key, origin: Path, wait_for: str
) -> None:
    """git writes ``locked``, then a placeholder HEAD of zeros, then the real one, then the files; a
    kill anywhere leaves a locked admin dir that ``git worktree prune`` keeps, and a HEAD of zeros
    fails every fetch of the repo. The next run must neither trust nor salvage that half-checkout."""
    for i in range(1500):  # a checkout long enough to be killed in
        (origin / "many" / f"{i:04}.txt").parent.mkdir(exist_ok=True)
        (origin / "many" / f"{i:04}.txt").write_text(f"{i}\n")
    git(origin, "add", "many")
    git(origin, "commit", "-q", "-m", "many")
    cache = workdirs.ensure_cache(key.repo, key.agent)
    git(cache, "branch", branch_for(key), "refs/remotes/origin/main")
    path = workdirs.worktree_path(key)
    path.parent.mkdir(parents=True)
    admin = cache / "worktrees" / key.thread
    argv = ["git", "worktree", "add", "--quiet", str(path), branch_for(key)]
    add = subprocess.Popen(argv, cwd=cache, start_new_session=True)  # killed with its checkout child
    seen = {"locked": lambda: (admin / "locked").exists(), "HEAD": lambda: (admin / "HEAD").exists()}
    seen["files"] = lambda: (path / "many").is_dir()
    while not seen[wait_for]() and add.poll() is None:
        pass
    os.killpg(add.pid, signal.SIGKILL)
    add.wait()
    assert (admin / "locked").exists(), "git finished before the kill: the test did not test"
    new = commit_file(origin, "later.txt", "x\n", "upstream moved on")

    made = workdirs.prepare_worktree(key, branch_for(key), None)
    assert made.built and made.note is None, "a half-checkout is not the agent's work: not salvaged"
    assert git(cache, "rev-parse", "refs/remotes/origin/main") == new, "the fetch went through"
    assert git(path, "status", "--porcelain") == "" and len(os.listdir(path / "many")) == 1500
    assert not admin.exists() and workdirs.read_ref(cache, workdirs.checkpoint_ref(key)) is None


def test_discard_removes_the_worktree_and_the_branch_it_made(workdirs: Workdirs, key: Key) -> None:
    made = workdirs.prepare_worktree(key, branch_for(key), None)
    assert made.built and made.new_branch == "baton/fake/issue-1" and made.start
    cache = workdirs.cache_path(key.repo)

    workdirs.discard_new_worktree(key, made)

    assert not made.path.exists()
    assert not (workdirs.home / "worktrees" / "fake").exists()
    assert git(cache, "branch", "--list", "baton/*") == ""
    assert git(cache, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_discard_keeps_a_branch_that_existed(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    head = commit_file(path, "kept.txt", "kept\n", "earlier work")
    workdirs.remove_worktree(key)  # the worktree is lost, the branch stays
    made = workdirs.prepare_worktree(key, branch_for(key), None)
    assert made.built and made.new_branch is None

    workdirs.discard_new_worktree(key, made)

    assert not path.exists()
    assert git(workdirs.cache_path(key.repo), "rev-parse", "refs/heads/baton/fake/issue-1") == head


def test_discard_keeps_a_new_branch_that_moved_on(workdirs: Workdirs, key: Key) -> None:
    made = workdirs.prepare_worktree(key, branch_for(key), None)
    head = commit_file(made.path, "new.txt", "new\n", "a commit since")
    workdirs.discard_new_worktree(key, made)
    assert git(workdirs.cache_path(key.repo), "rev-parse", "refs/heads/baton/fake/issue-1") == head


def test_discard_of_a_reused_worktree_does_nothing(workdirs: Workdirs, key: Key) -> None:
    workdirs.ensure_worktree(key, branch_for(key), None)
    made = workdirs.prepare_worktree(key, branch_for(key), None)
    (made.path / "wip.txt").write_text("wip")
    assert not made.built
    workdirs.discard_new_worktree(key, made)
    assert (made.path / "wip.txt").read_text() == "wip"


def test_branch_worktrees_lists_who_has_a_branch_checked_out(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    assert workdirs.branch_worktrees(key.repo, "baton/fake/issue-1") == [path]
    assert workdirs.branch_worktrees(key.repo, "baton/fake/other") == []


# -- checkpoints ----------------------------------------------------------------------------------


def test_clean_worktree_has_no_checkpoint(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    assert workdirs.checkpoint(key, path) is None
    (path / "debug.log").write_text("ignored by .gitignore")
    assert workdirs.checkpoint(key, path) is None


def test_checkpoint_captures_tracked_and_untracked_changes(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "app.py").write_text("print('changed')\n")
    (path / "new_module.py").write_text("NEW = True\n")
    (path / "README.md").unlink()
    (path / "staged.txt").write_text("staged\n")
    git(path, "add", "staged.txt")
    (path / "out.log").write_text("ignored")
    status_before = git(path, "status", "--porcelain")
    staged_before = git(path, "ls-files", "--stage")
    head = git(path, "rev-parse", "HEAD")

    commit = workdirs.checkpoint(key, path)

    assert commit is not None
    # nothing staged into the worktree's own index (git status may refresh its stat and untracked caches)
    assert git(path, "ls-files", "--stage") == staged_before
    assert git(path, "status", "--porcelain") == status_before
    assert git(path, "rev-parse", "HEAD") == head  # nothing committed on the branch
    cache = workdirs.cache_path(key.repo)
    assert git(cache, "rev-parse", workdirs.checkpoint_ref(key)) == commit
    assert git(cache, "rev-parse", f"{commit}^") == head
    files = set(git(cache, "ls-tree", "-r", "--name-only", commit).splitlines())
    assert files == {".gitignore", "app.py", "new_module.py", "staged.txt"}
    assert git(cache, "show", f"{commit}:app.py") == "print('changed')"
    assert "fake" in git(cache, "log", "-1", "--format=%an <%ae>", commit)


def test_checkpoint_uses_gits_untracked_cache_and_still_sees_every_change(
    workdirs: Workdirs, key: Key
) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "pkg" / "deep").mkdir(parents=True)
    (path / "pkg" / "deep" / "a.py").write_text("a")
    git(path, "add", "pkg")
    git(path, "commit", "--quiet", "-m", "pkg")
    assert workdirs.checkpoint(key, path) is None
    assert b"UNTR" in index_bytes(path)  # the scan's result is cached in the worktree's index
    cache = workdirs.cache_path(key.repo)

    (path / "pkg" / "deep" / "b.py").write_text("b")  # a new file in a cached directory
    first = workdirs.checkpoint(key, path)
    assert first is not None and git(cache, "show", f"{first}:pkg/deep/b.py") == "b"
    (path / "pkg" / "new").mkdir()  # a new directory
    (path / "pkg" / "new" / "c.log").write_text("c")  # ignored by .gitignore...
    assert workdirs.checkpoint(key, path) is not None
    assert "pkg/new/c.log" not in git(cache, "ls-tree", "-r", "--name-only", workdirs.checkpoint_ref(key))
    (path / ".gitignore").write_text("")  # ...until the rule goes
    third = workdirs.checkpoint(key, path)
    assert third is not None and git(cache, "show", f"{third}:pkg/new/c.log") == "c"
    (path / "pkg" / "deep" / "b.py").unlink()
    (path / "pkg" / "new" / "c.log").unlink()
    git(path, "checkout", "--quiet", "--", ".gitignore")
    assert workdirs.checkpoint(key, path) is None


def test_checkpoint_of_a_cleaned_worktree_drops_the_old_one(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "wip.txt").write_text("wip")
    assert workdirs.checkpoint(key, path) is not None
    (path / "wip.txt").unlink()
    assert workdirs.checkpoint(key, path) is None
    cache = workdirs.cache_path(key.repo)
    listed = git(cache, "for-each-ref", "refs/baton/")
    assert listed == ""


def test_checkpoint_of_a_worktree_holding_another_repository(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "app.py").write_text("print('changed')\n")
    git(path, "init", "--quiet", "vendored")  # git status shows it as one untracked "vendored/"
    commit_file(path / "vendored", "lib.py", "LIB = 1\n", "vendored")
    commit = workdirs.checkpoint(key, path)
    assert commit is not None
    cache = workdirs.cache_path(key.repo)
    assert git(cache, "show", f"{commit}:app.py") == "print('changed')"
    assert "vendored" in git(cache, "ls-tree", "--name-only", commit)


def test_an_unchanged_worktree_keeps_its_checkpoint_commit(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "wip.txt").write_text("wip")
    first = workdirs.checkpoint(key, path)
    assert first is not None and workdirs.checkpoint(key, path) == first  # nothing new to share
    (path / "wip.txt").write_text("more wip")
    second = workdirs.checkpoint(key, path)
    assert second not in (None, first)
    git(path, "commit", "--quiet", "--allow-empty", "-m", "the branch moves on")  # same tree, new parent
    third = workdirs.checkpoint(key, path)
    assert third not in (None, second)
    assert git(path, "rev-parse", f"{third}^") == git(path, "rev-parse", "HEAD")


def test_refs_and_head_are_read_without_git(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    cache = workdirs.cache_path(key.repo)
    head = git(path, "rev-parse", "HEAD")
    git(cache, "update-ref", "refs/baton/shared/fake/issue-1", head)
    assert workdirs.read_ref(cache, "refs/baton/shared/fake/issue-1") == head
    git(cache, "pack-refs", "--all")
    assert not (cache / "refs/baton/shared/fake/issue-1").exists()
    assert workdirs.read_ref(cache, "refs/baton/shared/fake/issue-1") == head
    assert workdirs.read_ref(cache, "refs/baton/shared/fake") is None
    assert workdirs.read_ref(cache, "refs/baton/shared/fake/issue-12") is None
    assert workdirs.head_commit(key, path) == head  # the branch, packed
    commit_file(path, "more.txt", "more\n", "more")
    assert workdirs.head_commit(key, path) == git(path, "rev-parse", "HEAD") != head  # loose again
    git(path, "checkout", "--quiet", "--detach", head)
    assert workdirs.head_commit(key, path) == head


def test_sync_worktree_brings_a_worktree_to_its_branch_and_checkpoint(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    start = git(path, "rev-parse", "HEAD")
    commit_file(path, "later.txt", "later\n", "later work")
    (path / "wip.txt").write_text("wip\n")
    assert workdirs.checkpoint(key, path) is not None
    later = git(path, "rev-parse", "HEAD")
    git(path, "reset", "--quiet", "--hard", start)  # the worktree as it was, with stray files
    (path / "stray.txt").write_text("stray\n")
    (path / "out.log").write_text("ignored output\n")
    git(workdirs.cache_path(key.repo), "update-ref", f"refs/heads/{branch_for(key)}", later)
    workdirs.catch_up(key, branch_for(key))
    assert git(path, "rev-parse", "HEAD") == later
    assert (path / "wip.txt").read_text() == "wip\n" and (path / "later.txt").is_file()
    assert not (path / "stray.txt").exists()
    assert (path / "out.log").is_file()  # ignored files stay, as on a branch switch


def test_checkpoint_of_a_missing_worktree_is_none(workdirs: Workdirs, key: Key, tmp_path: Path) -> None:
    assert workdirs.checkpoint(key, tmp_path / "nowhere") is None


def test_lost_worktree_is_rebuilt_with_its_checkpoint(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "committed.txt").write_text("on the branch\n")
    git(path, "add", "committed.txt")
    git(path, "commit", "--quiet", "-m", "agent work")
    branch_head = git(path, "rev-parse", "HEAD")
    (path / "app.py").write_text("print('uncommitted')\n")
    (path / "notes.md").write_text("untracked notes\n")
    (path / "README.md").unlink()
    assert workdirs.checkpoint(key, path) is not None

    subprocess.run(["rm", "-rf", str(path)], check=True)
    rebuilt, built = workdirs.ensure_worktree(key, branch_for(key), None)

    assert built is True
    assert rebuilt == path
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/issue-1"
    assert git(path, "rev-parse", "HEAD") == branch_head
    assert (path / "committed.txt").read_text() == "on the branch\n"
    assert (path / "app.py").read_text() == "print('uncommitted')\n"
    assert (path / "notes.md").read_text() == "untracked notes\n"
    assert not (path / "README.md").exists()
    assert git(path, "diff", "--cached", "--name-only") == ""  # restored into the worktree only


def test_stale_checkpoint_is_not_applied_after_the_branch_moved(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "app.py").write_text("print('old wip')\n")
    workdirs.checkpoint(key, path)
    git(path, "checkout", "--quiet", "--", "app.py")
    commit_file(path, "moved.txt", "moved\n", "branch moves on")
    subprocess.run(["rm", "-rf", str(path)], check=True)
    workdirs.ensure_worktree(key, branch_for(key), None)
    assert (path / "moved.txt").is_file()
    assert (path / "app.py").read_text() == "print(1)\n"


def test_remove_worktree_with_delete_branch(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "wip").write_text("x")
    workdirs.checkpoint(key, path)
    cache = workdirs.cache_path(key.repo)

    assert workdirs.remove_worktree(key, branch_for(key)) is True

    assert not path.exists()
    assert not (workdirs.home / "worktrees" / "fake").exists()  # empty parents removed
    assert git(cache, "branch", "--list", "baton/*") == ""
    assert git(cache, "for-each-ref", "refs/baton/") == ""
    assert git(cache, "worktree", "list", "--porcelain").count("worktree ") == 1  # only the bare clone
    assert workdirs.remove_worktree(key, branch_for(key)) is False


def test_remove_worktree_keeping_the_branch_resumes_it(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    head = commit_file(path, "kept.txt", "kept\n", "keep me")
    assert workdirs.remove_worktree(key) is True
    cache = workdirs.cache_path(key.repo)
    assert git(cache, "rev-parse", "refs/heads/baton/fake/issue-1") == head
    again, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert built and git(again, "rev-parse", "HEAD") == head


# -- identity and credentials ---------------------------------------------------------------------


def test_git_env_gives_per_agent_identity_and_askpass(workdirs: Workdirs) -> None:
    env = workdirs.git_env("fake")
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "baton (fake)"
    assert env["GIT_AUTHOR_EMAIL"] == env["GIT_COMMITTER_EMAIL"] == "fake@baton.invalid"
    assert workdirs.git_env("claude")["GIT_AUTHOR_EMAIL"] == "claude@baton.invalid"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    askpass = Path(env["GIT_ASKPASS"])
    assert askpass == workdirs.home / "bin" / "git-askpass"
    assert askpass.stat().st_mode & 0o777 == 0o700

    base = {"PATH": os.environ["PATH"]}
    password = subprocess.run(
        [str(askpass), "Password for 'https://x-access-token@github.com': "],
        env={**base, "BATON_GIT_TOKEN": "tok-123"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert password.stdout == "tok-123\n"
    user = subprocess.run(
        [str(askpass), "Username for 'https://github.com': "],
        env=base,
        capture_output=True,
        text=True,
        check=True,
    )
    assert user.stdout == "x-access-token\n"
    assert "tok-123" not in askpass.read_text()


def test_askpass_is_written_atomically_through_a_temp_file_of_its_own(workdirs: Workdirs) -> None:
    bin_dir = workdirs.home / "bin"
    (bin_dir / "git-askpass.tmp").mkdir(parents=True)  # what a fixed temp name would collide with
    askpass = Path(workdirs.git_env("fake")["GIT_ASKPASS"])
    assert askpass.read_text().startswith("#!/bin/sh")
    assert askpass.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in bin_dir.iterdir()) == ["git-askpass", "git-askpass.tmp"]


def test_git_identity_follows_settings(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "home": str(tmp_path / "h"),
            "git_user_name": "{agent}-bot",
            "git_user_email": "{agent}@x.test",
        },
        environ={},
    )
    env = Workdirs(settings).git_env("codex")
    assert (env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"]) == ("codex-bot", "codex@x.test")


def test_commits_in_a_worktree_carry_the_agent_identity(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    (path / "x.txt").write_text("x")
    env = {**os.environ, **workdirs.git_env("fake")}
    subprocess.run(["git", "add", "x.txt"], cwd=path, env=env, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "agent"], cwd=path, env=env, check=True)
    assert git(path, "log", "-1", "--format=%an <%ae>") == "baton (fake) <fake@baton.invalid>"


# -- disk usage -----------------------------------------------------------------------------------


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "a").write_bytes(b"x" * 100_000)
    single = disk_usage(root)
    assert single >= 100_000
    os.link(root / "a", root / "hardlink")
    assert disk_usage(root) == single
    (root / "copy").write_bytes(b"x" * 100_000)
    assert disk_usage(root) >= 2 * 100_000
    assert disk_usage(tmp_path / "missing") == 0


def test_disk_usage_of_a_worktree_and_cache(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    assert disk_usage(path) > 0
    assert disk_usage(workdirs.cache_path(key.repo)) > 0


def test_a_default_branch_without_commits_is_bad_input(workdirs: Workdirs, key: Key, origin: Path) -> None:
    """The repository has commits, but its HEAD names a branch that has none: refused, naming it,
    instead of git's ``ambiguous argument``; with --base the worktree is made."""
    git(origin, "symbolic-ref", "HEAD", "refs/heads/trunk")
    with pytest.raises(BadInput, match="default branch 'trunk' has no commits"):
        workdirs.prepare_worktree(key, branch_for(key), None)
    assert workdirs.prepare_worktree(key, branch_for(key), "main").built


def test_a_checkpoint_ref_naming_no_commit_is_not_applied_on_a_rebuild(workdirs: Workdirs, key: Key) -> None:
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    cache = workdirs.cache_path(key.repo)
    tree = git(path, "rev-parse", "HEAD^{tree}")
    git(cache, "update-ref", workdirs.checkpoint_ref(key), tree)  # a tree, not a checkpoint commit
    subprocess.run(["rm", "-rf", str(path)], check=True)
    rebuilt, built = workdirs.ensure_worktree(key, branch_for(key), None)
    assert built and rebuilt == path
    assert (path / "app.py").read_text() == "print(1)\n" and git(path, "status", "--porcelain") == ""


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 2), (4, 4), (64, 4)])
def test_checkouts_of_many_files_use_one_git_worker_per_cpu_at_most_four(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert parallel_checkout() == ["-c", f"checkout.workers={workers}"]


def test_a_worktree_of_many_files_checked_out_by_parallel_workers_is_complete_and_clean(
    workdirs: Workdirs, key: Key, origin: Path
) -> None:
    """Above git's threshold (100 files) baton's checkout is written by several processes (on a
    machine with more than one CPU): every file is there, with its content and mode, and git sees
    nothing changed."""
    for i in range(300):
        (origin / f"d{i % 7}").mkdir(exist_ok=True)
        (origin / f"d{i % 7}" / f"f{i}.txt").write_text(f"file {i}\n" * (i % 50 + 1))
    (origin / "run.sh").write_text("#!/bin/sh\n")
    (origin / "run.sh").chmod(0o755)
    (origin / "link").symlink_to("run.sh")
    git(origin, "add", "-A")
    commit_file(origin, "last.txt", "last\n", "many files")
    path = workdirs.prepare_worktree(key, branch_for(key), None).path
    for i in range(300):
        assert (path / f"d{i % 7}" / f"f{i}.txt").read_text() == f"file {i}\n" * (i % 50 + 1)
    assert os.access(path / "run.sh", os.X_OK) and os.readlink(path / "link") == "run.sh"
    assert git(path, "status", "--porcelain") == ""
