"""Benchmark: the sweeper over 1,000 sessions.

One home per repetition, built untimed: a real cache clone of ``source``, 1,000 session records, each
with a small worktree directory (4 files of 2 KiB; plain directories, so expiry's checkpoint costs one
``stat`` and no git) and a transcript in the fake agent's home:

- 500 live (untouched: the sweep only lists them);
- 250 expired: closed (snapshot into the store, worktree and transcript removed, ``git worktree
  prune`` per removal, as :meth:`Workdirs.remove_worktree_dir` does);
- 250 closed past their grace period, with a snapshot and one run and its log: purged;
- 20 orphan directories under ``worktrees/``.

Timed: the dry run, then the real sweep of the same state. The row reports the real sweep's seconds
against a generous goal (a daily job: 60 s per 1,000 sessions); extra holds the dry run, the per-key
cost and what was freed.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from common import Row, clock, median

from baton import load_settings, open_store
from baton.agents import get_agent
from baton.keys import Key, parse_repo
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.workspace.workdirs import Workdirs

register_fake()
GOAL_S = 60.0


def bench_sweep(root: Path, source: Path | None = None, reps: int = 3, sessions: int = 1_000) -> Row:
    """The sweep's seconds over ``sessions`` keys (median of ``reps`` fresh homes)."""
    from baton.housekeeping.sweep import sweep

    source = source or _small_repo(root / "sweep-src")
    real: list[float] = []
    dry: list[float] = []
    counts: dict[str, int] = {}
    for rep in range(reps):
        settings = load_settings(overrides={"home": str(root / f"sweep-{rep}")}, environ={})
        store = _populate(settings, source, sessions)
        try:
            _, dry_s = clock(lambda: sweep(store, settings, dry_run=True))  # noqa: B023 -- called at once
            report, real_s = clock(lambda: sweep(store, settings))  # noqa: B023
        finally:
            store.close()
        assert not report.errors, report.errors
        dry.append(dry_s)
        real.append(real_s)
        counts = {
            "expired": len(report.expired),
            "purged": len(report.purged),
            "orphans": len(report.orphans),
        }
        counts["freed_bytes"] = report.freed_total
    return Row(
        f"7e sweeper over {sessions:,} sessions ({counts['expired']} expired, {counts['purged']} purged)",
        "overhead",
        median(real),
        0.0,
        GOAL_S,
        reps,
        overhead=median(real),
        samples={"candidate": real, "dry_run": dry},
        extra={**counts, "dry_run_s": median(dry), "per_session_ms": median(real) / sessions * 1000},
    )


def _small_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("# sweep bench\n")
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], [*ident, "commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


def _populate(settings: Settings, source: Path, n: int) -> Store:
    """The home described in the module docstring; returns its open store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    repo = parse_repo(str(source))
    workdirs = Workdirs(settings)
    workdirs.ensure_cache(repo, "fake")
    agent = get_agent("fake", settings)
    now = time.time()
    for i in range(n):
        kind = "live" if i % 4 < 2 else ("expired" if i % 4 == 2 else "closed")
        key = Key("fake", repo, f"t{i:05d}")
        path = workdirs.worktree_path(key)
        path.mkdir(parents=True)
        for f in range(4):
            (path / f"file{f}.txt").write_bytes(b"x" * 2048)
        sid = str(uuid.uuid4())
        transcript = agent.home / "projects" / f"-bench-{i}" / f"{sid}.jsonl"
        transcript.parent.mkdir(parents=True, exist_ok=True)
        transcript.write_text('{"type":"user","message":{"content":"hi"}}\n' * 20)
        session = SessionRecord(
            "fake", repo.slug, key.thread, repo.url, f"baton/fake/{key.thread}", str(path), sid,
            status=SessionStatus.CLOSED if kind == "closed" else SessionStatus.ACTIVE,
            created_at=now, last_used_at=now, expires_at=now + 1e6 if kind == "live" else 1.0,
        )  # fmt: skip
        store.save_session(session)
        if kind == "closed":
            _closed_extras(settings, store, agent.home, key, sid)
    for i in range(20):
        orphan = settings.home / "worktrees" / "fake" / repo.slug / f"orphan-{i}"
        orphan.mkdir(parents=True)
        (orphan / "left.txt").write_bytes(b"y" * 4096)
    return store


def _closed_extras(settings: Settings, store: Store, home: Path, key: Key, sid: str) -> None:
    """A closed session's snapshot (its local transcript already gone) and one run with its log."""
    take_snapshot(store, get_agent("fake", settings), key, sid)
    for path in home.glob(f"projects/*/{sid}.jsonl"):
        path.unlink()
    run_id = uuid.uuid4().hex
    log = settings.home / "logs" / f"{run_id}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('{"type":"result"}\n' * 10)
    store.add_run(
        RunRecord(run_id, "fake", key.repo.slug, key.thread, 1, Mode.FRESH, PromptKind.FULL, "hi",
                  outcome=Outcome.SUCCEEDED, started_at=1.0, ended_at=2.0, log_path=str(log))
    )  # fmt: skip


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        row = bench_sweep(Path(scratch), reps=int(sys.argv[1]) if len(sys.argv) > 1 else 1)
        print(row.cells(), row.extra)
