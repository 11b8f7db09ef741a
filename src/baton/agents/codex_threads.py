"""Codex's threads on disk: finding a thread's rollout file (:func:`rollout_files`), repairing the SQLite
indexes beside them (:func:`repair_index`), and forking a rollout (:func:`fork_rollout`). A thread is one
JSONL rollout, ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<id>.jsonl``, found here by the id
at the end of its name; Codex 0.169.0's formats, its indexes and why its own ``codex exec fork`` will not
do are measured in docs/agent-clis.md, "Codex CLI".
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from baton.agents.base import is_uuid
from baton.errors import AgentError
from baton.files import atomic_write_bytes


def is_thread_id(value: str | None) -> bool:
    """True for a canonical UUID, the only kind of id ``resume`` treats as an id rather than a name."""
    return is_uuid(value)


def rollout_files(home: Path, session_id: str) -> list[Path]:
    """Non-empty ``sessions/YYYY/MM/DD/rollout-*-<id>.jsonl`` files of one thread."""
    sessions = home / "sessions"
    if not is_thread_id(session_id) or not sessions.is_dir():
        return []
    found = sessions.glob(f"*/*/*/rollout-*-{session_id}.jsonl")
    return sorted(p for p in found if p.is_file() and p.stat().st_size)


# -- forks ----------------------------------------------------------------------------------------------


def new_thread_id() -> str:
    """A fresh UUIDv7 (RFC 9562), the kind of id Codex gives its threads: 48 bits of Unix
    milliseconds, the version, 12 + 62 random bits around the variant."""
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def rollout_path(home: Path, thread_id: str, now: float | None = None) -> Path:
    """Where Codex would put a thread created at ``now``: a local-time date folder and file name."""
    local = time.localtime(now)
    day = time.strftime("%Y/%m/%d", local)
    return home / "sessions" / day / f"rollout-{time.strftime('%Y-%m-%dT%H-%M-%S', local)}-{thread_id}.jsonl"


def fork_rollout(home: Path, source_id: str) -> tuple[str, Path]:
    """Copy the rollout of thread ``source_id`` to a new thread; returns the new thread's id and
    rollout. AgentError, with nothing written, when the source cannot be forked.

    A baton fork must outlive its source and travel alone in its snapshot, which a thread of Codex's own
    ``codex exec fork`` does not (it reads its history from the source's rollout). So the source rollout
    is copied whole:

    - the id is a new UUIDv7, as Codex's own ids are (time-ordered);
    - every occurrence of the source id in the copy becomes the new id (a same-length byte replacement:
      the header, the events and the usage records all name the thread; the rest stays byte for byte);
    - the copy is cut after its last complete line (the source may be being written by another run), its
      header is checked, and it is written to a temporary file then renamed, so a failed copy leaves
      nothing behind;
    - no index row is written: Codex finds a thread without one by its rollout's name and indexes it on
      the first resume. The source's rollout and rows are only read.
    """
    files = rollout_files(home, source_id)
    if not files:
        raise AgentError(f"cannot fork Codex thread {source_id}: it has no rollout under {home / 'sessions'}")
    source = files[-1]  # the newest date folder: the one repair_index points the index at
    try:
        data = source.read_bytes()
        mode = stat.S_IMODE(source.stat().st_mode)
    except OSError as exc:
        raise AgentError(f"cannot fork Codex thread {source_id}: cannot read {source}: {exc}") from exc
    data = data[: data.rfind(b"\n") + 1]  # whole lines only: a run of the source may be appending
    _check_header(data, source_id, source)
    thread_id = new_thread_id()
    target = rollout_path(home, thread_id)
    try:
        atomic_write_bytes(target, data.replace(source_id.encode("ascii"), thread_id.encode("ascii")), mode)
    except OSError as exc:
        raise AgentError(f"cannot fork Codex thread {source_id}: cannot write {target}: {exc}") from exc
    return thread_id, target


def _check_header(data: bytes, source_id: str, source: Path) -> None:
    """AgentError unless ``data`` is UTF-8 and starts with the ``session_meta`` of ``source_id``: Codex
    refuses anything else ("failed to read session metadata"), and a fork of it would be no better."""
    try:
        data.decode("utf-8")
        header = json.loads(data[: data.find(b"\n")])
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    payload = header.get("payload") if isinstance(header, dict) else None
    if not (
        isinstance(header, dict)
        and header.get("type") == "session_meta"
        and isinstance(payload, dict)
        and payload.get("id") == source_id
    ):
        raise AgentError(
            f"cannot fork Codex thread {source_id}: {source} is not a readable rollout of it "
            "(no session_meta line naming the thread first)"
        )


# -- the SQLite indexes -------------------------------------------------------------------------------


def repair_index(home: Path, session_id: str, projection: bool = False) -> bool:
    """Point a stale ``threads`` row of ``session_id`` at the rollout that is on disk, and drop the
    thread's history projection when the row was stale or ``projection`` is asked for (Codex rebuilds
    it from the rollout). A row pointing where the file no longer is (a BATON_HOME restored at another
    path, a snapshot written under another date folder) makes ``resume`` fail with "no rollout found"
    although the rollout is on disk: the adapter calls this after hydration and before every resume.
    Best effort: an index baton cannot open (locked, another schema) is left alone. True if anything
    changed."""
    files = rollout_files(home, session_id)
    if not files:
        return False
    rollout = str(files[-1])

    def fix_row(conn: sqlite3.Connection) -> bool:
        if not _has_columns(conn, "threads", {"id", "rollout_path"}):
            return False
        row = conn.execute("SELECT rollout_path FROM threads WHERE id = ?", (session_id,)).fetchone()
        if row is None or row[0] == rollout or Path(str(row[0])).is_file():
            return False
        conn.execute("UPDATE threads SET rollout_path = ? WHERE id = ?", (rollout, session_id))
        return True

    def drop_projection(conn: sqlite3.Connection) -> bool:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        deleted = 0
        for table in names:
            if str(table).startswith("thread_") and _has_columns(conn, table, {"thread_id"}):
                deleted += conn.execute(f'DELETE FROM "{table}" WHERE thread_id = ?', (session_id,)).rowcount
        return deleted > 0

    stale = any([_with_db(db, fix_row) for db in sorted(home.glob("state_*.sqlite"))])
    dropped = False
    if stale or projection:
        dropped = any([_with_db(db, drop_projection) for db in sorted(home.glob("thread_history_*.sqlite"))])
    return stale or dropped


def _with_db(db: Path, change: Callable[[sqlite3.Connection], bool]) -> bool:
    """Run ``change`` in one transaction on an existing database; False if SQLite refuses, and for a
    link (the home is the agent's: a link could aim baton at another key's index, or the store)."""
    if db.is_symlink() or not db.is_file():
        return False
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        with conn:
            return change(conn)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _has_columns(conn: sqlite3.Connection, table: str, columns: set[str]) -> bool:
    names = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
    return columns <= names
