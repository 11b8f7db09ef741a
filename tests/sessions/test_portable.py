"""Portable work: two homes on one store — worker A and worker B, each with its own ``BATON_HOME`` — and a key
that moves between them with its transcript, its branch's commits and its uncommitted and untracked files; the
checkpoints in the store; the recovery steps when a bundle is corrupt or gone; checkpoints in
``sessions export``/``import``. The shared store is ``store_url`` (conftest): every test runs on SQLite and on
a fresh PostgreSQL database, but the ACP agents' run on PostgreSQL only (:data:`ON_THE_FLEETS_STORE`)."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, RunRequest, RunResult, open_store, run
from baton.errors import BadInput, Fenced, GitError, StoreError
from baton.keys import Key, make_key
from baton.models import CheckpointRecord, Fence
from baton.sessions.manage import Scope, export_session, import_session, reset_session
from baton.settings import Settings, load_settings
from baton.store import Store
from baton.store.base import Lease
from baton.testing.git_http import GitHttpServer
from baton.testing.mock_anthropic import MockAnthropic
from baton.workspace import gitcmd, portable
from baton.workspace.archives import list_archives
from baton.workspace.workdirs import Workdirs
from tests.conftest import FAST, FIRST, MOCKS, agent_work, git, status

TOKEN = "portable-test-token"


def worker(tmp_path: Path, name: str, store_url: str) -> Settings:
    home = tmp_path / name
    return load_settings(overrides={"home": str(home), "store_url": store_url, **FAST}, environ={})


@pytest.fixture
def a(tmp_path: Path, store_url: str) -> Settings:
    return worker(tmp_path, "worker-a", store_url)


@pytest.fixture
def b(tmp_path: Path, store_url: str) -> Settings:
    return worker(tmp_path, "worker-b", store_url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def go(settings: Settings, repo: Path | str, prompt: str = "go on", thread: str = "t1") -> RunResult:
    result = run(RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt), settings=settings)
    assert result.ok, result.run.error
    return result


def key_of(repo: Path | str, thread: str = "t1") -> Key:
    return make_key("fake", str(repo), thread, ["fake"])


def worktree(result: RunResult) -> Path:
    return Path(result.session.worktree)


# -- the checkpoints table ---------------------------------------------------------------------------


def record(digest: str, commit: str = "c" * 40, thread: str = "t1") -> CheckpointRecord:
    return CheckpointRecord("fake", "x/y", thread, commit, "baton/fake/t1", "b" * 40, digest, 3, 1.0)


def test_a_checkpoint_replaces_the_last_and_drops_its_unused_bundle(store: Store) -> None:
    store.save_checkpoint(record("d1"), b"one")
    store.save_checkpoint(record("d1", thread="t2"), b"one")  # the same bundle for another key
    store.save_checkpoint(record("d2", commit="e" * 40), b"two")
    assert store.get_checkpoint("fake", "x/y", "t1") == record("d2", commit="e" * 40)
    assert store.get_blob("d1") == b"one"  # t2 still uses it
    store.delete_checkpoint("fake", "x/y", "t2")
    assert store.get_blob("d1") is None and store.get_checkpoint("fake", "x/y", "t2") is None
    store.delete_checkpoint("fake", "x/y", "t1")
    assert store.get_blob("d2") is None and store.get_checkpoint("fake", "x/y", "t1") is None


def test_a_checkpoint_with_an_older_fence_is_refused_and_writes_nothing(store: Store) -> None:
    lease = Lease(key="k1", holder="h1", host="a", pid=1, acquired_at=0.0, expires_at=0.0)
    assert store.try_lease(lease, 30.0, lambda _e, _n: True) is None
    taken = Lease(key="k1", holder="h2", host="b", pid=2, acquired_at=0.0, expires_at=0.0)
    assert store.try_lease(taken, 30.0, lambda _e, _n: True) is None
    assert taken.fence == lease.fence + 1
    with pytest.raises(Fenced):
        store.save_checkpoint(record("d1"), b"one", fence=Fence("k1", lease.fence))
    assert store.get_checkpoint("fake", "x/y", "t1") is None and store.get_blob("d1") is None
    store.save_checkpoint(record("d1"), b"one", fence=Fence("k1", taken.fence))
    saved = store.get_checkpoint("fake", "x/y", "t1")
    assert saved is not None and saved.fence == taken.fence
    store.save_checkpoint(record("d2"), b"two", fence=Fence("k9", 7))  # a Redis grant: recorded
    with pytest.raises(Fenced):
        store.save_checkpoint(record("d3"), b"three", fence=Fence("k9", 6))


# -- a key moving between workers --------------------------------------------------------------------


def test_turn_three_on_worker_b_continues_what_a_left(
    a: Settings, b: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo, "turn 1")
    path_a = worktree(first)
    commit = agent_work(path_a)
    second = go(a, src_repo, "turn 2")
    shared = store.get_checkpoint("fake", first.run.repo, "t1")
    assert shared is not None and shared.branch_sha == commit and shared.digest
    third = go(b, src_repo, "turn 3")
    path_b = worktree(third)
    assert path_b != path_a and path_b.is_relative_to(b.home)
    assert third.session.agent_session_id == second.session.agent_session_id == first.session.agent_session_id
    assert third.run.mode == Mode.RESUME and third.run.result == "fake reply: received 6 messages"
    assert git(path_b, "rev-parse", "HEAD") == commit
    assert git(path_b, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/t1"
    assert (path_b / "lexer.py").read_text() == "TOKENS = []\n"
    assert (path_b / "README.md").read_text() == "# changed, not committed\n"
    assert (path_b / "notes.md").read_text() == "untracked notes\n"
    assert status(path_b) == {"M README.md", "?? notes.md"}  # still uncommitted, still untracked
    assert third.run.note and "store's checkpoint" in third.run.note


@pytest.mark.parametrize("limit", [gitcmd.UNPACK_LIMIT, 1])
def test_a_small_bundle_arrives_as_loose_objects_a_large_one_as_a_pack(
    a: Settings, b: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(gitcmd, "UNPACK_LIMIT", limit)
    go(b, src_repo, thread="other")  # B's cache clone, before the move
    packs = Workdirs(b).cache_path(key_of(src_repo).repo) / "objects" / "pack"
    before = set(packs.glob("*.pack"))
    commit = agent_work(worktree(go(a, src_repo)))
    go(a, src_repo)
    path_b = worktree(go(b, src_repo))
    assert git(path_b, "rev-parse", "HEAD") == commit and status(path_b) == {"M README.md", "?? notes.md"}
    assert len(set(packs.glob("*.pack")) - before) == (0 if limit > 1 else 1)


def test_an_unchanged_worktree_is_not_uploaded_again(a: Settings, src_repo: Path, store: Store) -> None:
    first = go(a, src_repo)
    agent_work(worktree(first))
    go(a, src_repo)
    before = store.get_checkpoint("fake", first.run.repo, "t1")
    go(a, src_repo)
    go(a, src_repo)
    assert store.get_checkpoint("fake", first.run.repo, "t1") == before
    (worktree(first) / "notes.md").write_text("more notes\n")
    go(a, src_repo)
    after = store.get_checkpoint("fake", first.run.repo, "t1")
    assert after is not None and before is not None and after.commit_sha != before.commit_sha
    assert store.get_blob(before.digest) is None  # the replaced bundle is gone


def test_a_clean_worktree_still_carries_its_branch_commits(
    a: Settings, b: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo)
    (worktree(first) / "parser.py").write_text("def parse(): ...\n")
    git(worktree(first), "add", "parser.py")
    git(worktree(first), "commit", "--quiet", "-m", "agent: parser")
    go(a, src_repo)
    shared = store.get_checkpoint("fake", first.run.repo, "t1")
    assert shared is not None and shared.commit_sha == shared.branch_sha and shared.digest
    path_b = worktree(go(b, src_repo))
    assert (path_b / "parser.py").read_text() == "def parse(): ...\n"
    assert git(path_b, "log", "-1", "--format=%s") == "agent: parser" and status(path_b) == set()


def test_a_state_the_remote_has_needs_no_bundle(
    a: Settings, b: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo)
    shared = store.get_checkpoint("fake", first.run.repo, "t1")
    assert shared is not None and shared.digest == "" and shared.size == 0
    third = go(b, src_repo)
    assert git(worktree(third), "rev-parse", "HEAD") == git(src_repo, "rev-parse", "main")


def test_back_on_a_the_stale_worktree_catches_up_and_its_own_edits_are_archived(
    a: Settings, b: Settings, src_repo: Path
) -> None:
    first = go(a, src_repo)
    path_a = worktree(first)
    (path_a / "notes.md").write_text("from a\n")
    go(a, src_repo)
    path_b = worktree(go(b, src_repo))
    (path_b / "notes.md").write_text("from b\n")
    (path_b / "b.txt").write_text("b's file\n")
    go(b, src_repo)
    (path_a / "stray.txt").write_text("edited on a after its last run\n")  # never shared
    back = go(a, src_repo)
    assert back.run.mode == Mode.RESUME and back.run.result == "fake reply: received 10 messages"
    assert (path_a / "notes.md").read_text() == "from b\n" and (path_a / "b.txt").is_file()
    assert not (path_a / "stray.txt").exists()
    key = key_of(src_repo)
    archives = list_archives(Workdirs(a), key)
    assert len(archives) == 1 and archives[0] in (back.run.note or "")
    cache = Workdirs(a).cache_path(key.repo)
    assert git(cache, "show", f"{archives[0]}:stray.txt") == "edited on a after its last run"


def test_a_worktree_holding_what_it_shared_is_synced_in_place(
    a: Settings, b: Settings, src_repo: Path
) -> None:
    first = go(a, src_repo)
    path_a = worktree(first)
    (path_a / "notes.md").write_text("from a\n")
    go(a, src_repo)
    path_b = worktree(go(b, src_repo))
    agent_work(path_b)  # a commit, README.md changed, notes.md rewritten
    (path_b / "src" / "app.py").unlink()  # a tracked file deleted, not committed
    (path_b / "docs" / "deep").mkdir(parents=True)
    (path_b / "docs" / "deep" / "new.md").write_text("nested and untracked\n")
    go(b, src_repo)
    back = go(a, src_repo)
    assert (
        status(path_a)
        == status(path_b)
        == {"M README.md", "D src/app.py", "?? docs/deep/new.md", "?? notes.md"}
    )
    assert git(path_a, "rev-parse", "HEAD") == git(path_b, "rev-parse", "HEAD")
    assert (path_a / "notes.md").read_text() == "untracked notes\n"
    assert (path_a / "docs" / "deep" / "new.md").read_text() == "nested and untracked\n"
    assert list_archives(Workdirs(a), key_of(src_repo)) == []  # nothing of A's was at risk
    assert back.run.note and "store's checkpoint" in back.run.note and "kept at" not in back.run.note


def test_a_failed_sync_in_place_rebuilds_the_worktree_instead(
    a: Settings, b: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path_a = worktree(go(a, src_repo))
    go(a, src_repo)
    path_b = worktree(go(b, src_repo))
    agent_work(path_b)
    go(b, src_repo)

    def broken(*_args: object, **_kwargs: object) -> None:
        (path_a / "half-written").write_text("x")
        raise GitError("git reset failed: simulated")

    monkeypatch.setattr(Workdirs, "catch_up", broken)
    back = go(a, src_repo)
    assert not (path_a / "half-written").exists()  # rebuilt, not the half-synced directory
    assert status(path_a) == {"M README.md", "?? notes.md"} and (path_a / "lexer.py").is_file()
    assert back.run.note and "store's checkpoint" in back.run.note


def test_a_corrupt_bundle_degrades_to_the_branch_or_base_with_a_note(
    a: Settings, b: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo)
    agent_work(worktree(first))
    go(a, src_repo)
    shared = store.get_checkpoint("fake", first.run.repo, "t1")
    assert shared is not None
    bundle = store.get_blob(shared.digest)
    assert bundle is not None
    store.delete_checkpoint("fake", first.run.repo, "t1")
    shared.digest = "0" * 64
    store.save_checkpoint(shared, bundle[:-200] + b"\0" * 200)  # the pack's tail (and checksum) broken
    third = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=b)
    assert third.ok and third.run.result == "fake reply: received 6 messages"
    assert third.run.note and "unusable" in third.run.note and "base" in third.run.note
    assert git(worktree(third), "rev-parse", "HEAD") == git(src_repo, "rev-parse", "main")
    replaced = store.get_checkpoint("fake", first.run.repo, "t1")
    assert replaced is not None and replaced.commit_sha != shared.commit_sha  # B's state replaced it


def test_a_missing_bundle_degrades_too(a: Settings, b: Settings, src_repo: Path, store: Store) -> None:
    first = go(a, src_repo)
    agent_work(worktree(first))
    go(a, src_repo)
    shared = store.get_checkpoint("fake", first.run.repo, "t1")
    assert shared is not None
    with store._tx() as conn:  # type: ignore[attr-defined]
        from baton.store.schema import blobs

        conn.execute(blobs.delete().where(blobs.c.digest == shared.digest))
    third = go(b, src_repo)
    assert third.run.note and "missing from the store" in third.run.note
    assert (worktree(third) / "README.md").read_text() == "# demo\n"


def test_bundle_prerequisites_the_cache_lacks_are_fetched_from_the_remote(
    a: Settings, b: Settings, src_repo: Path
) -> None:
    go(b, src_repo, thread="other")  # B has a cache clone of the repository as it was
    (src_repo / "later.txt").write_text("pushed later\n")
    git(src_repo, "add", "later.txt")
    git(src_repo, "commit", "--quiet", "-m", "later")
    first = go(a, src_repo)  # A's branch starts from the new commit, which B's cache lacks
    (worktree(first) / "notes.md").write_text("from a\n")
    go(a, src_repo)
    path_b = worktree(go(b, src_repo))
    assert (path_b / "later.txt").is_file() and (path_b / "notes.md").read_text() == "from a\n"


def test_a_partial_clone_over_http_carries_the_work_too(
    a: Settings, b: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(src_repo), "api.git")
    git(root / "api.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    with GitHttpServer(root=root, token=TOKEN) as server:
        url = server.url("api.git")
        first = go(a, url)
        assert git(Workdirs(a).cache_path(key_of(url).repo), "config", "remote.origin.partialclonefilter")
        commit = agent_work(worktree(first))
        go(a, url)
        path_b = worktree(go(b, url))
    assert git(path_b, "rev-parse", "HEAD") == commit
    assert status(path_b) == {"M README.md", "?? notes.md"}


def test_reset_of_the_worktree_removes_the_shared_checkpoint(
    a: Settings, b: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo)
    agent_work(worktree(first))
    go(a, src_repo)
    result = reset_session(store, a, key_of(src_repo), Scope.WORKTREE)
    assert result.checkpoint and store.get_checkpoint("fake", first.run.repo, "t1") is None
    path_b = worktree(go(b, src_repo))
    assert not (path_b / "notes.md").exists() and not (path_b / "lexer.py").exists()


def test_a_commit_the_cache_has_needs_neither_its_bundle_nor_a_fetch(
    a: Settings, src_repo: Path, store: Store
) -> None:
    first = go(a, src_repo)
    commit = agent_work(worktree(first))
    workdirs, key = Workdirs(a), key_of(src_repo)
    cache = workdirs.cache_path(key.repo)
    here = dataclasses.replace(
        record("f" * 64, commit=commit), digest="f" * 64, branch_sha=commit
    )  # no such blob
    assert (
        portable.fetch_commit(store, workdirs, key, here, cache) == commit
    )  # the cache has it: nothing asked for
    elsewhere = dataclasses.replace(here, branch_sha="b" * 40)  # a record whose commit is not on its tip
    with pytest.raises(ValueError, match="not a checkpoint on"):
        portable.fetch_commit(store, workdirs, key, elsewhere, cache)
    gone = dataclasses.replace(here, commit_sha="a" * 40)
    with pytest.raises(StoreError, match="missing from the store"):
        portable.fetch_commit(store, workdirs, key, gone, cache)
    store.put_blob("e" * 64, b"not a bundle", 12)
    with pytest.raises(ValueError, match="not a git bundle"):
        portable.fetch_commit(store, workdirs, key, dataclasses.replace(gone, digest="e" * 64), cache)


def test_the_branch_and_checkpoint_move_together_or_not_at_all(a: Settings, src_repo: Path) -> None:
    first = go(a, src_repo)
    path = worktree(first)
    commit = agent_work(path)
    workdirs, key = Workdirs(a), key_of(src_repo)
    checkpoint = workdirs.checkpoint(key)
    assert checkpoint is not None
    cache, branch = workdirs.cache_path(key.repo), "baton/fake/t1"
    base = git(cache, "rev-parse", f"{commit}^")
    portable._point_refs(workdirs, key, branch, base, base)  # a clean state: no checkpoint ref
    assert git(cache, "rev-parse", f"refs/heads/{branch}") == base
    assert workdirs.read_ref(cache, workdirs.checkpoint_ref(key)) is None
    portable._point_refs(workdirs, key, branch, checkpoint, commit)
    assert git(cache, "rev-parse", f"refs/heads/{branch}") == commit
    assert workdirs.read_ref(cache, workdirs.checkpoint_ref(key)) == checkpoint
    with pytest.raises(ValueError, match="not a valid branch name"):
        portable._point_refs(workdirs, key, f"{branch}\ndelete refs/heads/main", base, base)
    assert git(cache, "rev-parse", f"refs/heads/{branch}") == commit  # nothing moved
    assert workdirs.read_ref(cache, workdirs.checkpoint_ref(key)) == checkpoint


# -- export and import ---------------------------------------------------------------------------


def test_export_and_import_carry_the_checkpoint(
    a: Settings, src_repo: Path, store: Store, tmp_path: Path
) -> None:
    first = go(a, src_repo)
    commit = agent_work(worktree(first))
    go(a, src_repo)
    document = json.loads(json.dumps(export_session(store, key_of(src_repo))))
    assert document["checkpoint"]["bundle_b64"]
    elsewhere = worker(tmp_path, "worker-c", f"sqlite:///{tmp_path / 'other.db'}")
    other = open_store(elsewhere.resolved_store_url)
    import_session(other, elsewhere, document)
    imported = other.get_checkpoint("fake", first.run.repo, "t1")
    other.close()
    original = store.get_checkpoint("fake", first.run.repo, "t1")
    assert original is not None and original.fence > 0  # written by a run holding the key's lease
    # the same checkpoint; its fencing token is the other store's own (no lease granted there yet)
    assert imported == dataclasses.replace(original, fence=0)
    third = go(elsewhere, src_repo)
    assert third.run.result == "fake reply: received 6 messages"
    assert git(worktree(third), "rev-parse", "HEAD") == commit
    assert (worktree(third) / "notes.md").read_text() == "untracked notes\n"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c.update(bundle_b64="not base64!"), "not base64"),
        (
            lambda c: c.update(bundle_b64=base64.b64encode(b"hello, not a bundle").decode()),
            "not a git bundle",
        ),
        (lambda c: c.update(bundle_b64="A" * 8192), "limit"),  # over MAX_BUNDLE (patched)
        (lambda c: c.update(commit_sha="f" * 40), "does not hold"),
        (lambda c: c.update(commit_sha="../../etc"), "not a commit id"),
        (lambda c: c.update(branch="main"), "another branch"),
        (lambda c: c.update(bundle_b64=None), "no bundle_b64"),
    ],
)
def test_hostile_checkpoints_in_an_import_are_refused_and_nothing_is_written(
    a: Settings,
    src_repo: Path,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: object,
    words: str,
) -> None:
    first = go(a, src_repo)
    agent_work(worktree(first))
    go(a, src_repo)
    document = export_session(store, key_of(src_repo))
    assert len(document["checkpoint"]["bundle_b64"]) < 4096
    monkeypatch.setattr(portable, "MAX_BUNDLE", 4096)  # the same check as at 100 MiB, without the memory
    change(document["checkpoint"])  # type: ignore[operator]
    elsewhere = worker(tmp_path, "worker-c", f"sqlite:///{tmp_path / 'other.db'}")
    other = open_store(elsewhere.resolved_store_url)
    try:
        with pytest.raises(BadInput, match=words):
            import_session(other, elsewhere, document)
        assert other.get_session("fake", first.run.repo, "t1") is None
        assert other.get_checkpoint("fake", first.run.repo, "t1") is None
        assert other.list_runs() == []
    finally:
        other.close()


# -- the real Claude Code CLI against the mock -------------------------------------------------------


@pytest.mark.slow
def test_claude_code_turn_three_on_worker_b(
    a: Settings, b: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    def turn(settings: Settings, prompt: str) -> RunResult:
        request = RunRequest(agent="claude", repo=str(src_repo), thread="t1", prompt=prompt)
        result = run(request, settings=dataclasses.replace(settings, claude_bin=claude_bin))
        assert result.ok, result.run.error
        return result

    first = turn(a, "turn 1")
    (worktree(first) / "README.md").write_text("# uncommitted on A\n")
    (worktree(first) / "notes.md").write_text("untracked on A\n")
    turn(a, "turn 2")
    third = turn(b, "turn 3")
    assert third.run.mode == Mode.RESUME
    assert third.session.agent_session_id == first.session.agent_session_id
    # the whole history (3 prompts, 2 replies) and Claude Code's "system" messages describing the
    # environment, one per working directory: A's, then B's worktree (another path), so the mock counts 7
    # where a resume in A's own directory counts 6
    turns = [m for m in mock.conversation()[-1].messages if m["role"] in ("user", "assistant")]
    assert len(turns) == 5 and mock.message_counts() == [2, 4, 7]
    assert (worktree(third) / "README.md").read_text() == "# uncommitted on A\n"
    assert (worktree(third) / "notes.md").read_text() == "untracked on A\n"


@pytest.mark.slow
def test_claude_code_on_a_new_machine_with_the_same_mount_path(
    a: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str, tmp_path: Path
) -> None:
    """Turn three on worker B (the test above) as deployed (every pod mounts its own volume at one
    BATON_HOME path): turns 1 and 2 on worker A, whose home then goes away with its machine (moved aside,
    never read again); worker B starts EMPTY at the same path on the same store. Same session, the mock
    sees exactly the whole history (2 → 4 → 6), A's uncommitted and untracked files are in B's worktree."""

    def turn(prompt: str) -> RunResult:
        request = RunRequest(agent="claude", repo=str(src_repo), thread="t1", prompt=prompt)
        result = run(request, settings=dataclasses.replace(a, claude_bin=claude_bin))
        assert result.ok, result.run.error
        return result

    first = turn("turn 1")
    (worktree(first) / "README.md").write_text("# uncommitted on A\n")
    (worktree(first) / "notes.md").write_text("untracked on A\n")
    turn("turn 2")
    gone = tmp_path / "machine-a-is-gone"
    a.home.rename(gone)  # B's home: a new, empty volume at the same mount path
    third = turn("turn 3")
    assert not (gone / "worktrees").samefile(a.home / "worktrees")
    assert third.run.mode == Mode.RESUME and third.run.note and "hydrated" in third.run.note
    assert third.session.agent_session_id == first.session.agent_session_id
    assert mock.message_counts() == [2, 4, 6]
    assert (worktree(third) / "README.md").read_text() == "# uncommitted on A\n"
    assert (worktree(third) / "notes.md").read_text() == "untracked on A\n"


# -- the ACP agents (Copilot CLI, OpenCode) against their mocks ----------------------------------------

# The store keeps an ACP agent's conversation as it keeps Claude's (the tests above, on both backends):
# these run on the one a fleet of workers shares, PostgreSQL.
ON_THE_FLEETS_STORE = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


Turn = Callable[[Settings, str], RunResult]


@contextmanager
def acp_workers(
    agent: str, repo: Path, monkeypatch: pytest.MonkeyPatch, *workers: Settings
) -> Iterator[tuple[Any, Turn]]:
    """An ACP agent's mock model, configured in every worker's base home, and a turn of thread t1 on any
    of them (which must succeed)."""
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as model:
        for variable, value in model.env().items():
            monkeypatch.setenv(variable, value)
        for worker in workers:
            model.configure_home(worker.home / "homes" / agent)

        def turn(settings: Settings, prompt: str) -> RunResult:
            request = RunRequest(agent=agent, repo=str(repo), thread="t1", prompt=prompt)
            result = run(request, settings=settings)
            assert result.ok, (result.run.mode, result.run.error)
            return result

        yield model, turn


@pytest.mark.slow
@ON_THE_FLEETS_STORE
@pytest.mark.parametrize("agent", ["copilot", "opencode"])
def test_an_acp_agent_moves_to_another_home_back_and_to_a_new_machine(
    agent: str, a: Settings, b: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One conversation of an agent driven over ACP (Copilot's session directory, OpenCode's database)
    on the moves a fleet makes, each turn loaded by id with the whole history (one journey: each turn
    of these CLIs costs seconds):

    - turns 1 and 2 on worker A, turns 3 and 4 on worker B, whose ``BATON_HOME`` is another path (the
      fleet docs give each worker its own): hydrated in B's worktree. OpenCode binds a session to the
      directory and project it was made in: baton rewrites them on hydrate
      (:meth:`baton.agents.opencode.OpenCodeAgent.after_hydrate`);
    - turn 5 back on A, whose own copy of the conversation is two turns behind the store's snapshot.
      Neither format only grows, so size cannot tell: A must hydrate B's turns, not resume its stale
      copy and silently lose them;
    - turn 6 on a new machine with the same mount path (every pod mounts its own volume at one
      ``BATON_HOME`` path): A's home goes away with its machine, the new one starts empty."""
    with acp_workers(agent, src_repo, monkeypatch, a, b) as (model, turn):
        first = turn(a, "turn 1")
        (worktree(first) / "notes.md").write_text("untracked on A\n")
        turn(a, "turn 2")
        third = turn(b, "turn 3")
        fourth = turn(b, "turn 4 on B")
        fifth = turn(a, "turn 5")
        a.home.rename(tmp_path / "machine-a-is-gone")
        model.configure_home(a.home / "homes" / agent)  # the operator's config, on every machine
        sixth = turn(a, "turn 6")
    moved = (third, fifth, sixth)
    assert worktree(third) != worktree(first) and str(b.home) in str(worktree(third))
    assert all(x.run.mode == Mode.RESUME for x in (third, fourth, fifth, sixth))
    assert all(x.run.note and "hydrated" in x.run.note for x in moved), [x.run.note for x in moved]
    assert "hydrated" not in str(fourth.run.note), "B's own copy is current: resumed as it is"
    sessions = {x.session.agent_session_id for x in (third, fourth, fifth, sixth)}
    assert sessions == {first.session.agent_session_id}
    assert model.history_counts() == [FIRST[agent] + 2 * i for i in range(6)]
    back_on_a = next(text for text in model.texts() if "turn 5" in text)
    assert "turn 4 on B" in back_on_a, "B's turns are in A's request after them"
    assert "turn 1" in model.texts()[-1] and "turn 4 on B" in model.texts()[-1]
    assert all((worktree(x) / "notes.md").read_text() == "untracked on A\n" for x in moved)


@pytest.mark.slow
@ON_THE_FLEETS_STORE
def test_an_opencode_conversation_that_cannot_move_is_recovered_not_wedged(
    a: Settings, b: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the hydrated conversation cannot be rebound to B's worktree (here: the rebind undone, as a
    release of OpenCode whose database baton does not know would leave it), OpenCode loads it but would
    fail every prompt: the bridge sees that OpenCode does not list it for B's worktree, the turn is
    ``session_lost`` and recovered with a recap, and the next turn resumes the new conversation."""
    from baton.agents import opencode
    from baton.models import Outcome, PromptKind

    with acp_workers("opencode", src_repo, monkeypatch, a, b) as (model, turn):
        first = turn(a, "turn 1")
        monkeypatch.setattr(opencode, "rebind", lambda *args: False)
        moved = turn(b, "turn 2")
        after = turn(b, "turn 3")
    assert [x.outcome for x in moved.attempts] == [Outcome.SESSION_LOST, Outcome.SUCCEEDED]
    assert moved.attempts[0].error and "bound to another directory" in moved.attempts[0].error
    assert moved.run.mode == Mode.RECOVER and moved.run.prompt_kind == PromptKind.RECAP
    assert moved.session.agent_session_id != first.session.agent_session_id
    assert after.run.mode == Mode.RESUME and after.session.agent_session_id == moved.session.agent_session_id
    assert "turn 1" in model.texts()[-1], "the recap carried the first turn"
