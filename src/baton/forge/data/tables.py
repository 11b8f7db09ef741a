"""The forge room's data in the store: its roles and the role over the SQL store. Its tables, stated in
:mod:`baton.forge.data.schema` on the store's one :data:`~baton.store.schema.metadata` and built by the
central append-only list in :mod:`baton.store.migrations`, are webhook deliveries (``deliveries``, one
per forge and delivery id, kept with their result so a redelivery answers the same and acts once) and
the forge loop's bindings, events, turns and budgets. :class:`DeliveryStore` (:func:`delivery_store`) is
implemented here: inserting a known (forge, delivery id) does nothing, ``ON CONFLICT DO NOTHING``, which
is the atomic "act once"; :class:`ForgeStore` (:func:`forge_store`) in :mod:`baton.forge.data.sql`,
which is too long to share a module with the roles and cannot import the module that hands it out
(hence :mod:`baton.forge.data.schema`). Both run in the store's own transactions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from baton.forge.data.records import (
    Binding,
    BindingStatus,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
)
from baton.forge.data.schema import deliveries
from baton.forge.data.sql import After, Seen, SQLForge
from baton.store.base import Transactions
from baton.store.tables import insert_for


class DeliveryStore(Protocol):
    """Webhook deliveries, one per forge and delivery id."""

    def add_delivery(self, delivery: DeliveryRecord) -> bool:
        """False when the delivery is already stored: a redelivery, to answer from the first."""
        ...

    def add_deliveries(self, batch: Sequence[DeliveryRecord]) -> list[bool]:
        """Many in one transaction; per delivery, False when known (or earlier in the batch)."""
        ...

    def get_delivery(self, forge: str, delivery_id: str) -> DeliveryRecord | None: ...
    def update_delivery(
        self, forge: str, delivery_id: str, status: DeliveryStatus, result: dict[str, Any]
    ) -> None: ...
    def list_deliveries(self, limit: int = 100) -> list[DeliveryRecord]: ...
    def list_deliveries_by_status(self, status: DeliveryStatus, limit: int = 1000) -> list[DeliveryRecord]:
        """Oldest first (the service re-queues ``pending`` ones at start)."""
        ...

    def delivery_counts(self) -> list[tuple[str, str, str, int]]:
        """(forge, event, status, n): counted by the database (GROUP BY), for ``/metrics``."""
        ...


class ForgeStore(Protocol):
    """The forge room's threads bound to issues and PRs, their events, turns and budgets (implemented
    by :mod:`baton.forge.data.sql`). A conversation is (forge, repo, number, kind): ``pr`` says the
    kind (a PR's number or an issue's; GitLab numbers them apart), and a read given None takes either
    (one number sequence has one of them). Each write is one
    transaction, and what must happen once across machines (an event acted on, a row claimed, a turn
    published, a budget spent) is decided by the database."""

    def bind(self, binding: Binding, pr: bool | None = None) -> tuple[Binding, bool]:
        """Store a new binding: ``(binding, True)``; a conversation bound already (by its number or
        as an issue's PR) gives the stored one and False, unchanged. A key (agent, repo slug, thread)
        bound to another conversation is :class:`baton.errors.BadInput`."""
        ...

    def get_binding(self, forge: str, repo: str, number: int, pr: bool | None = None) -> Binding | None:
        """The binding of ``number``, or the one whose ``pr`` it is (``pr``: which ``number`` is, where
        a forge numbers issues and PRs apart; None, either)."""
        ...

    def binding_for_key(self, agent: str, repo_slug: str, thread: str) -> Binding | None: ...
    def save_binding(self, binding: Binding) -> bool:
        """Write every field (the caller sets ``updated_at``); False when not bound. A key bound to
        another conversation is :class:`baton.errors.BadInput`."""
        ...

    def mark_pr_opened(
        self, forge: str, repo: str, number: int, at: float, *, pr: bool | None = None
    ) -> None:
        """baton opened the thread's PR at ``at`` (kept from the first call): an outcome fact."""
        ...

    def mark_merged(self, forge: str, repo: str, number: int, pr: bool | None = None) -> None:
        """The PR of the binding of ``number`` (or whose PR it is) was merged: an outcome fact, set once."""
        ...

    def mark_seen(self, forge: str, repo: str, seen: Sequence[Seen], at: float) -> None:
        """Set ``seen_at`` and the checks' ETag of the repo's bindings ``(number, etag[, kind])``, in one
        write."""
        ...

    def list_bindings(
        self,
        *,
        status: BindingStatus | None = None,
        forge: str | None = None,
        limit: int = 1000,
        after: After | None = None,
    ) -> list[Binding]:
        """By (forge, repo, number, kind); ``after`` the last one's (forge, repo, number, kind), for the
        next page."""
        ...

    def unbind(self, forge: str, repo: str, number: int, pr: bool | None = None) -> bool: ...
    def add_forge_event(self, record: EventRecord) -> EventRecord | None:
        """The stored record (with its ``id``); None when (forge, repo, identity) is known already."""
        ...

    def forge_events(
        self,
        forge: str,
        repo: str,
        number: int,
        *,
        status: EventStatus | None = None,
        limit: int = 1000,
        pr: bool | None = None,
    ) -> list[EventRecord]:
        """In arrival order."""
        ...

    def events_of_job(self, job_id: str) -> list[EventRecord]: ...
    def claim_forge_events(self, ids: Sequence[int], job_id: str) -> list[int]:
        """Pending or held → dispatched for ``job_id``: the ids moved (each to one claimer only)."""
        ...

    def set_forge_events(self, ids: Sequence[int], status: EventStatus, reason: str | None = None) -> int:
        """Set status and reason; how many rows."""
        ...

    def pending_forge_threads(self, limit: int = 1000) -> list[tuple[str, str, int, bool]]:
        """(forge, repo, number, kind) of the conversations with pending events."""
        ...

    def recent_forge_events(self, limit: int = 100) -> list[EventRecord]:
        """Newest first."""
        ...

    def add_forge_turn(
        self,
        job_id: str,
        forge: str,
        repo: str,
        number: int,
        kinds: list[str],
        submitted_at: float,
        *,
        pr: bool = False,
    ) -> bool:
        """False when ``job_id`` is recorded already."""
        ...

    def forge_turns(
        self, forge: str, repo: str, number: int, since: float = 0, *, pr: bool | None = None
    ) -> list[dict[str, Any]]:
        """Turns submitted at or after ``since``, oldest first: job_id, forge, repo, number, kinds
        (list), submitted_at, published_at, publish (dict or None)."""
        ...

    def unpublished_turns(self, limit: int = 100) -> list[dict[str, Any]]:
        """Turns not published yet, oldest first."""
        ...

    def published(self, job_id: str) -> dict[str, Any] | None:
        """What was written back for the turn, once it is published; None before (or not a turn)."""
        ...

    def mark_published(self, job_id: str, publish: dict[str, Any], at: float) -> bool:
        """True for the one caller that publishes the turn; False when it was published already. What
        it pushed and whether it answered are kept beside it (:mod:`baton.forge.data.outcomes`)."""
        ...

    def spend_budget(
        self, forge: str, repo: str, number: int, signature: str, at: float, *, pr: bool = False
    ) -> int:
        """One more against ``signature`` (atomic); the count now."""
        ...

    def budget_spent(
        self, forge: str, repo: str, number: int, signature: str, *, pr: bool | None = None
    ) -> int: ...
    def reset_budgets(self, forge: str, repo: str, number: int, *, pr: bool | None = None) -> int:
        """Forget the conversation's spends; how many budgets were reset."""
        ...

    def forge_counts(self) -> dict[str, list[tuple[Any, ...]]]:
        """``events`` (kind, status, n) and ``bindings`` (status, n): GROUP BY queries, for /metrics."""
        ...

    def forge_turn_counts(self) -> dict[str, Any]:
        """``turns`` [(kind, outcome, n)]: a turn once per kind it was about, by its job's outcome
        (``queued``/``running`` before it has one, ``unknown`` when the job is gone); ``refused``: how
        many triggers the trust policy refused (the audit's ``forge.refused`` rows). For /metrics."""
        ...


def delivery_store(store: Transactions) -> DeliveryStore:
    """The deliveries' role over ``store`` (cheap: it holds nothing but the store)."""
    return SQLDeliveries(store)


def forge_store(store: Transactions) -> ForgeStore:
    """The forge's bindings, events, turns and budgets over ``store`` (cheap, as :func:`delivery_store`)."""
    return SQLForge(store)


class SQLDeliveries:
    """:class:`DeliveryStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def add_delivery(self, delivery: DeliveryRecord) -> bool:
        """Insert a new delivery; False when (forge, delivery id) is already stored (a redelivery)."""
        return self.add_deliveries([delivery])[0]

    def add_deliveries(self, batch: Sequence[DeliveryRecord]) -> list[bool]:
        """:meth:`add_delivery` for many in one transaction (the webhook intake's group commit): per
        delivery, False when its (forge, id) is stored already or came earlier in the batch."""
        first: dict[tuple[str, str], int] = {}
        for index, d in enumerate(batch):
            first.setdefault((d.forge, d.delivery_id), index)
        if not first:
            return []
        rows = [_delivery_values(batch[index]) for index in first.values()]
        with self._store.transaction() as conn:
            # one multi-row statement, not executemany: one step of SQLite, so the writing thread gives
            # up and retakes the GIL once, not once per row (the event loop waits less). Known ones are
            # skipped by the database, atomically (two machines may receive one delivery at once).
            if conn.dialect.name == "sqlite":
                returned = conn.exec_driver_sql(*_sqlite_insert(rows))
            else:
                insert = insert_for(conn, deliveries).values(rows).on_conflict_do_nothing()
                returned = conn.execute(insert.returning(deliveries.c.forge, deliveries.c.delivery_id))
            inserted = {(forge, delivery_id) for forge, delivery_id in returned}
        return [
            first[(d.forge, d.delivery_id)] == index and (d.forge, d.delivery_id) in inserted
            for index, d in enumerate(batch)
        ]

    def get_delivery(self, forge: str, delivery_id: str) -> DeliveryRecord | None:
        with self._store.reading() as conn:
            row = conn.execute(
                sa.select(deliveries).where(
                    deliveries.c.forge == forge, deliveries.c.delivery_id == delivery_id
                )
            ).first()
        return _delivery(row._mapping) if row else None

    def update_delivery(
        self, forge: str, delivery_id: str, status: DeliveryStatus, result: dict[str, Any]
    ) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.forge == forge, deliveries.c.delivery_id == delivery_id)
                .values(status=status.value, result=json.dumps(result))
            )

    def list_deliveries(self, limit: int = 100) -> list[DeliveryRecord]:
        query = sa.select(deliveries).order_by(deliveries.c.received_at.desc()).limit(limit)
        with self._store.reading() as conn:
            return [_delivery(r._mapping) for r in conn.execute(query)]

    def list_deliveries_by_status(self, status: DeliveryStatus, limit: int = 1000) -> list[DeliveryRecord]:
        query = (
            sa.select(deliveries)
            .where(deliveries.c.status == status.value)
            .order_by(deliveries.c.received_at.asc())
            .limit(limit)
        )
        with self._store.reading() as conn:
            return [_delivery(r._mapping) for r in conn.execute(query)]

    def delivery_counts(self) -> list[tuple[str, str, str, int]]:
        c = deliveries.c
        query = sa.select(c.forge, c.event, c.status, sa.func.count()).group_by(c.forge, c.event, c.status)
        with self._store.reading() as conn:
            return [(forge, event, status, int(n)) for forge, event, status, n in conn.execute(query)]


def _sqlite_insert(rows: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """The multi-row insert as SQLite's text: SQLAlchemy compiles a statement of n rows anew for each n
    (5-10 ms of the intake thread's GIL for a batch of 50, while the event loop waits)."""
    columns = [c.name for c in deliveries.columns]
    row = "(" + ", ".join("?" * len(columns)) + ")"
    sql = (
        f"INSERT INTO deliveries ({', '.join(columns)}) VALUES {', '.join([row] * len(rows))} "
        "ON CONFLICT DO NOTHING RETURNING forge, delivery_id"
    )
    return sql, tuple(r[c] for r in rows for c in columns)


def _delivery_values(delivery: DeliveryRecord) -> dict[str, Any]:
    return {**delivery.__dict__, "status": delivery.status.value, "result": json.dumps(delivery.result)}


def _delivery(row: Any) -> DeliveryRecord:
    data = dict(row)
    data["status"] = DeliveryStatus(data["status"])
    data["result"] = json.loads(data["result"] or "{}")
    return DeliveryRecord(**data)
