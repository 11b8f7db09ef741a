"""The forge room's :class:`~baton.forge.data.tables.ForgeStore` in the SQL store's transactions
(:func:`baton.forge.data.tables.forge_store`): threads bound to issues and pull requests (``forge_bindings``),
the events seen on them (``forge_events``), the turns submitted for them (``forge_turns``) and what their
budgets have spent (``forge_budgets``), each keyed by its number and its kind (``on_pr``: GitLab's issue
#3 and merge request !3 are two threads; a read given no kind takes either). Several machines receive
the same webhooks and run the same reconcile, so every decision that must be taken once (an event acted
on, an event joining a turn, a turn published, a budget's spend) is taken by the database, in one
statement (each method says which). Each method is one transaction; rows and records are converted by
the functions at the end (JSON text for ``event``, ``kinds`` and ``publish``; enums as their values).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton import retry
from baton.errors import BadInput, StoreError
from baton.forge.data.outcomes import answered, pushed_head
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.schema import forge_bindings, forge_budgets, forge_events, forge_turns
from baton.models import Access
from baton.store.base import Transactions
from baton.store.schema import audit, jobs
from baton.store.tables import insert_for

CONVERSATION = ("forge", "repo", "number", "on_pr")
OUTCOME_COLUMNS = frozenset({"pr_opened_at", "closed_at", "merged", "waiting_since"})  # not on Binding
CLAIMABLE = (EventStatus.PENDING.value, EventStatus.HELD.value)
Seen = tuple[int, str | None] | tuple[int, str | None, bool]  # number, ETag (and kind: GitLab's)
After = tuple[str, str, int] | tuple[str, str, int, bool]  # forge, repo, number (and kind)


class SQLForge:
    """:class:`~baton.forge.data.tables.ForgeStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    # -- bindings -----------------------------------------------------------------------------------

    def bind(self, binding: Binding, pr: bool | None = None) -> tuple[Binding, bool]:
        """Store a new binding: ``(binding, True)``; when the conversation is bound already (by its
        number, or as the PR of an issue's binding) the stored one and False, unchanged. A key bound to
        another conversation is :class:`BadInput`."""
        at = binding.updated_at or binding.created_at
        values = {
            **binding_values(binding),
            "waiting_since": at if binding.status == BindingStatus.NEEDS_HUMAN else None,
            "closed_at": at if binding.status == BindingStatus.CLOSED else None,
        }

        def one() -> tuple[Binding, bool] | None:
            """One try in its own transaction; None: a row blocked the insert and was unbound before
            it could be read (tried again)."""
            with self._store.transaction() as conn:
                stored = _binding_row(conn, binding.forge, binding.repo, binding.number, pr)
                if stored is not None:
                    return binding_of(stored), False
                # DO NOTHING on either unique key (the conversation's, the thread's): a concurrent
                # bind of the same conversation or key is waited for, then read below
                insert = insert_for(conn, forge_bindings).values(values).on_conflict_do_nothing()
                if conn.execute(insert.returning(forge_bindings.c.number)).first() is not None:
                    return dataclasses.replace(binding), True
                stored = _binding_row(conn, binding.forge, binding.repo, binding.number, pr)
                if stored is not None:
                    return binding_of(stored), False
                owner = conn.execute(sa.select(forge_bindings).where(_key_where(binding))).first()
                if owner is not None:
                    raise BadInput(_key_taken(binding, binding_of(owner._mapping)))
                return None

        bound = retry.Retrying(
            retry=retry.retry_if_result(lambda result: result is None),
            wait=retry.wait_none(),  # at once: the row that blocked it is gone
            stop=retry.stop_after_attempt(3),
            retry_error_callback=lambda _state: None,
        )(one)
        if bound is not None:
            return bound
        raise StoreError(f"could not bind {binding.conversation}: its rows kept changing; retry")

    def get_binding(self, forge: str, repo: str, number: int, pr: bool | None = None) -> Binding | None:
        """The binding of ``number``, or the binding whose PR ``number`` is (an issue's thread); ``pr``
        says which ``number`` is where a forge numbers them apart (:func:`_binding_row`)."""
        with self._store.transaction() as conn:
            row = _binding_row(conn, forge, repo, number, pr)
        return binding_of(row) if row is not None else None

    def binding_for_key(self, agent: str, repo_slug: str, thread: str) -> Binding | None:
        where = sa.and_(
            forge_bindings.c.agent == agent,
            forge_bindings.c.repo_slug == repo_slug,
            forge_bindings.c.thread == thread,
        )
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(forge_bindings).where(where)).first()
        return binding_of(row._mapping) if row is not None else None

    def save_binding(self, binding: Binding) -> bool:
        """Write every field of a stored binding (the caller sets ``updated_at``); False when it is
        not bound (any more). Moving it to a key bound to another conversation is :class:`BadInput`."""
        values = binding_values(binding)
        with self._store.transaction() as conn:
            owner = conn.execute(
                sa.select(forge_bindings).where(_key_where(binding), sa.not_(_conversation_where(binding)))
            ).first()
            if owner is not None:
                raise BadInput(_key_taken(binding, binding_of(owner._mapping)))
            update = sa.update(forge_bindings).where(_conversation_where(binding))
            done = conn.execute(update.values({**values, **_transitions(binding)}))
        return bool(done.rowcount)

    def mark_pr_opened(
        self, forge: str, repo: str, number: int, at: float, *, pr: bool | None = None
    ) -> None:
        """baton opened the thread's PR at ``at`` (the first time only: a later call changes nothing)."""
        c = forge_bindings.c
        with self._store.transaction() as conn:
            conn.execute(
                sa.update(forge_bindings)
                .where(_conversation(forge_bindings, forge, repo, number, pr), c.pr_opened_at.is_(None))
                .values(pr_opened_at=at)
            )

    def mark_merged(self, forge: str, repo: str, number: int, pr: bool | None = None) -> None:
        """The thread's PR was merged (the binding of ``number``, or the one whose PR it is; ``pr`` as
        :meth:`get_binding`'s): set once, never undone, whichever of the issue's and the PR's close is
        seen first."""
        with self._store.transaction() as conn:
            row = _binding_row(conn, forge, repo, number, pr)
            if row is not None:
                where = _conversation(forge_bindings, row["forge"], row["repo"], row["number"], row["on_pr"])
                conn.execute(sa.update(forge_bindings).where(where).values(merged=1))

    def mark_seen(self, forge: str, repo: str, seen: Sequence[Seen], at: float) -> None:
        """The reconcile looked at these bindings (number, its checks' ETag, and its kind where the
        forge numbers issues and PRs apart) up to ``at``: one transaction for a whole repository's,
        whatever else changed on them meanwhile is kept."""
        c = forge_bindings.c
        statement = (
            sa.update(forge_bindings)
            .where(c.forge == forge, c.repo == repo, c.number == sa.bindparam("n"))
            .values(seen_at=at, etag=sa.bindparam("e"))
        )
        kinds = [{"n": one[0], "e": one[1], "k": int(one[2])} for one in seen if len(one) > 2]
        either = [{"n": one[0], "e": one[1]} for one in seen if len(one) == 2]
        if seen:
            with self._store.transaction() as conn:
                if kinds:
                    conn.execute(statement.where(c.on_pr == sa.bindparam("k")), kinds)
                if either:
                    conn.execute(statement, either)

    def list_bindings(
        self,
        *,
        status: BindingStatus | None = None,
        forge: str | None = None,
        limit: int = 1000,
        after: After | None = None,
    ) -> list[Binding]:
        """By (forge, repo, number, kind); ``after`` (the last one's, its kind too; without it, past
        every kind of that number) pages on without an offset."""
        c = forge_bindings.c
        query = sa.select(forge_bindings).order_by(c.forge, c.repo, c.number, c.on_pr).limit(limit)
        if status is not None:
            query = query.where(c.status == status.value)
        if forge is not None:
            query = query.where(c.forge == forge)
        if after is not None:
            f, r, n = after[:3]
            kind = int(after[3]) if len(after) > 3 else 1
            query = query.where(
                sa.or_(
                    c.forge > f,
                    sa.and_(c.forge == f, c.repo > r),
                    sa.and_(c.forge == f, c.repo == r, c.number > n),
                    sa.and_(c.forge == f, c.repo == r, c.number == n, c.on_pr > kind),
                )
            )
        with self._store.transaction() as conn:
            return [binding_of(r._mapping) for r in conn.execute(query)]

    def unbind(self, forge: str, repo: str, number: int, pr: bool | None = None) -> bool:
        with self._store.transaction() as conn:
            done = conn.execute(
                sa.delete(forge_bindings).where(_conversation(forge_bindings, forge, repo, number, pr))
            )
        return bool(done.rowcount)

    # -- events -------------------------------------------------------------------------------------

    def add_forge_event(self, record: EventRecord) -> EventRecord | None:
        """Store a new event, returned with its ``id``; None when its (forge, repo, identity) is stored
        already (a duplicate: a redelivery, a second webhook, the reconcile finding it again). The
        event is acted on once: ``ON CONFLICT DO NOTHING ... RETURNING``, so of any number of concurrent
        inserts exactly one gets a row back."""
        with self._store.transaction() as conn:
            insert = insert_for(conn, forge_events).values(event_values(record))
            insert = insert.on_conflict_do_nothing(index_elements=["forge", "repo", "identity"])
            new_id = conn.execute(insert.returning(forge_events.c.id)).scalar()
        return None if new_id is None else dataclasses.replace(record, id=int(new_id))

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
        """The conversation's events in arrival order (stored under ``number`` and kind as given)."""
        query = sa.select(forge_events).where(_conversation(forge_events, forge, repo, number, pr))
        if status is not None:
            query = query.where(forge_events.c.status == status.value)
        with self._store.transaction() as conn:
            return [
                event_of(r._mapping) for r in conn.execute(query.order_by(forge_events.c.id).limit(limit))
            ]

    def events_of_job(self, job_id: str) -> list[EventRecord]:
        query = sa.select(forge_events).where(forge_events.c.job_id == job_id).order_by(forge_events.c.id)
        with self._store.transaction() as conn:
            return [event_of(r._mapping) for r in conn.execute(query)]

    def claim_forge_events(self, ids: Sequence[int], job_id: str) -> list[int]:
        """Move the events of ``ids`` still pending or held to dispatched, for ``job_id``; the ids it
        moved (two claimers never both get one: a conditional ``UPDATE ... RETURNING``, and PostgreSQL
        re-checks the condition on a row another claimer has just changed)."""
        if not ids:
            return []
        claim = (
            sa.update(forge_events)
            .where(forge_events.c.id.in_(list(ids)), forge_events.c.status.in_(CLAIMABLE))
            .values(status=EventStatus.DISPATCHED.value, job_id=job_id)
            .returning(forge_events.c.id)
        )
        with self._store.transaction() as conn:
            _lock_in_order(conn, ids)
            return sorted(int(i) for i in conn.execute(claim).scalars())

    def set_forge_events(self, ids: Sequence[int], status: EventStatus, reason: str | None = None) -> int:
        """Set the status (and the reason, None clearing it) of the events of ``ids``; how many."""
        if not ids:
            return 0
        with self._store.transaction() as conn:
            _lock_in_order(conn, ids)
            done = conn.execute(
                sa.update(forge_events)
                .where(forge_events.c.id.in_(list(ids)))
                .values(status=status.value, reason=reason)
            )
        return int(done.rowcount or 0)

    def pending_forge_threads(self, limit: int = 1000) -> list[tuple[str, str, int, bool]]:
        """The conversations (forge, repo, number, kind) with events waiting for a turn (the heal's
        list; the status index)."""
        e = forge_events.c
        query = (
            sa.select(e.forge, e.repo, e.number, e.on_pr)
            .where(e.status == EventStatus.PENDING.value)
            .distinct()
            .order_by(e.forge, e.repo, e.number, e.on_pr)
            .limit(limit)
        )
        with self._store.transaction() as conn:
            return [(r.forge, r.repo, r.number, bool(r.on_pr)) for r in conn.execute(query)]

    def recent_forge_events(self, limit: int = 100) -> list[EventRecord]:
        """Newest first, across conversations (the dashboard, the API)."""
        query = sa.select(forge_events).order_by(forge_events.c.id.desc()).limit(limit)
        with self._store.transaction() as conn:
            return [event_of(r._mapping) for r in conn.execute(query)]

    # -- turns --------------------------------------------------------------------------------------

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
        """Record a submitted turn; False when ``job_id`` is recorded already (kept as it is)."""
        values = {
            "job_id": job_id,
            "forge": forge,
            "repo": repo,
            "number": number,
            "on_pr": int(pr),
            "kinds": json.dumps([str(k) for k in kinds]),
            "submitted_at": submitted_at,
        }
        with self._store.transaction() as conn:
            insert = insert_for(conn, forge_turns).values(values).on_conflict_do_nothing()
            return conn.execute(insert.returning(forge_turns.c.job_id)).first() is not None

    def forge_turns(
        self, forge: str, repo: str, number: int, since: float = 0, *, pr: bool | None = None
    ) -> list[dict[str, Any]]:
        """The conversation's turns submitted at or after ``since``, oldest first."""
        query = (
            sa.select(forge_turns)
            .where(_conversation(forge_turns, forge, repo, number, pr), forge_turns.c.submitted_at >= since)
            .order_by(forge_turns.c.submitted_at, forge_turns.c.job_id)
        )
        with self._store.transaction() as conn:
            return [turn_of(r._mapping) for r in conn.execute(query)]

    def unpublished_turns(self, limit: int = 100) -> list[dict[str, Any]]:
        """Turns whose outcome is not written back yet, oldest first."""
        query = (
            sa.select(forge_turns)
            .where(forge_turns.c.published_at.is_(None))
            .order_by(forge_turns.c.submitted_at, forge_turns.c.job_id)
            .limit(limit)
        )
        with self._store.transaction() as conn:
            return [turn_of(r._mapping) for r in conn.execute(query)]

    def published(self, job_id: str) -> dict[str, Any] | None:
        query = sa.select(forge_turns.c.publish).where(
            forge_turns.c.job_id == job_id, forge_turns.c.published_at.is_not(None)
        )
        with self._store.transaction() as conn:
            row = conn.execute(query).first()
        return None if row is None else json.loads(row[0]) if row[0] else {}

    def mark_published(self, job_id: str, publish: dict[str, Any], at: float) -> bool:
        """Record what was written back for the turn; False when it was published already (or is not
        a turn): the caller that gets True is the one that publishes (``published_at`` is set only
        where it is still NULL)."""
        facts = {"pushed": pushed_head(publish), "answered": int(answered(publish))}
        with self._store.transaction() as conn:
            done = conn.execute(
                sa.update(forge_turns)
                .where(forge_turns.c.job_id == job_id, forge_turns.c.published_at.is_(None))
                .values(published_at=at, publish=json.dumps(publish), **facts)
            )
        return bool(done.rowcount)

    # -- budgets ------------------------------------------------------------------------------------

    def spend_budget(
        self, forge: str, repo: str, number: int, signature: str, at: float, *, pr: bool = False
    ) -> int:
        """Count one more turn against ``signature``; the count now (1 for the first). Every spend
        counts: ``INSERT ... ON CONFLICT DO UPDATE SET spent = spent + 1 RETURNING``."""
        values = {"forge": forge, "repo": repo, "number": number, "on_pr": int(pr), "signature": signature}
        values["spent"] = 1
        with self._store.transaction() as conn:
            insert = insert_for(conn, forge_budgets).values({**values, "updated_at": at})
            upsert = insert.on_conflict_do_update(
                index_elements=[*CONVERSATION, "signature"],
                set_={"spent": forge_budgets.c.spent + 1, "updated_at": insert.excluded.updated_at},
            )
            return int(conn.execute(upsert.returning(forge_budgets.c.spent)).scalar_one())

    def budget_spent(
        self, forge: str, repo: str, number: int, signature: str, *, pr: bool | None = None
    ) -> int:
        query = sa.select(sa.func.sum(forge_budgets.c.spent)).where(
            _conversation(forge_budgets, forge, repo, number, pr), forge_budgets.c.signature == signature
        )
        with self._store.transaction() as conn:
            return int(conn.execute(query).scalar() or 0)

    def reset_budgets(self, forge: str, repo: str, number: int, *, pr: bool | None = None) -> int:
        """Forget what the conversation's budgets spent (a trusted resume); how many were reset."""
        with self._store.transaction() as conn:
            done = conn.execute(
                sa.delete(forge_budgets).where(_conversation(forge_budgets, forge, repo, number, pr))
            )
        return int(done.rowcount or 0)

    # -- metrics ------------------------------------------------------------------------------------

    def forge_counts(self) -> dict[str, list[tuple[Any, ...]]]:
        """``events`` (kind, status, n) and ``bindings`` (status, n), counted by the database in one
        transaction."""
        count = sa.func.count()
        e, b = forge_events.c, forge_bindings.c
        queries = {
            "events": sa.select(e.kind, e.status, count)
            .group_by(e.kind, e.status)
            .order_by(e.kind, e.status),
            "bindings": sa.select(b.status, count).group_by(b.status).order_by(b.status),
        }
        with self._store.transaction() as conn:
            return {name: [tuple(r) for r in conn.execute(query)] for name, query in queries.items()}

    def forge_turn_counts(self) -> dict[str, Any]:
        """``turns``: (kind, outcome, n) — a turn counts once for each kind it was about, and its
        outcome is its job's (``queued`` or ``running`` while it has none, ``unknown`` when the job is
        gone); ``refused``: the triggers the trust policy refused (the audit's ``forge.refused`` rows).
        In one transaction; the turns are grouped by the database by their kinds' list (a handful of
        combinations) and split here."""
        t, j = forge_turns.c, jobs.c
        # a literal, not a parameter: PostgreSQL matches the GROUP BY's expression to the SELECT's
        outcome = sa.func.coalesce(j.outcome, j.status, sa.literal_column("'unknown'"))
        turns = (
            sa.select(t.kinds, outcome, sa.func.count())
            .select_from(forge_turns.outerjoin(jobs, j.id == t.job_id))
            .group_by(t.kinds, outcome)
        )
        refused = sa.select(sa.func.count()).select_from(audit).where(audit.c.action == "forge.refused")
        counts: dict[tuple[str, str], int] = {}
        with self._store.transaction() as conn:
            for kinds, result, n in conn.execute(turns):
                for kind in json.loads(kinds) or ["none"]:
                    counts[kind, result] = counts.get((kind, result), 0) + int(n)
            refused_n = int(conn.execute(refused).scalar_one())
        return {"turns": sorted((k, o, n) for (k, o), n in counts.items()), "refused": refused_n}


def _conversation(
    table: sa.Table, forge: str, repo: str, number: int, pr: bool | int | None = None
) -> sa.ColumnElement[bool]:
    """The rows of the thread (forge, repo, number) of kind ``pr`` (None: of either kind)."""
    where = sa.and_(table.c.forge == forge, table.c.repo == repo, table.c.number == number)
    return where if pr is None else sa.and_(where, table.c.on_pr == int(pr))


def _conversation_where(binding: Binding) -> sa.ColumnElement[bool]:
    return _conversation(forge_bindings, binding.forge, binding.repo, binding.number, binding.on_pr)


def _key_where(binding: Binding) -> sa.ColumnElement[bool]:
    c = forge_bindings.c
    return sa.and_(c.agent == binding.agent, c.repo_slug == binding.repo_slug, c.thread == binding.thread)


def _binding_row(conn: Connection, forge: str, repo: str, number: int, pr: bool | None = None) -> Any:
    """The row bound to ``number`` itself, else the one whose PR it is. ``pr`` says which ``number`` is
    where a forge numbers issues and PRs apart (GitLab): True, a PR (a thread started on it first, else
    the issue's thread whose PR it is); False, an issue; None, either (one sequence; an issue's own
    thread first)."""
    c = forge_bindings.c
    itself = sa.case(
        (sa.and_(c.number == number, c.on_pr == int(bool(pr))), 0), (c.number == number, 1), else_=2
    )
    matches = {
        None: sa.or_(c.number == number, c.pr == number),
        True: sa.or_(sa.and_(c.on_pr == 1, c.number == number), sa.and_(c.on_pr == 0, c.pr == number)),
        False: sa.and_(c.number == number, c.on_pr == 0),
    }[pr]
    query = (
        sa.select(forge_bindings)
        .where(c.forge == forge, c.repo == repo, matches)
        .order_by(itself, c.number)
        .limit(1)
    )
    row = conn.execute(query).first()
    return row._mapping if row is not None else None


def _transitions(binding: Binding) -> dict[str, Any]:
    """The outcome facts a save keeps (:mod:`baton.forge.data.outcomes`), by the stored row's status (the
    right-hand side of an UPDATE reads the row as it was): since when it waits on a person (kept while
    it stays in ``needs_human``, cleared when it leaves) and when it was closed (kept once set)."""
    c = forge_bindings.c
    at = sa.literal(binding.updated_at or time.time(), sa.Float)
    waiting, closed = BindingStatus.NEEDS_HUMAN.value, BindingStatus.CLOSED.value
    return {
        "waiting_since": sa.case((c.status == waiting, sa.func.coalesce(c.waiting_since, at)), else_=at)
        if binding.status == BindingStatus.NEEDS_HUMAN
        else None,
        "closed_at": sa.case((c.status == closed, sa.func.coalesce(c.closed_at, at)), else_=at)
        if binding.status == BindingStatus.CLOSED
        else None,
    }


def _lock_in_order(conn: Connection, ids: Sequence[int]) -> None:
    """PostgreSQL: lock the rows of ``ids`` in id order first, so two writers of overlapping sets
    (a claim, a drop) wait for each other instead of deadlocking on rows locked in another order.
    SQLite's ``BEGIN IMMEDIATE`` serialises the writers already."""
    if conn.dialect.name == "postgresql":
        query = sa.select(forge_events.c.id).where(forge_events.c.id.in_(list(ids)))
        conn.execute(query.order_by(forge_events.c.id).with_for_update())


def _key_taken(binding: Binding, owner: Binding) -> str:
    return (
        f"cannot bind {binding.conversation} to {binding.agent}:{binding.repo_slug}:{binding.thread}: "
        f"that thread is bound to {owner.conversation}"
    )


# -- rows and records -------------------------------------------------------------------------------


def binding_values(binding: Binding) -> dict[str, Any]:
    values = {**binding.__dict__, "status": binding.status.value, "access": binding.access.value}
    return {**values, "on_pr": int(binding.on_pr)}


def binding_of(row: Any) -> Binding:
    data = {k: v for k, v in dict(row).items() if k not in OUTCOME_COLUMNS}
    data["status"] = BindingStatus(data["status"])
    data["access"] = Access(data["access"])
    data["on_pr"] = bool(data.get("on_pr"))
    return Binding(**data)


def event_values(record: EventRecord) -> dict[str, Any]:
    values = {
        **record.__dict__,
        "on_pr": int(record.on_pr),
        "kind": record.kind.value,
        "status": record.status.value,
        "access": record.access.value,
        "event": json.dumps(record.event),
    }
    if values["id"] is None:
        del values["id"]  # numbered by the database
    return values


def event_of(row: Any) -> EventRecord:
    data = dict(row)
    data["kind"] = FeedbackKind(data["kind"])
    data["status"] = EventStatus(data["status"])
    data["access"] = Access(data["access"])
    data["event"] = json.loads(data["event"])
    data["on_pr"] = bool(data.get("on_pr"))
    return EventRecord(**data)


def turn_of(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["kinds"] = json.loads(data["kinds"])
    data["on_pr"] = bool(data.get("on_pr"))
    data["publish"] = json.loads(data["publish"]) if data["publish"] else None
    return data
