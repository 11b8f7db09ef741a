"""The fleet's workers as the store knows them: each worker heartbeats its row (who, where, which queue,
when last seen) and, on its sweep, reports its volume's disk usage into the same row. ``baton doctor``,
``baton du --fleet``, the dashboard's disk card and ``/metrics`` read them back; a worker not seen for a
while is shown as such, never silently dropped.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import WorkerRecord
from baton.store.schema import workers
from baton.store.tables import upsert

IDENTITY = ("host", "pid", "queue", "started_at", "seen_at")


class WorkerTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def worker_seen(self, worker: WorkerRecord) -> None:
        """Record a heartbeat: the worker's identity and ``seen_at``; its last disk report is kept."""
        values = {"name": worker.name, **{k: getattr(worker, k) for k in IDENTITY}}
        with self._tx() as conn:
            upsert(conn, workers, values, ["name"])

    def report_worker_disk(
        self, name: str, disk: dict[str, Any], free_bytes: int, total_bytes: int, at: float
    ) -> bool:
        """Store a worker's disk report; False when the worker has no row (it never heartbeat)."""
        values = {
            "disk": json.dumps(disk),
            "disk_at": at,
            "free_bytes": free_bytes,
            "total_bytes": total_bytes,
        }
        with self._tx() as conn:
            done = conn.execute(sa.update(workers).where(workers.c.name == name).values(values))
        return bool(done.rowcount)

    def list_workers(self, seen_since: float | None = None) -> list[WorkerRecord]:
        """Workers by name; only those seen at or after ``seen_since`` when it is given."""
        query = sa.select(workers).order_by(workers.c.name)
        if seen_since is not None:
            query = query.where(workers.c.seen_at >= seen_since)
        with self._tx() as conn:
            return [_worker(r._mapping) for r in conn.execute(query)]

    def delete_worker(self, name: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(sa.delete(workers).where(workers.c.name == name)).rowcount)


def _worker(row: Any) -> WorkerRecord:
    return WorkerRecord(
        name=row["name"],
        host=row["host"],
        pid=row["pid"],
        queue=row["queue"],
        started_at=row["started_at"],
        seen_at=row["seen_at"],
        disk=json.loads(row["disk"]) if row["disk"] else None,
        disk_at=row["disk_at"],
        free_bytes=row["free_bytes"],
        total_bytes=row["total_bytes"],
    )
