"""Benchmark 16: what watching a key's disk budget during a run costs (``baton.sandbox.diskwatch``), for
a 100,000-file worktree. Goal: ≤ 1 % of a core (10 ms of CPU per second of run).

Set-up, untimed: a key of 100,000 small files (1,000 directories of 100 files of 200 bytes) and its
empty temp dir and agent home on the scratch volume; another process that writes a little into the
worktree all along (64 KiB every 0.1 s, as an agent does), on the same volume.

Each repetition interleaves two runs of ``seconds`` each, in this process, measured with
``time.process_time`` plus the reaped children's CPU (``RUSAGE_CHILDREN``), so the watch's walks
count wherever they run (by ``du`` in a process of its own, or in a thread where there is no ``du``):

- baseline: the runner's supervision loop alone, waking every 0.1 s with nothing to check;
- candidate: the same loop calling ``DiskWatch.stop()`` on every wake, the watch made at the start of
  the run (its first walk of the 100,000 files included) with a budget of 1 GiB over the key's usage.

The row gives CPU milliseconds per second of run (per mille of a core). The notes give a check's own
cost, one walk's CPU, and the worst case: a run whose budget has no room at all while another key
writes on the volume, so that the bound stays over the budget and walks come as often as their pace
lets them (a run three times as long).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Group, Plan, Repos, Row, Suite, median, rmtree

from baton.sandbox.diskwatch import DiskWatch, key_usage

REPS = Plan(full=2, quick=1)
SECONDS = Plan(full=30, quick=10)
GOAL = 0.010  # CPU seconds per second: 1 % of a core
FILES, PER_DIR = 100_000, 100
TICK = 0.1  # the supervision loop's period (process.py)

WRITER = """
import os, sys, time
path, chunk, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while True:
    with open(path, "wb") as f:
        for _ in range(128):
            f.write(b"w" * chunk)
            f.flush()
            time.sleep(pause)
"""


def make_key(root: Path) -> list[Path]:
    """A worktree of FILES small files, its temp dir and agent home."""
    worktree, tmp, home = root / "worktree", root / "tmp", root / "home"
    data = b"s" * 200
    for d in range(FILES // PER_DIR):
        folder = worktree / f"pkg{d // 50}" / f"mod{d}"
        folder.mkdir(parents=True)
        for f in range(PER_DIR):
            (folder / f"f{f}.txt").write_bytes(data)
    tmp.mkdir()
    home.mkdir()
    return [worktree, tmp, home]


def writer(path: Path, chunk: int = 64 * 1024, pause: float = TICK) -> subprocess.Popen[bytes]:
    """Another process writing ``chunk`` bytes every ``pause`` seconds, rewriting one 8 MiB file."""
    args = [sys.executable, "-c", WRITER, str(path), str(chunk), str(pause)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL)


def cpu_time() -> float:
    """CPU seconds of this process (every thread) and of its children reaped so far (the watch's
    ``du`` walks; the writer is reaped only at the end)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def supervise(seconds: float, watch: DiskWatch | None) -> float:
    """The loop: wake every TICK for ``seconds``, asking ``watch`` if given; CPU seconds per second."""
    cpu0, t0 = cpu_time(), time.monotonic()
    end = t0 + seconds
    while (now := time.monotonic()) < end:
        if watch is not None and watch.stop() is not None:
            raise RuntimeError(f"the watch stopped a run under its budget: {watch.reason}")
        time.sleep(min(TICK, max(end - now, 0)))
    if watch is not None:
        watch.wait()  # a walk under way counts whole
        watch.close()
    return (cpu_time() - cpu0) / (time.monotonic() - t0)


def check_cost(watch: DiskWatch, calls: int = 100_000) -> tuple[float, float]:
    """Seconds a call of ``watch.stop()`` takes: one that only reads the clock (most of them), and one
    that looks at the volumes (``fstatvfs``, four times a second)."""
    t0 = time.perf_counter()
    for _ in range(calls):
        watch.stop()
    quiet = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        watch._sample_at = 0.0
        watch.stop()
    return quiet, (time.perf_counter() - t0) / calls


def bench_diskwatch(root: Path, reps: int, seconds: int) -> tuple[Row, list[str]]:
    key = make_key(root / "key")
    usage = key_usage(key)  # untimed: also warms the page cache of the inodes, as a live key has it
    budget = usage + 2**30
    proc = writer(key[0] / "agent-output.bin")
    try:
        watched: list[float] = []
        bare: list[float] = []
        walks: list[float] = []
        for rep in range(reps):
            order = [False, True] if rep % 2 else [True, False]
            for with_watch in order:
                if with_watch:
                    watch = DiskWatch(key, budget, min_free=1, home=root)
                    watched.append(supervise(seconds, watch))
                    walks += [watch.last.cpu] if watch.last else []
                else:
                    bare.append(supervise(seconds, None))
        watch = DiskWatch(key, budget, min_free=1, home=root)
        watch.wait()
        quiet, look = check_cost(watch)
        watch.close()
    finally:
        proc.kill()
        proc.wait()
    worst_seconds = seconds * 3  # long enough for the pace of the walks to show (a second one at ~36 s)
    worst, worst_walks = worst_case(root, key, worst_seconds)
    candidate, baseline = median(watched), median(bare)
    row = Row(
        name=(
            f"16 disk budget watch, {FILES:,}-file worktree: CPU per second of a {seconds} s run, "
            "check every 0.1 s, first walk included (ms/s = ‰ of a core)"
        ),
        kind="overhead",
        candidate=candidate,
        baseline=baseline,
        goal=GOAL,
        n=reps,
        overhead=candidate - baseline,
        samples={"candidate": watched, "baseline": bare},
        extra={
            "check_s": quiet,
            "look_s": look,
            "walk_cpu_s": walks,
            "worst_case": worst,
            "worst_case_walks": worst_walks,
        },
    )
    notes = [
        f"16: a check (`DiskWatch.stop()`) takes {quiet * 1e6:.2f} µs, {look * 1e6:.1f} µs when it looks at "
        f"the volumes (two `fstatvfs`, four times a second); one walk of the "
        f"{FILES:,}-file key ({usage / 2**20:.0f} MiB allocated) {median(walks) * 1000:.0f} ms of CPU; "
        f"with no room in the budget while another key writes on the volume (the bound always over, "
        f"walks as often as their pace allows: {worst_walks} in a {worst_seconds} s run), "
        f"{(worst - baseline) * 100:.2f} % of a core"
    ]
    return row, notes


def worst_case(root: Path, key: list[Path], seconds: int) -> tuple[float, int]:
    """A budget with no room while another key writes on the same volume: CPU per second, and walks."""
    elsewhere = root / "another-key"
    elsewhere.mkdir(exist_ok=True)
    proc = writer(elsewhere / "out.bin", chunk=256 * 1024)
    try:
        watch = DiskWatch(key, key_usage(key) + 2 * 2**20, min_free=1, home=root)
        cpu = supervise(seconds, watch)
    finally:
        proc.kill()
        proc.wait()
    return cpu, watch.walks


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        row, notes = bench_diskwatch(suite.scratch / "b16", suite.pick(REPS), suite.pick(SECONDS))
        suite.rows.append(row)
        suite.notes.extend(notes)

    suite.step("16 disk budget watch over a 100,000-file key", work)


GROUP = Group(
    "diskwatch",
    "16: the CPU of watching a 100,000-file key's disk budget during a run (≤ 1 % of a core)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-diskwatch-"))
    try:
        found, text = bench_diskwatch(
            scratch,
            int(sys.argv[1]) if len(sys.argv) > 1 else 2,
            int(sys.argv[2]) if len(sys.argv) > 2 else 30,
        )
        assert found.overhead is not None
        print(
            f"{found.name}: watched {found.candidate * 1000:.2f} ms/s, "
            f"bare {found.baseline * 1000:.2f} ms/s, "
            f"cost {found.overhead * 100:.2f} % of a core (n={found.n})"
        )
        print("\n".join(text))
    finally:
        rmtree(scratch)
