"""The usage-quota breakers (``quotas``): one row per credential, shared by every machine of the fleet.

A run that meets a spent quota trips its credential's breaker (:meth:`QuotaTables.save_quota`, an upsert
of what :mod:`baton.runner.quota` decided); every run of that credential reads it before it starts
(:meth:`QuotaTables.quota`: one primary-key read) and waits while it is held; the first run that goes
through after the reset clears it (:meth:`QuotaTables.clear_quota`, conditional: a trip written after
that run started stays).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.models import QuotaRecord, QuotaState
from baton.store.schema import quotas
from baton.store.tables import upsert


class QuotaTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx`` and ``_read``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def quota(self, credential: str) -> QuotaRecord | None:
        """The breaker of ``credential`` (None: it never met a limit)."""
        with self._read() as conn:
            row = conn.execute(sa.select(quotas).where(quotas.c.credential == credential)).first()
        return _record(row._mapping) if row is not None else None

    def save_quota(self, record: QuotaRecord) -> None:
        """Write the breaker of ``record.credential`` as it is (created or replaced)."""
        values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        values["state"] = record.state.value
        with self._tx() as conn:
            upsert(conn, quotas, values, ["credential"])

    def clear_quota(self, credential: str, started: float) -> bool:
        """Close the breaker of ``credential`` after a run started at ``started`` went through, unless a
        limit was met again since; whether it was open."""
        held = (quotas.c.credential == credential) & (quotas.c.state == QuotaState.EXHAUSTED.value)
        not_since = sa.or_(quotas.c.tripped_at.is_(None), quotas.c.tripped_at <= started)
        fields = {"state": QuotaState.OK.value, "refusals": 0, "updated_at": time.time()}
        with self._tx() as conn:
            done = conn.execute(sa.update(quotas).where(held & not_since).values(**fields))
        return bool(done.rowcount)

    def list_quotas(self) -> list[QuotaRecord]:
        """Every credential's breaker, the held ones first, then by when they reset."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(quotas)).all()
        found = [_record(row._mapping) for row in rows]
        return sorted(found, key=lambda r: (r.state != QuotaState.EXHAUSTED, r.resets_at or 0.0, r.label))


def _record(row: Any) -> QuotaRecord:
    values = dict(row)
    values["state"] = QuotaState(values["state"])
    return QuotaRecord(**values)
