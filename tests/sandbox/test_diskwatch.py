"""The key's disk budget during a run (baton.sandbox.diskwatch), on real files: a writer process that
goes over the budget is told within a second or two, one that stays under never is, other writers on
the volume cost walks but no stop, and min_free is the last line on a small volume of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.sandbox import diskwatch
from baton.sandbox.diskwatch import DiskWatch, key_usage
from baton.settings import load_settings
from baton.workspace.du import disk_usage

MiB = 2**20

WRITER = """
import sys, time
path, total, chunk, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with open(path, "wb") as f:
    for _ in range(total // chunk):
        f.write(b"x" * chunk)
        f.flush()
        time.sleep(pause)
print("done", flush=True)
"""


def writer(path: Path, total: int, chunk: int = MiB, pause: float = 0.05) -> subprocess.Popen[str]:
    """Another process writing ``total`` bytes to ``path``, ``chunk`` at a time."""
    args = [sys.executable, "-c", WRITER, str(path), str(total), str(chunk), str(pause)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, text=True)


def supervise(
    watch: DiskWatch, proc: subprocess.Popen[str], key: list[Path], budget: int
) -> tuple[str | None, float | None, float | None]:
    """What the runner's loop does: ``watch.stop()`` every 0.1 s until a reason or the writer's end
    (then 1.5 s more). Returns the reason, when the key really crossed the budget (measured here,
    as the oracle) and when the reason came."""
    crossed = told = None
    ended: float | None = None
    try:
        while True:
            now = time.monotonic()
            if crossed is None and key_usage(key) > budget:
                crossed = now
            reason = watch.stop()
            if reason is not None:
                told = now
                return reason, crossed, told
            if proc.poll() is not None:
                ended = ended or now
                if now - ended > 1.5:
                    return None, crossed, told
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
        watch.close()


@pytest.fixture
def key(tmp_path: Path) -> list[Path]:
    """A key's three places: a worktree with a few files, its temp dir, its agent home."""
    worktree, tmp, home = tmp_path / "worktree", tmp_path / "tmp", tmp_path / "home"
    for path in (worktree / "src", tmp, home):
        path.mkdir(parents=True)
    for i in range(20):
        (worktree / "src" / f"f{i}.py").write_text("print('hello')\n" * 50)
    return [worktree, tmp, home]


@pytest.fixture(params=["du", "python"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The walks by GNU du (where there is one) or, without it, in a thread."""
    if request.param == "python":
        monkeypatch.setattr(diskwatch, "_du_path", lambda: None)
    elif diskwatch._du_path() is None:
        pytest.fail("this test needs GNU du (coreutils)", pytrace=False)
    return str(request.param)


def test_a_writer_over_the_budget_is_stopped_within_seconds_of_crossing(key: list[Path], walker: str) -> None:
    budget = 20 * MiB
    watch = DiskWatch(key, budget, min_free=0)
    proc = writer(key[1] / "big.bin", 50 * MiB)  # 1 MiB every 50 ms: crosses after ~1 s
    reason, crossed, told = supervise(watch, proc, key, budget)
    assert reason is not None and crossed is not None and told is not None
    assert told - crossed <= 2.0, f"told {told - crossed:.2f} s after crossing"
    assert " over its disk budget of 20 MiB (BATON_KEY_DISK)" in reason
    assert reason.startswith("the key's files grew to ") and "the conversation is kept" in reason
    assert watch.stop() == reason  # once given, given again


def test_an_agent_over_the_budget_is_stopped_through_run_process(key: list[Path], tmp_path: Path) -> None:
    """As the runner will wire it: the watch is ``run_process``'s ``stop_when``; the agent (a writer
    that would write 200 MiB) is stopped, its reason kept in ``ProcessResult.stopped``."""
    from baton.runner.process import RunLog, run_process

    worktree = key[0]
    watch = DiskWatch(key, 20 * MiB, min_free=0)
    argv = [sys.executable, "-c", WRITER, str(worktree / "out.bin"), str(200 * MiB), str(MiB), "0.02"]
    t0 = time.monotonic()
    try:
        with RunLog(tmp_path / "log.jsonl") as log:
            result = run_process(
                argv,
                dict(os.environ),
                worktree,
                log,
                lambda _line: None,
                on_start=lambda _pid: None,
                heartbeat=lambda: True,
                heartbeat_every=60,
                timeout=60,
                cancel=threading.Event(),
                kill_grace=1,
                stop_when=watch.stop,
            )
    finally:
        watch.close()
    assert result.stopped is not None and "over its disk budget of 20 MiB (BATON_KEY_DISK)" in result.stopped
    assert not result.timed_out and time.monotonic() - t0 < 10
    assert key_usage(key) < 100 * MiB  # stopped well before the 200 MiB


def test_a_key_under_its_budget_is_never_stopped(key: list[Path], tmp_path: Path) -> None:
    budget = 20 * MiB
    watch = DiskWatch(key, budget, min_free=0)
    neighbour = tmp_path / "another-key"  # same volume, not this key: the bound crosses, walks say no
    neighbour.mkdir()
    other = writer(neighbour / "big.bin", 30 * MiB, pause=0.02)
    reason, crossed, _ = supervise(watch, writer(key[0] / "grows.bin", 10 * MiB, pause=0.05), key, budget)
    other.wait()
    assert reason is None and crossed is None
    assert watch.walks >= 2, "the neighbour's writes made the bound cross: a walk should have checked"
    assert watch.last is not None and watch.last.allocated < budget


def test_walks_are_spaced_while_others_keep_the_bound_over(key: list[Path], tmp_path: Path) -> None:
    watch = DiskWatch(key, 1 * MiB, min_free=0)
    watch.wait()
    watch.budget = (watch.last.allocated if watch.last else 0) + 1  # nothing to spare: any fall crosses
    other = writer(tmp_path / "elsewhere.bin", 40 * MiB, chunk=MiB // 4, pause=0.01)
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        assert watch.stop() is None
        time.sleep(0.02)
    other.kill()
    other.wait()
    watch.close()
    # one walk at the start, then at most one a MIN_SPACING (1 s) while the bound stays over
    assert 2 <= watch.walks <= 5, watch.walks


def test_the_check_costs_microseconds(key: list[Path]) -> None:
    watch = DiskWatch(key, 20 * MiB, min_free=1, home=key[0])
    watch.wait()
    calls = 20_000
    t0 = time.perf_counter()
    for _ in range(calls):
        watch.stop()
    each = (time.perf_counter() - t0) / calls
    watch.close()
    assert each < 50e-6, f"{each * 1e6:.1f} µs a call"


def test_a_key_already_over_at_the_start_is_told_so(key: list[Path], walker: str) -> None:
    (key[2] / "cache.bin").write_bytes(b"y" * (3 * MiB))
    watch = DiskWatch(key, 2 * MiB, min_free=0)
    watch.wait()
    reason = watch.stop()
    watch.close()
    assert reason is not None and reason.startswith("the key's files take 3")
    assert re.search(r", 1(\.\d)? MiB over its disk budget of 2 MiB \(BATON_KEY_DISK\): free some", reason)


def test_a_write_faster_than_the_watch_is_caught_when_the_turn_ends(key: list[Path], walker: str) -> None:
    """40 MiB written at once, after the watch's last look and just before the turn ends: the look
    sees nothing yet, the exact walk at the end does, and the files stay (they are the agent's work)."""
    watch = DiskWatch(key, 20 * MiB, min_free=0)
    try:
        watch.wait()
        assert watch.stop() is None
        big = key[0] / "big.bin"
        with big.open("wb") as out:
            out.write(os.urandom(40 * MiB))
            out.flush()
            os.fsync(out.fileno())
        # the supervision loop's look right after the write starts a walk at most: it does not stop yet
        assert watch.stop() is None
        reason = watch.final()
        assert reason is not None, "the turn ended over its budget, and nothing said so"
        assert re.search(
            r"^the key's files take 40(\.\d)? MiB at the end of the turn, 20(\.\d)? MiB over", reason
        )
        assert "(BATON_KEY_DISK): nothing was deleted" in reason and watch.stop() == reason
        assert big.stat().st_size == 40 * MiB
    finally:
        watch.close()


def test_a_turn_under_its_budget_ends_without_a_reason(key: list[Path]) -> None:
    watch = DiskWatch(key, 20 * MiB, min_free=0)
    (key[0] / "small.bin").write_bytes(b"z" * MiB)
    assert watch.final() is None
    watch.close()
    assert DiskWatch(key, None, min_free=0).final() is None  # no budget: no walk at the end either


def test_no_budget_means_no_walk(key: list[Path]) -> None:
    watch = DiskWatch(key, None, min_free=0)
    assert watch.stop() is None and watch.wait() is None and watch.walks == 0
    watch.close()


def test_hard_links_count_once_across_the_key(key: list[Path]) -> None:
    worktree, tmp, _ = key
    before = key_usage(key)
    data = worktree / "data.bin"
    data.write_bytes(b"z" * MiB)
    os.link(data, worktree / "src" / "again.bin")
    os.link(data, tmp / "from-the-worktree.bin")  # another of the key's places: still once
    grown = key_usage(key) - before
    assert MiB <= grown < MiB + 64 * 1024  # the file's blocks (and a directory block at most)
    assert key_usage([worktree]) == disk_usage(worktree)


def test_symlinks_are_not_followed(key: list[Path], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge.bin").write_bytes(b"h" * (4 * MiB))
    before = key_usage(key)
    (key[0] / "link-to-dir").symlink_to(outside)
    (key[0] / "link-to-file").symlink_to(outside / "huge.bin")
    assert key_usage(key) - before < 64 * 1024
    measured = key_usage([key[0]])
    by_du = subprocess.run(["du", "-s", "--block-size=1", str(key[0])], capture_output=True, text=True)
    assert measured == int(by_du.stdout.split()[0])


def test_du_counts_as_the_walk_does(key: list[Path], tmp_path: Path) -> None:
    worktree, tmp, agent_home = key
    (worktree / "data.bin").write_bytes(b"d" * MiB)
    os.link(worktree / "data.bin", tmp / "linked.bin")
    (agent_home / "link").symlink_to(tmp_path)  # never followed
    real = tmp_path / "real-home"
    real.mkdir()
    (real / "x.bin").write_bytes(b"x" * 100_000)
    linked_home = tmp_path / "home-link"  # a path given that is a link is followed, as du.py does
    linked_home.symlink_to(real)
    paths = [worktree, tmp, agent_home, linked_home, tmp_path / "missing"]
    watch = DiskWatch(paths, 10 * 2**30, min_free=0)
    walk = watch.wait()
    watch.close()
    assert walk is not None and walk.allocated == key_usage(paths)
    assert walk.allocated == sum(disk_usage(p) for p in paths) - MiB  # the hard link once


def test_a_du_that_is_not_gnu_du_gives_way_to_the_walk_in_python(
    key: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busybox = tmp_path / "du"  # BusyBox's du knows no --block-size: usage on stderr, nothing on stdout
    busybox.write_text("#!/bin/sh\necho 'du: unrecognized option' >&2\nexit 1\n")
    busybox.chmod(0o755)
    monkeypatch.setattr(diskwatch, "_du_path", lambda: str(busybox))
    watch = DiskWatch(key, 10 * MiB, min_free=0)
    walk = watch.wait()
    watch.close()
    assert walk is not None and walk.allocated == key_usage(key) and not watch._use_du


def test_closing_ends_a_walk_under_way(
    key: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = tmp_path / "du"  # a du that would take half a minute: close() kills it
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(diskwatch, "_du_path", lambda: str(slow))
    watch = DiskWatch(key, 10 * MiB, min_free=0)
    time.sleep(0.2)
    t0 = time.monotonic()
    watch.close()
    watch.wait(timeout=10)
    assert time.monotonic() - t0 < 5
    assert watch.last is None and watch._walking is None and watch._du_proc is None
    assert watch.stop() is None


def test_du_reaped_by_another_still_counts(key: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real_waitpid = os.waitpid

    def stolen(pid: int, options: int) -> tuple[int, int, object]:
        real_waitpid(pid, 0)  # a waitpid(-1) reaper elsewhere in the process got there first
        raise ChildProcessError(10, "No child processes")

    monkeypatch.setattr(os, "wait4", stolen)
    watch = DiskWatch(key, 10 * MiB, min_free=0)
    walk = watch.wait()
    watch.close()
    assert walk is not None and walk.allocated == key_usage(key) and watch._use_du


def test_the_walk_in_python_gives_up_when_told(key: list[Path]) -> None:
    told = threading.Event()
    told.set()
    assert key_usage(key, told) == sum(os.stat(p).st_blocks * 512 for p in key)  # the tops, no more


def test_missing_paths_count_nothing(tmp_path: Path) -> None:
    assert key_usage([tmp_path / "not-yet", tmp_path / "nor-this"]) == 0
    watch = DiskWatch([tmp_path / "not-yet"], 10 * MiB, min_free=0, home=tmp_path / "no" / "home")
    watch.wait()
    assert watch.stop() is None and watch.last is not None and watch.last.allocated == 0
    watch.close()


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB file system of our own (tmpfs; the suite runs as root, as CI does)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 64 MiB tmpfs (a nearly full disk): run it as root", pytrace=False)
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_under_min_free_the_run_is_stopped_whoever_wrote(small_volume: Path) -> None:
    home = small_volume / "home"
    worktree = home / "worktrees" / "k"
    worktree.mkdir(parents=True)
    watch = DiskWatch([worktree], None, min_free=32 * MiB, home=home)  # no budget: min_free alone
    assert watch.stop() is None
    proc = writer(small_volume / "someone-else.bin", 48 * MiB, pause=0.01)
    reason, _, _ = supervise(watch, proc, [worktree], budget=2**62)
    assert reason is not None, "free space fell under min_free without a reason"
    assert reason.startswith(f"the volume holding BATON_HOME ({home}) has ")
    assert "under min_free of 32 MiB (BATON_MIN_FREE); the conversation is kept" in reason


def test_the_setting(tmp_path: Path) -> None:
    settings = load_settings(overrides={"home": str(tmp_path)}, environ={"BATON_KEY_DISK": "5G"})
    assert settings.key_disk_bytes == 5 * 2**30
    assert load_settings(overrides={"home": str(tmp_path)}, environ={}).key_disk_bytes is None
    with pytest.raises(BadInput, match="key_disk"):
        load_settings(overrides={"home": str(tmp_path)}, environ={"BATON_KEY_DISK": "lots"})
    watch = DiskWatch.from_settings(settings.with_(key_disk="1M", min_free="1K"), [tmp_path])
    assert (watch.budget, watch.min_free, watch.home) == (MiB, 1024, tmp_path)
    watch.close()


def test_sizes_read_like_people_write_them() -> None:
    assert diskwatch._size(5 * 2**30) == "5 GiB"
    assert diskwatch._size(int(5.2 * 2**30)) == "5.2 GiB"
    assert diskwatch._size(180 * MiB) == "180 MiB"
