"""What the store contract tests share (``test_store*.py``, ``test_schema.py``): records to save, a
row count, a race of threads released together, and a transaction of another process left open on a
key's lease row. The backends come from ``conftest``: ``store_url``
runs a test on SQLite and on PostgreSQL, ``pg_url`` gives a fresh PostgreSQL database."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from baton.models import Mode, PromptKind, RunRecord, SessionRecord, Snapshot
from baton.store import SQLStore, Store
from baton.store.base import Lease
from baton.store.schema import leases

REPO = "github.com/acme/api"


def make_session(thread: str = "issue-1", **changes: object) -> SessionRecord:
    values: dict[str, object] = {
        "agent": "fake",
        "repo": REPO,
        "thread": thread,
        "repo_url": "https://github.com/acme/api",
        "branch": f"baton/fake/{thread}",
        "worktree": f"/w/{thread}",
        "created_at": 100.0,
        "last_used_at": 100.0,
        "expires_at": 1000.0,
    }
    values.update(changes)
    return SessionRecord(**values)  # type: ignore[arg-type]


def make_run(run_id: str, thread: str = "issue-1", started_at: float = 100.0, **changes: object) -> RunRecord:
    values: dict[str, object] = {
        "id": run_id,
        "agent": "fake",
        "repo": REPO,
        "thread": thread,
        "attempt": 1,
        "mode": Mode.FRESH,
        "prompt_kind": PromptKind.FULL,
        "prompt": "do it",
        "started_at": started_at,
        "log_path": f"/logs/{run_id}.jsonl",
        "host": "h",
        "runner_pid": 1,
    }
    values.update(changes)
    return RunRecord(**values)  # type: ignore[arg-type]


def make_lease(holder: str, key: str = "k", expires_at: float = 2e9, pid: int = 1) -> Lease:
    return Lease(key=key, holder=holder, host="h", pid=pid, acquired_at=1.0, expires_at=expires_at)


def make_snapshot(files: dict[str, str], session_id: str = "sid", thread: str = "issue-1") -> Snapshot:
    """One chunk per file, named by its digest."""
    chunks = {path: [digest] for path, digest in files.items()}
    return Snapshot("fake", REPO, thread, session_id, chunks, 10, 123.0)


def count(store: SQLStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def race(workers: int, action: Callable[[int], Any]) -> list[Any]:
    """Call ``action(i)`` in ``workers`` threads released together (each takes its own connection from
    the pool); their results, or the exceptions they raised."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def work(i: int) -> None:
        barrier.wait(10)
        try:
            results[i] = action(i)
        except Exception as exc:  # the caller asserts there were none
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a racing thread hangs"
    return results


@contextmanager
def foreign_lock(url: str, key: str) -> Iterator[None]:
    """Another process's transaction holding ``key``'s lease row (on SQLite: the database's one write
    lock), left open as by a process frozen in it."""
    if url.startswith("sqlite"):
        raw = sqlite3.connect(str(sa.engine.make_url(url).database), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.rollback()
            raw.close()
        return
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT key FROM leases WHERE key = :k FOR UPDATE"), {"k": key})
            yield
            conn.rollback()
    finally:
        engine.dispose()


@contextmanager
def frozen_renewal(store: Store, key: str) -> Iterator[list[BaseException]]:
    """A holder's renewal of ``key``'s lease frozen before its commit, on ``store``'s connection (with
    its limits): the UPDATE made, the transaction left idle with the row locked, until the server ends
    it (``store_idle_timeout``) or the block ends. Yields the errors its transaction met by then."""
    renewing, ended = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def renewal() -> None:
        try:
            with store.transaction() as conn:
                update = sa.update(leases).where(leases.c.key == key).values(expires_at=time.time() + 3600)
                conn.execute(update)
                renewing.set()
                ended.wait(60)  # frozen here
                conn.execute(sa.text("SELECT 1"))
        except BaseException as exc:
            errors.append(exc)
            renewing.set()

    thread = threading.Thread(target=renewal, name="frozen-renewal")
    thread.start()
    try:
        assert renewing.wait(10) and not errors, errors
        yield errors
    finally:
        ended.set()
        thread.join(60)
