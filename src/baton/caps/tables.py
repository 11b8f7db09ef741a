"""The caps room's data in the store: its tables (``cap_limits``: caps stored for a subject, such as an
API token's; ``cap_raises``: every raise, who made it and when — built by the central append-only list
in :mod:`baton.store.migrations`), its role (:class:`CapStore`) and its implementation in the store's
own transactions (:func:`cap_store`). A raise is a row of its own, never an update of a total, so what
a cap is now can always be read back as its configured value plus the raises made since.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from baton.caps.model import Caps, Measure, Scope
from baton.store.base import Transactions
from baton.store.schema import Int, Real, Text, metadata
from baton.store.tables import upsert

MEASURES = {m.value for m in Measure}  # a row of a measure this baton does not know is skipped

cap_limits = sa.Table(
    "cap_limits",
    metadata,
    sa.Column("scope", Text, nullable=False),
    sa.Column("subject", Text, nullable=False),
    sa.Column("measure", Text, nullable=False),
    sa.Column("amount", Real, nullable=False),
    sa.Column("set_at", Real, nullable=False),
    sa.Column("set_by", Text, nullable=False),
    sa.PrimaryKeyConstraint("scope", "subject", "measure"),
)

cap_raises = sa.Table(
    "cap_raises",
    metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    sa.Column("scope", Text, nullable=False),
    sa.Column("subject", Text, nullable=False),
    sa.Column("measure", Text, nullable=False),
    sa.Column("amount", Real, nullable=False),
    sa.Column("at", Real, nullable=False),
    sa.Column("by", Text, nullable=False),
    sa.Index("cap_raises_subject", "scope", "subject"),
)


@dataclass(frozen=True)
class Raise:
    """One raise of a cap: by how much, by whom, when."""

    scope: Scope
    subject: str
    measure: Measure
    amount: float
    at: float
    by: str

    def to_json(self) -> dict[str, Any]:
        return {"measure": self.measure.value, "amount": self.amount, "at": self.at, "by": self.by}


class CapStore(Protocol):
    """Caps stored for a subject, and the raises of every cap."""

    def set_caps(self, scope: Scope, subject: str, caps: Caps, by: str) -> None: ...
    def stored_caps(self, scope: Scope, subject: str) -> Caps: ...
    def add_raise(self, scope: Scope, subject: str, measure: Measure, amount: float, by: str) -> Raise: ...
    def raises(self, scope: Scope, subject: str) -> list[Raise]: ...


def cap_store(store: Transactions) -> CapStore:
    """The caps' role over ``store`` (cheap: it holds nothing but the store)."""
    return SQLCaps(store)


class SQLCaps:
    """:class:`CapStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def set_caps(self, scope: Scope, subject: str, caps: Caps, by: str) -> None:
        """Store ``caps`` for the subject (a measure at 0 or None: its stored cap removed)."""
        now = time.time()
        with self._store.transaction() as conn:
            for measure in Measure:
                where = _subject(scope, subject) & (cap_limits.c.measure == measure.value)
                amount = caps.get(measure)
                if amount is None:
                    conn.execute(sa.delete(cap_limits).where(where))
                    continue
                values = {"scope": scope.value, "subject": subject, "measure": measure.value}
                upsert(
                    conn, cap_limits, {**values, "amount": amount, "set_at": now, "set_by": by}, list(values)
                )

    def stored_caps(self, scope: Scope, subject: str) -> Caps:
        query = sa.select(cap_limits.c.measure, cap_limits.c.amount).where(_subject(scope, subject))
        with self._store.reading() as conn:
            rows = conn.execute(query).all()
        return Caps(**{row.measure: float(row.amount) for row in rows if row.measure in MEASURES})

    def add_raise(self, scope: Scope, subject: str, measure: Measure, amount: float, by: str) -> Raise:
        made = Raise(scope, subject, measure, amount, time.time(), by)
        values = {"scope": scope.value, "subject": subject, "measure": measure.value}
        with self._store.transaction() as conn:
            conn.execute(sa.insert(cap_raises).values({**values, "amount": amount, "at": made.at, "by": by}))
        return made

    def raises(self, scope: Scope, subject: str) -> list[Raise]:
        query = sa.select(cap_raises).where(
            (cap_raises.c.scope == scope.value) & (cap_raises.c.subject == subject)
        )
        with self._store.transaction() as conn:
            rows = conn.execute(query.order_by(cap_raises.c.id)).all()
        return [
            Raise(scope, subject, Measure(r.measure), float(r.amount), float(r.at), str(r.by))
            for r in rows
            if r.measure in MEASURES
        ]


def _subject(scope: Scope, subject: str) -> sa.ColumnElement[bool]:
    return (cap_limits.c.scope == scope.value) & (cap_limits.c.subject == subject)
