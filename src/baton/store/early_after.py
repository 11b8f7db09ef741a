"""The SQL store's statements for what a run does once its agent has started — renew and release the
lease, the transcript's blobs and snapshot, the worktree's checkpoint, a run's short id — in the
standard library's ``sqlite3``, for :class:`~baton.store.early.EarlyStore`: a ``baton run`` on a SQLite
store then never imports SQLAlchemy (~0.2 s of CPU that competed with the agent's own start-up on a
small machine, and that a quick turn then waited for).

Each function runs inside the caller's ``BEGIN IMMEDIATE`` transaction (``cur``) and is the
SQL store's method of the same name statement for statement (``tests/test_store_early.py`` runs both
and compares the tables): the same rows, the same conditions, the same blobs dropped.
"""

from __future__ import annotations

import json
import sqlite3

from baton.models import CheckpointRecord, Snapshot
from baton.store.rows import snapshot_digests

KEY = ("agent", "repo", "thread")
KEY_WHERE = "agent = ? AND repo = ? AND thread = ?"
NOW = "(julianday('now') - 2440587.5) * 86400.0"  # the SQL store's SQLite clock, as an expression


def renew_lease(cur: sqlite3.Cursor, key: str, holder: str, ttl: float) -> bool:
    cur.execute(f"UPDATE leases SET expires_at = {NOW} + ? WHERE key = ? AND holder = ?", [ttl, key, holder])
    return bool(cur.rowcount)


def release_lease(cur: sqlite3.Cursor, key: str, holder: str) -> None:
    cur.execute("UPDATE leases SET holder = '', expires_at = 0.0 WHERE key = ? AND holder = ?", [key, holder])


def put_blob(cur: sqlite3.Cursor, digest: str, data: bytes, size: int) -> None:
    # looked up first, so a blob the store has (the usual case) is not sent again
    if cur.execute("SELECT digest FROM blobs WHERE digest = ?", [digest]).fetchone() is None:
        _insert_blob(cur, digest, data, size)


def _insert_blob(cur: sqlite3.Cursor, digest: str, data: bytes, size: int) -> None:
    cur.execute(
        "INSERT INTO blobs (digest, data, size) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING",
        [digest, data, size],
    )


def get_blob(cur: sqlite3.Cursor, digest: str) -> bytes | None:
    row = cur.execute("SELECT data FROM blobs WHERE digest = ?", [digest]).fetchone()
    return bytes(row[0]) if row is not None and row[0] is not None else None


def save_snapshot(cur: sqlite3.Cursor, snapshot: Snapshot) -> None:
    key = [snapshot.agent, snapshot.repo, snapshot.thread]
    previous = cur.execute(f"SELECT files FROM snapshots WHERE {KEY_WHERE}", key).fetchone()
    values = {
        "agent": snapshot.agent,
        "repo": snapshot.repo,
        "thread": snapshot.thread,
        "agent_session_id": snapshot.agent_session_id,
        "files": json.dumps(snapshot.files),
        "total_bytes": snapshot.total_bytes,
        "created_at": snapshot.created_at,
    }
    upsert_key(cur, "snapshots", values)
    if previous is not None:
        unused = [d for d in snapshot_digests(previous[0]) - snapshot.digests() if not _in_a_snapshot(cur, d)]
        if unused:
            cur.execute(f"DELETE FROM blobs WHERE digest IN ({', '.join('?' * len(unused))})", unused)


def save_checkpoint(cur: sqlite3.Cursor, record: CheckpointRecord, data: bytes) -> None:
    key = [record.agent, record.repo, record.thread]
    previous = cur.execute(f"SELECT digest FROM checkpoints WHERE {KEY_WHERE}", key).fetchone()
    if record.digest:
        _insert_blob(cur, record.digest, data, len(data))
    upsert_key(cur, "checkpoints", dict(record.__dict__))
    if previous is not None and previous[0] != record.digest and previous[0]:
        digest = previous[0]
        used = cur.execute("SELECT thread FROM checkpoints WHERE digest = ? LIMIT 1", [digest]).fetchone()
        if used is None and not _in_a_snapshot(cur, digest):
            cur.execute("DELETE FROM blobs WHERE digest = ?", [digest])


def find_ids(cur: sqlite3.Cursor, table: str, newest: str, fragment: str, limit: int) -> list[str]:
    """The ids of ``table`` that are, start with or end with ``fragment``, newest (by column
    ``newest``) first: :func:`baton.store.tables.id_like`, LIKE's wildcards in it taken literally."""
    text = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = cur.execute(
        f"SELECT id FROM {table} WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' "
        f"ORDER BY {newest} DESC LIMIT ?",
        [text + "%", "%" + text, limit],
    )
    return [row[0] for row in rows.fetchall()]


def upsert_key(cur: sqlite3.Cursor, table: str, values: dict[str, object]) -> None:
    """:func:`baton.store.tables.upsert` on the key (agent, repo, thread): every other column updated."""
    changed = ", ".join(f"{name} = excluded.{name}" for name in values if name not in KEY)
    cur.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))}) "
        f"ON CONFLICT (agent, repo, thread) DO UPDATE SET {changed}",
        list(values.values()),
    )


def _in_a_snapshot(cur: sqlite3.Cursor, digest: str) -> bool:
    # SQLAlchemy's ``contains``: LIKE '%' || digest || '%' (a digest is hex: no wildcard in it)
    found = cur.execute("SELECT thread FROM snapshots WHERE files LIKE '%' || ? || '%' LIMIT 1", [digest])
    return found.fetchone() is not None
