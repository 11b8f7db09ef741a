"""The SQL engine layer: one engine per store URL per process (created and migrated once), SQLite's
connection settings (WAL, ``BEGIN IMMEDIATE``, no memory-mapped I/O), the migration runner (on
PostgreSQL under an advisory lock, so machines starting together migrate once), and the translation of
database errors into baton's: a full disk is :class:`DiskFull`; a PostgreSQL server that cannot be
reached, refuses the credentials or lacks the database is a :class:`StoreError` naming the URL (its
password hidden), one that is away (down, restarting, cut off) a :class:`StoreUnavailable`, a lock not
granted in time a :class:`StoreBusy`. Every connection carries the store's time limits
(:mod:`baton.store.limits`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from baton.errors import BatonError, DiskFull, StoreBusy, StoreError, StoreUnavailable
from baton.files import create_private, make_private_dir
from baton.store.limits import MIGRATION_LOCK_WAIT, StoreLimits
from baton.store.migrations import DIALECT_TYPES, MIGRATIONS
from baton.store.sqlitefile import SQLITE_MIN_FREE, check_room, configure

__all__ = [
    "LOCK_WAIT",
    "SQLITE_MIN_FREE",
    "check_room",
    "engine_for",
    "migrate",
    "redact",
    "store_error",
    "unreachable",
]


def migrate(engine: Engine) -> None:
    """Apply pending migrations, in order, in one transaction (PostgreSQL: under an advisory lock, which
    machines starting together wait for up to :data:`MIGRATION_LOCK_WAIT`, with no statement limit)."""
    types = DIALECT_TYPES[engine.dialect.name]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"SET LOCAL lock_timeout = {round(MIGRATION_LOCK_WAIT * 1000)}"))
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at "
                + types["real"]
                + " NOT NULL)"
            )
        )
        done = {row[0] for row in conn.execute(sa.text("SELECT version FROM schema_migrations"))}
        for version, description, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                conn.execute(sa.text(statement.format(**types)))
            conn.execute(
                sa.text("INSERT INTO schema_migrations VALUES (:v, :d, :t)"),
                {"v": version, "d": description, "t": time.time()},
            )


_ENGINES: OrderedDict[tuple[str, StoreLimits], Engine] = OrderedDict()
_ENGINES_MAX = 8
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str, limits: StoreLimits) -> Engine:
    """One engine per URL (and limits) per process, created and migrated once: each ``run()`` opens the
    store, and a new engine would recompile every statement and re-check the schema (about 10 ms a run)."""
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    cached = (url, limits)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(cached)
        if engine is not None and (database is None or database == ":memory:" or Path(database).exists()):
            _ENGINES.move_to_end(cached)
            return engine
        if database and database != ":memory:":
            # private before SQLite makes it (its -wal and -shm take the database file's mode), and its
            # directory too when baton makes that (BATON_HOME, for the default store)
            make_private_dir(Path(database).parent)
            check_room(Path(database))
            create_private(Path(database))
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": limits.lock})
            _sqlite_events(engine, limits.lock)
        else:
            args = limits.postgres_args(sa.engine.make_url(url))
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args=args)
        migrate(engine)
        stale = _ENGINES.pop(cached, None)
        _ENGINES[cached] = engine
        if stale is not None:
            stale.dispose()
        while len(_ENGINES) > _ENGINES_MAX:
            _ENGINES.popitem(last=False)[1].dispose()
        return engine


class Writers:
    """This process's writers of one SQLite store, one at a time. A thread that would wait for SQLite's
    write lock waits here instead, and is handed the turn the moment the writer before it commits;
    SQLite's busy handler sleeps 1, 2, 5, 10, ... 100 ms between its tries, the lock idle meanwhile
    (under 4 runs at once, BEGIN IMMEDIATE was 37% of a run's time). Re-entrant, as a nested write
    transaction meets SQLite's lock as before; after its ``wait`` (the store's lock timeout) a writer goes
    on to SQLite's own wait. Other processes' writers meet SQLite's lock only."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def reset(self) -> None:
        """No writer (a forked child's: :func:`_writers_after_fork`)."""
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def turn(self, wait: float) -> Iterator[None]:
        got = self._lock.acquire(timeout=wait)
        try:
            yield
        finally:
            if got:
                self._lock.release()


_WRITERS: dict[str, Writers] = {}


def _writers_after_fork() -> None:
    """A forked child (a Celery worker process) starts with no writer: a lock a parent's thread held
    at the fork would stay held in the child, where that thread does not exist."""
    for writers in _WRITERS.values():
        writers.reset()


os.register_at_fork(after_in_child=_writers_after_fork)


def writers_for(url: str) -> Writers | None:
    """The :class:`Writers` of a SQLite store's URL (one per process); None for PostgreSQL (its row locks
    queue writers already)."""
    if not url.startswith("sqlite"):
        return None
    with _ENGINES_LOCK:
        return _WRITERS.setdefault(url, Writers())


_HINTS = (
    (("authentication failed", "no password supplied", 'role "'), "check the user and password"),
    (("does not exist",), "create the database or correct the URL"),
    (("refused", "resolve host", "timeout", "timed out", "unreachable"), "is PostgreSQL running there?"),
)


def store_error(exc: sa.exc.DBAPIError, url: str) -> BatonError:
    """The database's own words; a full disk gets its own error. SQLite says "database or disk is
    full", or "disk I/O error" when the WAL index cannot grow, so the free space decides. A PostgreSQL
    connection that failed (psycopg gives no SQLSTATE then) names the URL, without its password."""
    words = _one_line(str(exc.orig), url)
    full = "disk is full" in words or "No space left" in words or "could not extend file" in words
    if not full and "disk I/O error" in words and url.startswith("sqlite"):
        database = sa.engine.make_url(url).database or ""
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(Path(database).parent).free < SQLITE_MIN_FREE
    if full:
        return DiskFull(f"the disk holding the store is full ({words}); free some space and retry")
    busy = _busy(exc, url, words)
    if busy is not None:
        return busy
    if not url.startswith("sqlite") and unreachable(exc):
        hint = next((h for needles, h in _HINTS if any(n in words for n in needles)), "")
        said = f"cannot reach the store at {redact(url)}: {words}" + (f"; {hint}" if hint else "")
        return StoreUnavailable(said)
    return StoreError(f"store error: {words}")


# SQLSTATEs of a lock not granted in time (lock_timeout, NOWAIT) and of a statement cancelled
# (statement_timeout), and of a session the server ended for sitting idle in a transaction
_LOCKED, _CANCELLED, _IDLE = "55P03", "57014", "25P03"


def _busy(exc: sa.exc.DBAPIError, url: str, words: str) -> StoreError | None:
    """The store's own time limits reached (:mod:`baton.store.limits`): a :class:`StoreBusy`, or the
    :class:`StoreUnavailable` of a transaction the server ended; None for any other error."""
    if url.startswith("sqlite"):
        if "database is locked" in words:
            return StoreBusy(
                f"the store is busy: another connection held its write lock too long "
                f"(setting store_lock_timeout): {words}"
            )
        return None
    state = str(getattr(exc.orig, "sqlstate", "") or "")
    if state == _LOCKED:
        return StoreBusy(
            f"the store is busy: a lock another connection holds was not granted in time "
            f"(setting store_lock_timeout): {words}"
        )
    if state == _CANCELLED:
        return StoreBusy(f"a store statement was stopped (setting store_statement_timeout): {words}")
    if state == _IDLE:
        return StoreUnavailable(
            f"the store ended this connection's transaction, idle too long (setting "
            f"store_idle_timeout; was this process paused?): {words}"
        )
    return None


# SQLSTATEs of a server that is away: a connection exception (class 08), a server shutting down
# (admin or crash) or starting up
_AWAY = ("08", "57P01", "57P02", "57P03")


def unreachable(exc: sa.exc.DBAPIError) -> bool:
    """Whether a PostgreSQL error says the server could not be reached (a :class:`StoreUnavailable`,
    which a caller may try again), rather than refusing the statement: a connection that failed or
    dropped (psycopg gives no SQLSTATE then, and SQLAlchemy marks the connection invalidated), or a
    server shutting down or starting up. A SQLite file is never away (a lock it waits for is
    :class:`StoreBusy`)."""
    state = getattr(exc.orig, "sqlstate", "")
    return exc.connection_invalidated or state is None or str(state).startswith(_AWAY)


def _one_line(text: str, url: str) -> str:
    """The driver's message on one line, and never the URL's password (should a driver echo it)."""
    words = " ".join(text.split())
    with contextlib.suppress(sa.exc.ArgumentError):
        password = sa.engine.make_url(url).password
        if password:
            words = words.replace(str(password), "***")
    return words


READ_ONLY = "baton_read_only"  # an execution option: the transaction only reads (SQLStore.reading)
LOCK_WAIT = "baton_lock_wait"  # an execution option: SQLite's busy wait for this transaction (seconds)


def _sqlite_events(engine: Engine, busy: float) -> None:
    """Every connection of a SQLite engine configured (:func:`configure`: waits ``busy`` s for a lock),
    and every transaction begun as below."""

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        configure(dbapi_conn, busy)

    def on_begin(conn: Connection) -> None:
        # a writer takes the write lock at BEGIN (two writers never both read a free lease); a reader
        # takes none: under WAL it reads the last commit and neither waits for a writer nor holds one up
        options = conn.get_execution_options()
        wait, info = float(options.get(LOCK_WAIT, busy)), conn.connection.info
        if info.get(LOCK_WAIT, busy) != wait:  # a lease's shorter wait, or back to the store's
            conn.exec_driver_sql(f"PRAGMA busy_timeout={max(1, round(wait * 1000))}")
            info[LOCK_WAIT] = wait
        conn.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def dispose_engine(url: str) -> None:
    """Close this process's engines for ``url`` (their pooled connections): before the database is
    dropped (tests), or when a store URL is done with."""
    with _ENGINES_LOCK:
        engines = [_ENGINES.pop(cached) for cached in list(_ENGINES) if cached[0] == url]
    for engine in engines:
        engine.dispose()


def dispose_engines() -> None:
    """Close every engine of this process (their pooled connections): SQLite's last connection to
    close removes its WAL and shared-memory files, PostgreSQL's sessions end cleanly. Before a quick
    exit (:func:`baton.cli._leave`), which closes nothing itself."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def after_fork() -> None:
    """In a forked child (a Celery worker process): forget the parent's pooled connections without
    closing them (they are the parent's sockets); the child opens its own."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose(close=False)


def redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable store URL>"
