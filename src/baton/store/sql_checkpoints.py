"""Checkpoints in the SQL store: each key's latest checkpoint commit as a git bundle in the blobs, so a
worker with an empty ``BATON_HOME`` can rebuild the worktree — uncommitted files included — that
another worker left (:mod:`baton.workspace.portable` makes and reads the bundles).

One row per key, replaced by each save in one transaction together with its blob; the blob of the
replaced row is dropped when no other checkpoint and no snapshot uses it. A record whose ``digest`` is
empty has no bundle: its commit is in the repository's remote, so there is nothing to carry.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import CheckpointRecord, Fence
from baton.store.schema import blobs, checkpoints, snapshots
from baton.store.tables import KEY, check_fence, key_where, upsert


class CheckpointTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx`` and ``_read``."""

    def _tx(
        self, lock_wait: float | None = None, *, bulk: bool = False
    ) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def save_checkpoint(self, record: CheckpointRecord, data: bytes, fence: Fence | None = None) -> None:
        """Store the bundle ``data`` as a blob and ``record`` as the key's latest checkpoint (replacing
        the previous one and dropping its blob when unused). With ``fence``, refused (:class:`Fenced`,
        nothing written) when the key's lease was granted to someone else since."""
        if fence is not None:
            record.fence = fence.token
        where = key_where(checkpoints, record.agent, record.repo, record.thread)
        with self._tx(bulk=True) as conn:
            check_fence(conn, fence)
            query = sa.select(checkpoints.c.digest).where(where)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            previous = conn.execute(query).scalar()
            if record.digest:
                upsert(
                    conn, blobs, {"digest": record.digest, "size": len(data), "data": data}, ["digest"], False
                )
            upsert(conn, checkpoints, dict(record.__dict__), KEY)
            if previous is not None and previous != record.digest:
                _drop_if_unused(conn, previous)

    def get_checkpoint(self, agent: str, repo: str, thread: str) -> CheckpointRecord | None:
        with self._read() as conn:
            where = key_where(checkpoints, agent, repo, thread)
            row = conn.execute(sa.select(checkpoints).where(where)).first()
        return CheckpointRecord(**row._mapping) if row is not None else None

    def delete_checkpoint(self, agent: str, repo: str, thread: str) -> None:
        where = key_where(checkpoints, agent, repo, thread)
        with self._tx() as conn:
            digest = conn.execute(sa.select(checkpoints.c.digest).where(where)).scalar()
            conn.execute(sa.delete(checkpoints).where(where))
            if digest is not None:
                _drop_if_unused(conn, digest)


def _drop_if_unused(conn: Connection, digest: str) -> None:
    """Drop the blob ``digest`` unless a checkpoint or a snapshot still uses it (blobs are shared by
    content; a bundle and a transcript chunk with one digest would be one blob)."""
    if not digest:
        return
    if conn.execute(sa.select(checkpoints.c.thread).where(checkpoints.c.digest == digest).limit(1)).first():
        return
    if conn.execute(sa.select(snapshots.c.thread).where(snapshots.c.files.contains(digest)).limit(1)).first():
        return
    conn.execute(sa.delete(blobs).where(blobs.c.digest == digest))
