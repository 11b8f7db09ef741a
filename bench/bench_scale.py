"""20a-20e: baton with 100,000 stored sessions (and as many runs), beside the same with 10,000.

A store of session records only (:func:`seed`: bench 6b's records, as ``bench_cli.seed_sessions``
makes them, written in one transaction; and one ended run per session), as a long-lived deployment
holds: most keys' worktrees are long evicted. Each figure is measured at 10,000 and at 100,000
sessions, so the table's baseline column is how the command did with a tenth of the store, and the
note says how each figure grew.

- 20a ``baton du`` (goal ≤ 5 s): every session's bytes, the store's snapshot sizes, the home's walk;
- 20b ``baton sessions ls``, the default page of 30 and the note of how many more (goal ≤ 150 ms, 6b's);
- 20c ``baton runs ls``, the default page of 30 (goal ≤ 1 s: Typer and SQLAlchemy, no fast path);
- 20d the dashboard's overview ``/`` with its cached disk measurement, p50 over HTTP (goal ≤ 1 s),
  and its first answer from a server just started (in the notes: it waits at most half a second for the
  first measurement, then says it is still running);
- 20e peak memory (max RSS, GNU ``time``'s ``%M``) of the largest of ``baton du``, ``du --json``,
  ``sessions ls``, ``sessions ls --all``, ``sessions ls --all --json``, ``runs ls``, ``runs ls --all``
  and ``runs ls --all --json`` at 100,000 sessions (and runs), against 200 MiB.

Every CLI sample is a fresh process. ``python bench/bench_scale.py [REPS]`` runs just this group.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_dashboard import read_token
from common import Group, Plan, Repos, Row, Suite, baton_serve, interleave, median, rmtree

REPS = Plan(full=5, quick=2)
SIZES = (10_000, 100_000)
MIB = 2**20
RSS_GOAL = 200 * MIB
COMMANDS = {
    "du": ["du"],
    "du --json": ["du", "--json"],
    "sessions ls": ["sessions", "ls"],
    "sessions ls --all": ["sessions", "ls", "--all"],
    "sessions ls --all --json": ["sessions", "ls", "--all", "--json"],
    "runs ls": ["runs", "ls"],
    "runs ls --all": ["runs", "ls", "--all"],
    "runs ls --all --json": ["runs", "ls", "--all", "--json"],
}
TIME = "/usr/bin/time"  # GNU time (Debian's package ``time``)
TIMED = {"20a": ("du", 5.0), "20b": ("sessions ls", 0.150), "20c": ("runs ls", 1.0)}
OVERVIEW_GOAL = 1.0


def seed(home: Path, count: int) -> None:
    """``count`` session records (``bench_cli.seed_sessions``' fields) and one ended run for each, in
    one transaction (the store's own save, one at a time, would take minutes for 100,000)."""
    from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord
    from baton.settings import load_settings
    from baton.store import open_store
    from baton.store.rows import run_values, session_values
    from baton.store.sql import SQLStore
    from baton.store.tables import runs, sessions

    settings = load_settings(overrides={"home": str(home)}, environ={})
    store = open_store(settings.resolved_store_url)
    assert isinstance(store, SQLStore)  # a SQLite file in the home
    now = time.time()
    rows, attempts = [], []
    for i in range(count):
        agent, repo = ("claude", "codex", "gemini")[i % 3], f"github.com/acme/service-{i % 7}"
        at = now - i * 60
        rows.append(
            session_values(
                SessionRecord(
                    agent=agent,
                    repo=repo,
                    thread=f"issue-{i}",
                    repo_url=f"https://{repo}",
                    branch=f"baton/{agent}/issue-{i}",
                    worktree=str(home / "worktrees" / str(i)),
                    agent_session_id=f"00000000-0000-4000-8000-{i:012d}",
                    attempts=1 + i % 4,
                    created_at=at,
                    last_used_at=at,
                    expires_at=now + 30 * 86400,
                )
            )
        )
        run = RunRecord(f"run-{i:08d}", agent, repo, f"issue-{i}", 1, Mode.RESUME, PromptKind.DELTA, "go on")
        run.outcome, run.started_at, run.ended_at = Outcome.SUCCEEDED, at, at + 30
        attempts.append(run_values(run))
    try:
        with store.engine.begin() as conn:
            conn.execute(sessions.insert(), rows)
            conn.execute(runs.insert(), attempts)
    finally:
        store.close()


def run_cli(argv: list[str], env: dict[str, str], scratch: Path) -> tuple[float, int]:
    """Seconds and max RSS (bytes) of ``baton ARGV`` as a fresh process, its output discarded. The
    RSS is GNU time's (``%M``): a child's own ``ru_maxrss`` starts at its parent's peak at the fork
    (Linux keeps the pre-``exec`` high-water mark), and this process holds the seeded records."""
    report = scratch / "rss.txt"
    t0 = time.perf_counter()
    done = subprocess.run(
        [TIME, "-f", "%M", "-o", str(report), sys.executable, "-m", "baton.cli", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"baton {' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed, int(report.read_text().split()[-1]) * 1024  # KiB


def measure_cli(home: Path, reps: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per sample of each command in :data:`COMMANDS` (interleaved), and each one's peak RSS."""
    env = {**os.environ, "BATON_HOME": str(home), "COLUMNS": "100"}
    peaks: dict[str, int] = {}

    def variant(name: str) -> Callable[[int], float]:
        def one(_rep: int) -> float:
            seconds, rss = run_cli(COMMANDS[name], env, home.parent)
            peaks[name] = max(peaks.get(name, 0), rss)
            return seconds

        return one

    return interleave({name: variant(name) for name in COMMANDS}, reps), peaks


def measure_overview(home: Path, reps: int) -> tuple[float, list[float]]:
    """The first answer of ``/`` from a server just started, and ``/`` once its disk measurement is
    there (``/?fresh=1`` waited for, untimed), ``reps`` times."""
    token = read_token(home)
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with (
        baton_serve(home) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300, transport=transport) as http,
    ):
        sign_in(http, token)
        first = timed_get(http, "/")
        timed_get(http, "/?fresh=1", measured=True)
        samples = [timed_get(http, "/", measured=True) for _ in range(reps + 2)][2:]
    return first, samples


def sign_in(http: httpx.Client, token: str) -> None:
    """``POST /login`` as the form does; the client keeps the session cookie it sets."""
    response = http.post("/login", data={"token": token, "next": "/"})
    if response.status_code != 303 or not http.cookies:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:200]}")


def timed_get(http: httpx.Client, path: str, measured: bool = False) -> float:
    t0 = time.perf_counter()
    response = http.get(path)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200 or 'id="disk"' not in response.text:
        raise RuntimeError(f"{path} answered {response.status_code} without its disk card")
    if measured and "data-measured-at" not in response.text:
        raise RuntimeError(f"{path} answered without a disk measurement")
    return elapsed


def bench_scale(root: Path, reps: int) -> list[Row]:
    results = {}
    for size in SIZES:
        home = root / f"home-{size}"
        seed(home, size)
        results[size] = (*measure_cli(home, reps), *measure_overview(home, reps * 4))
        rmtree(home)
    small, large = (results[s] for s in SIZES)
    rows = []
    for tag, (name, goal) in TIMED.items():
        big, base = median(large[0][name]), median(small[0][name])
        what = f"{tag} `baton {name}` over {SIZES[1]:,} sessions (baseline: {SIZES[0]:,})"
        samples = {"candidate": large[0][name], "baseline": small[0][name]}
        rows.append(Row(what, "overhead", big, base, goal, reps, overhead=big, samples=samples))
    page, base = median(large[3]), median(small[3])
    rows.append(
        Row(
            f"20d dashboard overview `/` over {SIZES[1]:,} sessions, disk measured, p50 "
            f"(baseline: {SIZES[0]:,})",
            "overhead",
            page,
            base,
            OVERVIEW_GOAL,
            len(large[3]),
            overhead=page,
            samples={"candidate": large[3], "baseline": small[3]},
            extra={"first_page_s": {str(s): results[s][2] for s in SIZES}},
        )
    )
    peak = max(large[1].values())
    rows.append(
        Row(
            f"20e peak memory (max RSS) of du, sessions ls, runs ls (with --all, --json) over {SIZES[1]:,} "
            "sessions ÷ 200 MiB",
            "bytes",
            peak,
            RSS_GOAL,
            1.0,
            reps,
            extra={"rss": {str(s): results[s][1] for s in SIZES}},
        )
    )
    rows[-1].extra["seconds"] = {str(s): {k: median(v) for k, v in results[s][0].items()} for s in SIZES}
    return rows


def scale_note(rows: list[Row]) -> str:
    """How each figure grew from 10,000 sessions to 100,000."""
    seconds, rss = rows[-1].extra["seconds"], rows[-1].extra["rss"]
    small, large = (str(s) for s in SIZES)
    parts = [
        f"`{name}` {seconds[small][name]:.2f} → {seconds[large][name]:.2f} s, "
        f"{rss[small][name] / MIB:.0f} → {rss[large][name] / MIB:.0f} MiB"
        for name in COMMANDS
    ]
    first = rows[3].extra["first_page_s"]
    return (
        f"20a-20e, from {SIZES[0]:,} to {SIZES[1]:,} sessions (time, max RSS): "
        + "; ".join(parts)
        + f"; the overview {rows[3].baseline * 1000:.0f} → {rows[3].candidate * 1000:.0f} ms with its"
        f" measurement cached, {first[small]:.2f} → {first[large]:.2f} s for a fresh server's first page."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step("20a-20e 100,000 sessions: du, sessions ls, runs ls, overview", lambda: record(suite))


def record(suite: Suite) -> None:
    found = bench_scale(suite.scratch / "b20", suite.pick(REPS))
    suite.rows.extend(found)
    suite.notes.append(scale_note(found))


GROUP = Group("scale", "20a-20e: du, sessions ls, runs ls and the overview over 100,000 sessions", run_group)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-scale-"))
    try:
        found = bench_scale(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else REPS.full)
        for row in found:
            print(" | ".join(row.cells()))
        print(scale_note(found))
    finally:
        rmtree(scratch)
