"""Checkpoints in the SQL store: each key's latest checkpoint commit as a git bundle in the blobs, so a
worker with an empty ``BATON_HOME`` can rebuild the worktree — uncommitted files included — that
another worker left. (Being built for issue 10.)"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection

from baton.models import CheckpointRecord, Fence


class CheckpointTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def save_checkpoint(self, record: CheckpointRecord, data: bytes, fence: Fence | None = None) -> None:
        """Store the bundle ``data`` as a blob and ``record`` as the key's latest checkpoint (replacing
        the previous one and dropping its blob when unused)."""
        raise NotImplementedError

    def get_checkpoint(self, agent: str, repo: str, thread: str) -> CheckpointRecord | None:
        raise NotImplementedError

    def delete_checkpoint(self, agent: str, repo: str, thread: str) -> None:
        raise NotImplementedError
