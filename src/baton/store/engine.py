"""The SQL engine layer: one engine per store URL per process (created and migrated once), SQLite's
connection settings (WAL, ``BEGIN IMMEDIATE``, no memory-mapped I/O), the migration runner, and the
translation of database errors into baton's (a full disk is :class:`DiskFull`)."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from baton.errors import BatonError, DiskFull, StoreError
from baton.store.migrations import DIALECT_TYPES, MIGRATIONS


def migrate(engine: Engine) -> None:
    """Apply pending migrations, in order, in one transaction (PostgreSQL: under an advisory lock)."""
    types = DIALECT_TYPES[engine.dialect.name]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
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


_ENGINES: OrderedDict[str, Engine] = OrderedDict()
_ENGINES_MAX = 8
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process, created and migrated once: each ``run()`` opens the store, and a
    new engine would recompile every statement and re-check the schema (about 10 ms a run)."""
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is not None and (database is None or database == ":memory:" or Path(database).exists()):
            _ENGINES.move_to_end(url)
            return engine
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        migrate(engine)
        stale = _ENGINES.pop(url, None)
        _ENGINES[url] = engine
        if stale is not None:
            stale.dispose()
        while len(_ENGINES) > _ENGINES_MAX:
            _ENGINES.popitem(last=False)[1].dispose()
        return engine


def store_error(exc: sa.exc.DBAPIError, url: str) -> BatonError:
    """The database's own words; a full disk gets its own error. SQLite says "database or disk is
    full", or "disk I/O error" when the WAL index cannot grow, so the free space decides."""
    words = str(exc.orig)
    full = "disk is full" in words or "No space left" in words or "could not extend file" in words
    if not full and "disk I/O error" in words and url.startswith("sqlite"):
        database = sa.engine.make_url(url).database or ""
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(Path(database).parent).free < 1024 * 1024
    if full:
        return DiskFull(f"the disk holding the store is full ({words}); free some space and retry")
    return StoreError(f"store error: {words}")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transactions into our own hands (pysqlite's implicit BEGIN is deferred, which lets two
    # writers both read a free lease); WAL lets readers run beside the one writer.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # No memory-mapped I/O of the database file: on a full disk a write into a mapping that cannot be
    # backed is a SIGBUS that kills the process without a word; read()/write() get ENOSPC instead.
    cursor.execute("PRAGMA mmap_size=0")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable store URL>"
