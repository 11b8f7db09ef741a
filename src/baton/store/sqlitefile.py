"""A SQLite store's file and connections, without SQLAlchemy: the room its disk must have before it is
opened, and the settings of every connection to it (shared by :mod:`baton.store.engine` and
:mod:`baton.cli.fast.lite`)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from baton.errors import DiskFull

SQLITE_MIN_FREE = 1024 * 1024  # bytes a SQLite store's disk must have free for baton to open it


def check_room(database: Path) -> None:
    """Refuse to open a SQLite store on a disk with less than :data:`SQLITE_MIN_FREE` free, before
    SQLite creates its WAL and maps its WAL index (the ``-shm`` file). On a nearly full ext4 a page of
    that mapping the file system cannot back is a SIGBUS, which kills the process without a word (exit
    135); ``mmap_size=0`` does not cover the ``-shm``, which WAL mode always maps. With so little room
    no write would commit anyway; the same test as :func:`store_error`'s reading of a "disk I/O error"."""
    with contextlib.suppress(OSError):  # a directory we cannot stat: SQLite says what is wrong
        free = shutil.disk_usage(database.parent).free
        if free < SQLITE_MIN_FREE:
            raise DiskFull(
                f"the disk holding the store {database} is full ({free // 1024} KiB free, baton needs "
                f"{SQLITE_MIN_FREE // 1024} KiB to open it); free some space and retry"
            )


def configure(dbapi_conn: Any, busy: float) -> None:
    """Every SQLite connection baton opens, SQLAlchemy's or :mod:`baton.cli.fast.lite`'s: a lock another
    connection holds is waited for ``busy`` seconds (the setting ``store_lock_timeout``)."""
    # Take transactions into our own hands (pysqlite's implicit BEGIN is deferred, which lets two
    # writers both read a free lease); WAL lets readers run beside the one writer.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={max(1, round(busy * 1000))}")
    # No memory-mapped I/O of the database file: on a full disk a write into a mapping that cannot be
    # backed is a SIGBUS that kills the process without a word; read()/write() get ENOSPC instead.
    cursor.execute("PRAGMA mmap_size=0")
    cursor.close()
