"""9a-9c: lease grant latency on SQLite, PostgreSQL and Redis (p50 and p99 reported).

One key, granted and released over and over by a :class:`baton.store.leases.LeaseHolder` (``acquire(wait=0)``
is timed; the release is not), the three backends interleaved:

- 9a the SQLite store (a file in the scratch directory: WAL, ``synchronous=NORMAL``);
- 9b a PostgreSQL store (a scratch database on ``BATON_TEST_PG_URL``, default the local server's
  ``test``), over TCP on 127.0.0.1;
- 9c Redis (a private ``redis-server`` on a free port) in front of that PostgreSQL store: the Lua grant,
  then the token recorded in the store (``advance_fence``) — what ``BATON_LEASE_BACKEND=redis`` costs.

Each row's baseline is one trivial round trip to the same backend (``SELECT 1`` in a transaction; Redis:
``PING``), the floor a grant cannot beat. The table shows the p50 of grants against the p50 of round trips;
the overhead column is the grant's p99, judged against 50 ms (a bar of baton's own, not a requirement: a grant
happens once per run and a renewal once per heartbeat, 5 s). Extra: p50/p99 of the Redis script alone (without
recording the token).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from common import Group, Plan, Repos, Row, Suite, interleave
from sqlalchemy.pool import NullPool

from baton.store import SQLStore
from baton.store.base import Lease
from baton.store.leases import HOST, LeaseBackend, LeaseHolder
from baton.store.redis import RedisConn, open_redis
from baton.store.redis_leases import RedisLeases

REPS = Plan(full=1000, quick=200)
GOAL_P99 = 0.050  # baton's own bar: a grant happens once per run, a renewal once per heartbeat (5 s)
KEY = "fake/bench/leases"
PG_ADMIN_URL = os.environ.get("BATON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A redis-server without persistence on a free port; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (exit code {proc.poll()})") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def scratch_pg() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its URL and drops it afterwards."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"baton_bench_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _grant(store: SQLStore, backend: LeaseBackend, key: str) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        holder = LeaseHolder(store, key, 30.0, backend=backend)
        t0 = time.perf_counter()
        holder.acquire(wait=0)
        elapsed = time.perf_counter() - t0
        holder.release()
        return elapsed

    return timed


def _select_one(store: SQLStore) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
        return time.perf_counter() - t0

    return timed


def _ping(conn: RedisConn) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        conn.client.ping()
        return time.perf_counter() - t0

    return timed


def _renew(holder: LeaseHolder) -> Callable[[int], float]:
    """A heartbeat: renewing a held lease."""

    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        renewed = holder.renew()
        elapsed = time.perf_counter() - t0
        assert renewed
        return elapsed

    return timed


def _script_only(leases: RedisLeases) -> Callable[[int], float]:
    """The Redis grant script alone (no token recorded in the store), then its release."""

    def timed(_rep: int) -> float:
        lease = Lease(KEY + "-script", f"{HOST}:bench", HOST, os.getpid(), 0.0, 0.0)
        t0 = time.perf_counter()
        granted, _lease, _now = leases._attempt(lease, 30.0, "")
        elapsed = time.perf_counter() - t0
        assert granted
        leases.release_lease(lease.key, lease.holder)
        return elapsed

    return timed


def bench_leases(root: Path, reps: int = 1000) -> list[Row]:
    root.mkdir(parents=True, exist_ok=True)
    with scratch_pg() as pg_url, private_redis(root / "redis") as redis_url:
        lite, pg = SQLStore(f"sqlite:///{root / 'baton.db'}"), SQLStore(pg_url)
        conn = open_redis(redis_url, pg)
        redis_leases = RedisLeases(conn, pg)
        beating = [
            LeaseHolder(pg, KEY + "-beat", 30.0),
            LeaseHolder(pg, KEY + "-beat-r", 30.0, backend=redis_leases),
        ]
        for holder in beating:
            holder.acquire(wait=0)
        try:
            samples = interleave(
                {
                    "sqlite": _grant(lite, lite, KEY),
                    "sqlite_rt": _select_one(lite),
                    "postgresql": _grant(pg, pg, KEY),
                    "postgresql_rt": _select_one(pg),
                    "redis": _grant(pg, redis_leases, KEY + "-redis"),  # one backend per key
                    "redis_rt": _ping(conn),
                    "redis_script": _script_only(redis_leases),
                    "postgresql_renew": _renew(beating[0]),
                    "redis_renew": _renew(beating[1]),
                },
                reps,
                warmup=20,
            )
        finally:
            lite.close()
            pg.close()
    script = samples["redis_script"]
    extra = {"redis_script_p50_s": percentile(script, 0.5), "redis_script_p99_s": percentile(script, 0.99)}
    for name in ("postgresql_renew", "redis_renew"):
        extra[f"{name}_p50_s"] = percentile(samples[name], 0.5)
        extra[f"{name}_p99_s"] = percentile(samples[name], 0.99)
    labels = {
        "sqlite": ("9a", "SQLite store", "`SELECT 1`"),
        "postgresql": ("9b", "PostgreSQL store", "`SELECT 1`"),
        "redis": ("9c", "Redis + recording the token in PostgreSQL", "`PING`"),
    }
    rows = []
    for name, (tag, what, floor) in labels.items():
        grants, trips = samples[name], samples[f"{name}_rt"]
        rows.append(
            Row(
                f"{tag} lease grant, {what}: p50 vs a {floor} round trip; p99 in the overhead column",
                "overhead",
                percentile(grants, 0.5),
                percentile(trips, 0.5),
                GOAL_P99,
                reps,
                overhead=percentile(grants, 0.99),
                samples={"candidate": grants, "baseline": trips},
                extra={"p99_s": percentile(grants, 0.99), **(extra if name == "redis" else {})},
            )
        )
    return rows


def leases_note(rows: list[Row]) -> str:
    parts = [
        f"{row.name.split(' ')[0]} p50 {row.candidate * 1000:.2f} ms, p99 {row.extra['p99_s'] * 1000:.2f} ms"
        for row in rows
    ]
    redis = rows[-1].extra
    return (
        "9a-9c lease grants: "
        + "; ".join(parts)
        + f". The Redis script alone: p50 {redis['redis_script_p50_s'] * 1000:.2f} ms, p99 "
        f"{redis['redis_script_p99_s'] * 1000:.2f} ms; a Redis grant costs that plus one store "
        "transaction (`advance_fence`, so the store fences older grants), so Redis moves the heartbeats, "
        f"not the grants, off the store: a renewal takes p50 {redis['redis_renew_p50_s'] * 1000:.2f} ms, "
        f"p99 {redis['redis_renew_p99_s'] * 1000:.2f} ms in Redis against "
        f"{redis['postgresql_renew_p50_s'] * 1000:.2f} / {redis['postgresql_renew_p99_s'] * 1000:.2f} ms "
        "in PostgreSQL."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step("9a-9c lease grants: SQLite / PostgreSQL / Redis", lambda: record(suite))


def record(suite: Suite) -> None:
    found = bench_leases(suite.scratch / "b9", suite.pick(REPS))
    suite.rows.extend(found)
    suite.notes.append(leases_note(found))


GROUP = Group("leases", "9a-9c: lease grant latency p50/p99 on SQLite, PostgreSQL and Redis", run_group)
