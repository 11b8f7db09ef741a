"""Faults and bad input on the runner: refused requests write nothing, a run always ends in the store with its
real outcome, broken snapshots recover instead of wedging the key, a truncated transcript hydrates, a full
disk is a clear error, and the lease lives through slow steps."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton import BadInput, Mode, Outcome, PromptKind, RunRequest, RunResult, open_store, run
from baton.errors import Busy, DiskFull
from baton.settings import Settings
from baton.store.leases import LeaseHolder, held
from baton.workspace.keyspace import key_spaces, session_agent


def go(settings: Settings, repo: Path, prompt: str = "do it", thread: str = "t1", **kw: object) -> RunResult:
    return run(
        RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt, **kw),  # type: ignore[arg-type]
        settings=settings,
    )


def branches(settings: Settings) -> list[str]:
    repos = list((settings.home / "repos").rglob("*.git"))
    if not repos:
        return []
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/heads", "refs/baton"],
        cwd=repos[0],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def worktrees(settings: Settings) -> list[Path]:
    root = settings.home / "worktrees"
    return [p.parent for p in root.rglob(".git")] if root.exists() else []


# -- 2: bad input writes nothing -------------------------------------------------------------------


def test_fork_without_a_conversation_writes_nothing(settings: Settings, src_repo: Path) -> None:
    with pytest.raises(BadInput, match="no conversation to fork"):
        go(settings, src_repo, mode=Mode.FORK)
    assert worktrees(settings) == []
    assert not any(b.startswith("refs/heads/baton/") for b in branches(settings))
    store = open_store(settings.resolved_store_url)
    assert store.list_sessions() == [] and store.list_runs() == []
    store.close()


def test_fork_of_a_lost_conversation_undoes_the_new_worktree(settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo, thread="dev")
    store = open_store(settings.resolved_store_url)
    source = store.list_sessions()[0]
    for path in session_agent(source, settings).transcript_files(str(source.agent_session_id)):
        path.unlink()
    store.delete_snapshot("fake", source.repo, "dev")
    with pytest.raises(BadInput, match="is lost"):
        go(settings, src_repo, thread="review", mode=Mode.FORK, fork_from="dev")
    assert [p.name for p in worktrees(settings)] == ["dev"]
    assert [s.thread for s in key_spaces(settings)] == ["dev"], "the new key's space is undone too"
    assert "refs/heads/baton/fake/review" not in branches(settings)
    assert store.get_session("fake", source.repo, "review") is None
    store.close()


# -- 3b: a prompt's bytes --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["prompt", "context"])
def test_nul_byte_is_refused_before_anything_is_written(
    settings: Settings, src_repo: Path, field: str
) -> None:
    kw = {"prompt": "a\0b"} if field == "prompt" else {"prompt": "ok", "context": "x\0"}
    with pytest.raises(BadInput, match="NUL byte"):
        go(settings, src_repo, **kw)
    assert not (settings.home / "worktrees").exists()
    # the key is not wedged: the next good run works
    assert go(settings, src_repo, "fine").run.outcome == Outcome.SUCCEEDED


# -- 3c: a run always ends in the store ------------------------------------------------------------


def test_agent_that_cannot_start_is_recorded_failed(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    not_executable = tmp_path / "agent"
    not_executable.write_text("#!/bin/sh\n")
    broken = settings.with_(extra={**settings.extra, "fake_bin": str(not_executable)})
    result = go(broken, src_repo)
    assert result.run.outcome == Outcome.FAILED and "Permission denied" in str(result.run.error)
    store = open_store(settings.resolved_store_url)
    stored = store.get_run(result.run.id)
    assert stored is not None and stored.outcome == Outcome.FAILED and stored.ended_at is not None
    store.close()
    # the next run is not told about a crash that never happened
    again = go(settings, src_repo)
    assert again.run.outcome == Outcome.SUCCEEDED and again.run.prompt_kind != PromptKind.INTERRUPTED


def test_agent_that_exits_0_without_ending_its_turn_is_failed_and_says_so(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 0 with no result (Gemini CLI does so, rarely, under load): a failure whose error says what
    happened first, not only the CLI's stderr (often its noise lines)."""
    monkeypatch.setenv("FAKE_AGENT_EXIT", "0")
    monkeypatch.setenv("FAKE_AGENT_RUN", "echo 'some warning the CLI prints' >&2")
    result = go(settings, src_repo)
    assert result.run.outcome == Outcome.FAILED and result.run.exit_code == 0
    assert str(result.run.error) == (
        "the agent exited with code 0 without ending its turn (no result); some warning the CLI prints"
    )


# -- 3d: recover means recover ---------------------------------------------------------------------


def _corrupt_blobs(settings: Settings, how: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(settings.resolved_store_url)
    with engine.begin() as conn:
        if how == "missing":
            conn.execute(sa.text("DELETE FROM blobs"))
        elif how == "corrupt":
            conn.execute(sa.text("UPDATE blobs SET data = :d"), {"d": b"not zlib"})
        elif how == "unparsable":
            conn.execute(sa.text("UPDATE snapshots SET files = '{not json'"))
        else:  # valid JSON of the wrong shape
            conn.execute(sa.text("UPDATE snapshots SET files = :f"), {"f": WRONG_SHAPES[how]})
    engine.dispose()


WRONG_SHAPES = {
    "a list": '["projects/x.jsonl"]',
    "a string": '"projects/x.jsonl"',
    "null": "null",
    "a number as digests": '{"projects/x.jsonl": 5}',
    "numbers in the digests": '{"projects/x.jsonl": [1, 2]}',
}


@pytest.mark.parametrize("how", ["missing", "corrupt", "unparsable", *WRONG_SHAPES])
def test_lost_transcript_and_broken_snapshot_recovers(settings: Settings, src_repo: Path, how: str) -> None:
    first = go(settings, src_repo, "write the lexer")
    for path in session_agent(first.session, settings).transcript_files(str(first.session.agent_session_id)):
        path.unlink()
    _corrupt_blobs(settings, how)
    again = go(settings, src_repo, "write the parser")
    assert again.run.outcome == Outcome.SUCCEEDED
    assert (again.run.mode, again.run.prompt_kind) == (Mode.RECOVER, PromptKind.RECAP)
    assert "snapshot" in str(again.run.note)
    assert again.session.agent_session_id != first.session.agent_session_id
    assert go(settings, src_repo, "and the tests").run.mode == Mode.RESUME  # not wedged


def test_truncated_local_transcript_is_hydrated_from_the_snapshot(settings: Settings, src_repo: Path) -> None:
    for step in range(3):
        last = go(settings, src_repo, f"step {step}")
    assert last.run.result == "fake reply: received 6 messages"
    [path] = session_agent(last.session, settings).transcript_files(str(last.session.agent_session_id))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated by hand: half the history
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "hydrated" in str(again.run.note)
    assert again.run.result == "fake reply: received 8 messages"  # the whole history, not half


def test_deleted_store_warns_that_a_new_conversation_starts(settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    again = go(settings, src_repo)
    assert again.run.mode == Mode.FRESH
    assert any("deleted or replaced" in w for w in again.warnings)


# -- 3e: disk full ---------------------------------------------------------------------------------


def test_too_little_free_space_is_refused_up_front(settings: Settings, src_repo: Path) -> None:
    with pytest.raises(DiskFull, match="free"):
        go(settings.with_(min_free="1000T"), src_repo)
    assert not (settings.home / "worktrees").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB file system of our own (tmpfs; the suite runs as root, as CI does)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 40 MiB tmpfs (a full disk): run it as root", pytrace=False)
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40M", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path, leave_kib: int) -> None:
    import shutil

    avail_kib = shutil.disk_usage(disk).free // 1024
    (disk / "fill").write_bytes(b"\0" * max(avail_kib - leave_kib, 0) * 1024)


@pytest.mark.parametrize("leave_kib", [0, 40])
def test_full_disk_is_a_clear_error_not_a_crash(
    tiny_disk: Path, src_repo: Path, cli: Callable[..., subprocess.CompletedProcess[str]], leave_kib: int
) -> None:
    env = {"BATON_HOME": str(tiny_disk / "home"), "BATON_MIN_FREE": "0"}
    args = ["run", "-a", "fake", "-r", str(src_repo), "-t", "t1"]
    assert cli(*args, "first", env=env).returncode == 0
    _fill(tiny_disk, leave_kib)
    full = cli(*args, "second", env=env)
    assert full.returncode == 1, full.stderr
    assert "full" in full.stderr and "Traceback" not in full.stderr
    (tiny_disk / "fill").unlink()
    after = cli(*args, "third", env=env)
    assert after.returncode == 0, after.stderr  # nothing wedged; the conversation goes on
    assert "mode=resume" in after.stdout


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB ext4 file system of our own (a loop mount: root only), 4 KiB blocks and no blocks
    reserved for root (so "full" means full for the suite, which runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts an ext4 loop file system (mkfs.ext4, mount -o loop): run it as root")
    image, mount = tmp_path / "ext4.img", tmp_path / "ext4"
    image.write_bytes(b"")
    os.truncate(image, 16 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("command", [["doctor"], ["sweep"], ["sessions", "ls"], ["runs", "ls"]])
def test_store_on_a_full_ext4_is_refused_before_sqlite_maps_it(
    ext4_disk: Path, cli: Callable[..., subprocess.CompletedProcess[str]], command: list[str]
) -> None:
    """With a few KiB free on ext4, a command that opens the store says the disk is full (exit 1)
    before SQLite creates its WAL and maps its index (-shm): a page of that map the disk cannot back
    is a SIGBUS, exit 135 without a word."""
    env = {"BATON_HOME": str(ext4_disk / "home")}
    assert cli("sessions", "ls", env=env).returncode == 0  # the store exists, closed cleanly
    _fill(ext4_disk, 12)
    os.sync()
    done = cli(*command, env=env)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "the disk holding the store" in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (ext4_disk / "home" / "baton.db-shm").exists()  # SQLite never mapped anything


# -- 3g: branch names ------------------------------------------------------------------------------


def test_full_branch_ref_is_accepted_as_the_short_name(settings: Settings, src_repo: Path) -> None:
    result = go(settings, src_repo, branch="refs/heads/feature/x")
    assert result.session.branch == "feature/x"
    assert "refs/heads/feature/x" in branches(settings)
    assert not any("refs/heads/refs/" in b for b in branches(settings))
    with pytest.raises(BadInput, match="not a valid branch"):
        go(settings, src_repo, thread="t2", branch="refs/tags/v1")


# -- 12: one lease keep-alive ----------------------------------------------------------------------


def test_held_lease_outlives_its_ttl_through_a_slow_step(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    mine = LeaseHolder(store, "k", ttl=0.6)
    with held(mine, 0, every=0.1) as lost:
        time.sleep(1.5)  # time passes on purpose: a clone or a snapshot slower than the lease's TTL
        with pytest.raises(Busy):
            LeaseHolder(store, "k", ttl=0.6).acquire(0)
        assert not lost.is_set()
    LeaseHolder(store, "k", ttl=0.6).acquire(0)  # released at the end
    store.close()


def test_held_lease_reports_a_takeover(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    mine = LeaseHolder(store, "k", ttl=30)
    with held(mine, 0, every=0.05) as lost:
        store.release_lease("k", mine.holder)  # as if it had expired and been taken
        LeaseHolder(store, "k", ttl=30).acquire(0)
        assert lost.wait(5)
    store.close()


@pytest.mark.parametrize("which", ["key", "branch"])
def test_lost_lease_stops_the_agent_and_says_why(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """The key's lease, or its branch's (one writer per branch), taken over mid-run."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    quick = settings.with_(heartbeat=0.1)
    store = open_store(settings.resolved_store_url)
    started = threading.Event()
    request = RunRequest(
        agent="fake", repo=str(src_repo), thread="t1", prompt="slow", on_start=lambda r: started.set()
    )
    box: list[RunResult] = []
    worker = threading.Thread(target=lambda: box.append(run(request, settings=quick)))
    worker.start()
    assert started.wait(30)
    [lease] = [k for k in _leases(store) if k.startswith("branch:") == (which == "branch")]
    store.release_lease(lease, _holder(store, lease))
    LeaseHolder(store, lease, ttl=30).acquire(0)
    worker.join(30)
    assert box and box[0].run.outcome == Outcome.CANCELLED
    assert "another runner took over" in str(box[0].run.error)
    store.close()


def _leases(store: object) -> list[str]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        return [r[0] for r in conn.execute(sa.text("SELECT key FROM leases"))]


def _holder(store: object, key: str) -> str:
    import sqlalchemy as sa

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        return str(conn.execute(sa.text("SELECT holder FROM leases WHERE key = :k"), {"k": key}).scalar())


def test_prompt_file_that_is_not_utf8_is_refused(
    src_repo: Path, tmp_path: Path, cli: Callable[..., subprocess.CompletedProcess[str]], home: Path
) -> None:
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"fix \xff\xfe this")
    result = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--prompt-file", str(bad))
    assert result.returncode == 2 and "not UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "worktrees").exists()


def test_undecodable_argv_prompt_is_refused(src_repo: Path, baton_env: dict[str, str], home: Path) -> None:
    import os
    import sys

    argv = [
        sys.executable.encode(),
        b"-m",
        b"baton.cli",
        b"run",
        b"-a",
        b"fake",
        b"-r",
        os.fsencode(src_repo),
    ]
    result = subprocess.run(
        [*argv, b"-t", b"t1", b"bad \xff prompt"], env={**os.environ, **baton_env}, capture_output=True
    )
    assert result.returncode == 2 and b"not valid UTF-8" in result.stderr, result.stderr
    assert b"Traceback" not in result.stderr
    assert not (home / "worktrees").exists()


def test_event_log_that_cannot_be_written_is_noted_on_the_run(settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo)
    logs = settings.home / "logs"
    for path in logs.iterdir():
        path.unlink()
    logs.rmdir()
    logs.write_text("a file where the log directory should be")
    result = go(settings, src_repo, "again")
    assert result.run.outcome == Outcome.SUCCEEDED  # the agent's turn itself went through
    assert "event log" in str(result.run.note)
    store = open_store(settings.resolved_store_url)
    stored = store.get_run(result.run.id)
    assert stored is not None and stored.note == result.run.note
    store.close()


def test_hostile_session_export_cannot_reach_outside_baton_home(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    from baton.keys import make_key
    from baton.sessions.manage import Scope, export_session, import_session, reset_session

    go(settings, src_repo)
    store = open_store(settings.resolved_store_url)
    key = make_key("fake", str(src_repo), "t1", ["fake"])
    document = export_session(store, key)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    document["runs"][0]["log_path"] = str(victim)
    other = settings.with_(home=tmp_path / "other-home")
    other_store = open_store(other.resolved_store_url)
    imported = import_session(other_store, other, document)
    [record] = other_store.list_runs()
    assert Path(record.log_path).parent == other.home / "logs"
    reset_session(other_store, other, make_key("fake", str(src_repo), "t1", ["fake"]), Scope.ALL)
    assert victim.read_text() == "precious"
    assert imported.worktree.startswith(str(other.home))
    for bad in ("../../etc", "local/..", "x"):
        document["session"]["repo"] = bad
        with pytest.raises(BadInput, match="slug"):
            import_session(other_store, other, document, replace=True)
    document["session"]["repo"] = key.repo.slug
    document["runs"][0]["id"] = "../../x"
    with pytest.raises(BadInput, match="run id"):
        import_session(other_store, other, document, replace=True)
    store.close()
    other_store.close()


def test_cancel_while_waiting_for_a_busy_key_stops_the_wait(settings: Settings, src_repo: Path) -> None:
    from baton.errors import Cancelled
    from baton.keys import make_key

    go(settings, src_repo)
    store = open_store(settings.resolved_store_url)
    other = LeaseHolder(store, make_key("fake", str(src_repo), "t1", ["fake"]).id, ttl=60)
    other.acquire(0)  # another runner holds the key
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="waiting"):
        go(settings, src_repo, "queued behind it", wait=30.0, cancel=cancel)
    assert time.monotonic() - started < 15  # not the 30 s of the wait (margin: a busy machine)
    other.release()
    store.close()


# -- a worktree path that is not a directory -------------------------------------------------------


@pytest.mark.parametrize("what", ["file", "symlink"])
def test_worktree_replaced_by_a_file_is_archived_and_rebuilt(
    settings: Settings, src_repo: Path, tmp_path: Path, what: str
) -> None:
    first = go(settings, src_repo, "write the lexer")
    path = Path(first.session.worktree)
    subprocess.run(["rm", "-rf", str(path)], check=True)
    if what == "file":
        path.write_text("someone's notes\n")
    else:
        (tmp_path / "elsewhere").mkdir()
        path.symlink_to(tmp_path / "elsewhere")
    again = go(settings, src_repo, "write the parser")
    assert again.run.outcome == Outcome.SUCCEEDED and again.run.mode == Mode.RESUME
    assert path.is_dir() and not path.is_symlink() and (path / ".git").exists()
    note = str(again.run.note)
    assert f"was a {what}" in note and "archived" in note
    [kept] = (settings.home / "archive").rglob("worktree-*")
    assert str(kept) in note
    if what == "file":
        assert kept.read_text() == "someone's notes\n"
    else:
        assert kept.is_symlink() and os.readlink(kept) == str(tmp_path / "elsewhere")
        assert list((tmp_path / "elsewhere").iterdir()) == []  # nothing written through the link
