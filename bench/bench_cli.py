"""6a, 6b: how fast the ``baton`` command answers, against ``python -c pass`` as the floor.

Goals: ``baton --help`` and ``baton sessions ls`` with 100 sessions each ≤ 150 ms. Every
sample is a fresh process (what a person or a script pays). The rows are ``overhead`` rows whose
"overhead" is the command's absolute median, judged against 150 ms; the baseline column is the
interpreter's own start-up. ``python bench/bench_cli.py [REPS]`` runs just this group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Group, Plan, Repos, Row, Suite, interleave, rmtree

REPS = Plan(full=21, quick=5)
GOAL = 0.150
SESSIONS = 100


def seed_sessions(home: Path, count: int = SESSIONS) -> None:
    """``count`` stored sessions (records only: listing them is what is measured)."""
    from baton.models import SessionRecord
    from baton.settings import load_settings
    from baton.store import open_store

    settings = load_settings(overrides={"home": str(home)}, environ={})
    store = open_store(settings.resolved_store_url)
    now = time.time()
    try:
        for i in range(count):
            store.save_session(
                SessionRecord(
                    agent=("claude", "codex", "gemini")[i % 3],
                    repo=f"github.com/acme/service-{i % 7}",
                    thread=f"issue-{i}",
                    repo_url=f"https://github.com/acme/service-{i % 7}",
                    branch=f"baton/claude/issue-{i}",
                    worktree=str(home / "worktrees" / str(i)),
                    agent_session_id=f"00000000-0000-4000-8000-{i:012d}",
                    attempts=1 + i % 4,
                    created_at=now - i * 60,
                    last_used_at=now - i * 60,
                    expires_at=now + 30 * 86400,
                )
            )
    finally:
        store.close()


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_cli(scratch: Path, reps: int) -> list[Row]:
    home = scratch / "cli-home"
    seed_sessions(home)
    env = {**os.environ, "BATON_HOME": str(home), "COLUMNS": "80"}
    baton = [sys.executable, "-m", "baton.cli"]
    samples = interleave(
        {
            "floor": lambda _rep: timed([sys.executable, "-c", "pass"], env),
            "help": lambda _rep: timed([*baton, "--help"], env),
            "ls": lambda _rep: timed([*baton, "sessions", "ls"], env),
        },
        reps,
    )
    floor = sorted(samples["floor"])[len(samples["floor"]) // 2]
    rows = []
    for name, key in (("6a baton --help", "help"), (f"6b baton sessions ls ({SESSIONS} sessions)", "ls")):
        median = sorted(samples[key])[len(samples[key]) // 2]
        rows.append(
            Row(
                name=name,
                kind="overhead",
                candidate=median,
                baseline=floor,
                goal=GOAL,
                n=reps,
                overhead=median,
                samples={"candidate": samples[key], "baseline": samples["floor"]},
            )
        )
    return rows


def run_group(suite: Suite, repos: Repos) -> None:
    title = "6 CLI start-up: baton --help / baton sessions ls"
    suite.step(title, lambda: suite.rows.extend(bench_cli(suite.scratch / "b6", suite.pick(REPS))))


GROUP = Group("cli", "6a, 6b: `baton --help` and `baton sessions ls` vs `python -c pass`", run_group)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-cli-"))
    try:
        for row in bench_cli(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else 21):
            floor = f"python -c pass {row.baseline * 1000:.0f} ms"
            print(f"{row.name}: median {row.candidate * 1000:.0f} ms ({floor})")
    finally:
        rmtree(scratch)
