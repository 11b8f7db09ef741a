"""11: 200 runs over 20 keys across 2 Celery workers against the in-process pool.

The same 200 jobs of the fake agent (10 per key, submitted at once, oldest first) run twice, each time
on a fresh SQLite store in the scratch directory:

- candidate: two ``baton worker`` processes (prefork, concurrency 2 each, each its own BATON_HOME) on
  a private ``redis-server`` (a free port, no persistence), the jobs stored and sent from this process
  as ``baton submit`` does (:class:`baton.fleet.celery.CeleryExecutor`);
- baseline: :class:`baton.fleet.local.LocalExecutor` in this process, concurrency 4 (what
  ``baton serve`` runs without a broker), on one home.

Both are timed from the first submission to the last job's end (the store's ``ended_at``); the row is
the workers' wall time ÷ the pool's, goal ≤ 1.5 (the broker, one store shared by two processes, and
every key's conversation moving between two homes cost something; runs/s of both in the notes). Every
job must succeed and no two jobs of a key may overlap (the same check as 7b).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_leases import private_redis
from bench_service import check_burst, wait_all
from common import Group, Repos, Row, Suite

from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.fleet.local import LocalExecutor
from baton.models import JobRecord
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.testing.fake import register_fake

register_fake()
GOAL = 1.5
SLOTS = 4  # in all: 2 workers x 2, or the pool's 4


def _settings(root: Path, store_url: str, broker_url: str = "") -> Settings:
    overrides = {"home": str(root / "client"), "store_url": store_url, "broker_url": broker_url}
    return load_settings(overrides={**overrides, "concurrency": SLOTS}, environ={})


@contextmanager
def _workers(root: Path, store_url: str, broker_url: str) -> Iterator[None]:
    env = {**os.environ, "BATON_STORE_URL": store_url, "BATON_BROKER_URL": broker_url}
    procs, logs = [], []
    try:
        for name in ("a", "b"):
            log = root / f"worker-{name}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "baton.cli",
                            "worker",
                            "-c",
                            str(SLOTS // 2),
                            "-n",
                            f"{name}@%h",
                        ],
                        env={**env, "BATON_HOME": str(root / f"home-{name}")},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        _wait_ready(procs, logs)
        yield
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(60)


def _wait_ready(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 60
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(
                "a baton worker did not start: " + " | ".join(p.read_text()[-500:] for p in logs)
            )
        time.sleep(0.05)


def _submit_all(store: Store, settings: Settings, source: Path, runs: int, keys: int) -> list[str]:
    return [
        jobs.submit(
            store,
            settings,
            {"agent": "fake", "repo": str(source), "thread": f"key-{i % keys}", "prompt": f"n{i}"},
            "bench",
        ).id
        for i in range(runs)
    ]


def _wall(ended: list[JobRecord], started: float) -> float:
    check_burst(ended)
    return max(j.ended_at or 0 for j in ended) - started


def on_workers(root: Path, source: Path, runs: int, keys: int) -> float:
    store_url = f"sqlite:///{root / 'shared.db'}"
    with private_redis(root / "redis") as broker_url:
        settings = _settings(root, store_url, broker_url)
        store = open_store(store_url)
        try:
            with _workers(root, store_url, broker_url):
                executor = CeleryExecutor(settings, store)
                started = time.time()
                for job_id in _submit_all(store, settings, source, runs, keys):
                    executor.submit(job_id)
                executor.stop()
                return _finish(store, started, runs)
        finally:
            store.close()


def _finish(store: Store, started: float, runs: int) -> float:
    ended = wait_all(store, [j.id for j in store.list_jobs(limit=runs, oldest_first=True)])
    return _wall(ended, started)


def in_process(root: Path, source: Path, runs: int, keys: int) -> float:
    store_url = f"sqlite:///{root / 'local.db'}"
    settings = _settings(root, store_url)
    store = open_store(store_url)
    executor = LocalExecutor(settings, store)
    try:
        started = time.time()
        ids = _submit_all(store, settings, source, runs, keys)
        executor.start()
        for job_id in ids:
            executor.submit(job_id)
        return _finish(store, started, runs)
    finally:
        executor.stop()
        store.close()


def bench_workers(root: Path, source: Path, runs: int = 200, keys: int = 20) -> Row:
    workers = on_workers(root / "celery", source, runs, keys)
    pool = in_process(root / "local", source, runs, keys)
    return Row(
        f"11 {runs} runs over {keys} keys: 2 Celery workers (Redis, 2 slots each) ÷ the in-process pool (4)",
        "ratio",
        workers,
        pool,
        GOAL,
        1,
        extra={
            "workers_runs_per_s": runs / workers,
            "pool_runs_per_s": runs / pool,
            "runs": runs,
            "keys": keys,
        },
        agent="fake",
    )


def workers_note(row: Row) -> str:
    x = row.extra
    return (
        f"11: {x['workers_runs_per_s']:.1f} runs/s on 2 Celery workers against {x['pool_runs_per_s']:.1f} "
        f"in one process ({x['runs']} runs, {x['keys']} keys, 4 slots either way); no two runs of a key "
        "overlapped."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step("11 Celery workers: 200 runs over 20 keys", lambda: record(suite, repos.small.path))


def record(suite: Suite, small: Path) -> None:
    row = bench_workers(suite.scratch / "b11", small)
    suite.rows.append(row)
    suite.notes.append(workers_note(row))


GROUP = Group(
    "workers",
    "11: 200 runs over 20 keys across 2 Celery workers (Redis broker) vs the in-process pool",
    run_group,
)
