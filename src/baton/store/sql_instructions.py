"""What a key's conversation knows of its agent's instruction files, in the SQL store: one row per key,
replaced by each save (:mod:`baton.runner.instructions` makes and reads its ``files``). Apart from the
sessions table so that listing sessions never reads the files' kept texts; deleted with its session.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import Fence, InstructionsRecord
from baton.store.schema import instructions
from baton.store.tables import KEY, check_fence, key_where, upsert


class InstructionTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx`` and ``_read``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def save_instructions(self, record: InstructionsRecord, *, fence: Fence | None = None) -> None:
        """Store ``record`` as the key's (replacing the previous one); with ``fence``, refused
        (:class:`~baton.errors.Fenced`, nothing written) when the key's lease was granted to another since."""
        values = {
            "agent": record.agent,
            "repo": record.repo,
            "thread": record.thread,
            "session_id": record.session_id,
            "recorded_at": record.recorded_at,
            "files": json.dumps(record.files),
        }
        with self._tx() as conn:
            check_fence(conn, fence)
            upsert(conn, instructions, values, KEY)

    def get_instructions(self, agent: str, repo: str, thread: str) -> InstructionsRecord | None:
        """The key's record; None when there is none, or it does not parse (a damaged row is a record
        missing: the next turn records the files again, it never wedges the key)."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(instructions).where(key_where(instructions, agent, repo, thread))
            ).first()
        if row is None:
            return None
        data = dict(row._mapping)
        try:
            files = json.loads(data["files"])
        except (ValueError, RecursionError):
            return None
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            return None
        return InstructionsRecord(
            data["agent"], data["repo"], data["thread"], data["session_id"], data["recorded_at"], files
        )

    def delete_instructions(self, agent: str, repo: str, thread: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.delete(instructions).where(key_where(instructions, agent, repo, thread)))
