"""The forge room's tables, stated once (their roles and what reads and writes them are in
:mod:`baton.forge.data.tables` and :mod:`baton.forge.data.sql`, which both import them): webhook deliveries
(``deliveries``), threads bound to issues and pull requests (``forge_bindings``), the events seen on
them (``forge_events``), the turns submitted for them (``forge_turns``) and what their budgets have
spent (``forge_budgets``).

Stated on the store's one :data:`~baton.store.schema.metadata`; the DDL that creates them is the
central append-only list in :mod:`baton.store.migrations` (``tests/store/test_schema.py`` checks the two
agree). Times are seconds since the epoch as doubles; JSON documents are text.
"""

from __future__ import annotations

import sqlalchemy as sa

from baton.store.schema import Int, Real, Text, metadata

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("forge", Text, nullable=False),
    sa.Column("delivery_id", Text, nullable=False),
    sa.Column("event", Text, nullable=False),
    sa.Column("received_at", Real, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("result", Text, nullable=False),
    sa.PrimaryKeyConstraint("forge", "delivery_id"),
)


forge_bindings = sa.Table(
    "forge_bindings",
    metadata,
    sa.Column("forge", Text, nullable=False),  # the configured forge's name
    sa.Column("repo", Text, nullable=False),  # the forge's full name: acme/api
    sa.Column("number", Int, nullable=False),  # the issue (or the PR a thread started on)
    # 1: ``number`` is a PR's (migration 19); a key with the number since migration 25, so GitLab's
    # issue #3 and merge request !3 are two threads (GitHub's and Gitea's share one sequence)
    sa.Column("on_pr", Int, nullable=False, server_default="0"),
    sa.Column("agent", Text, nullable=False),
    sa.Column("repo_slug", Text, nullable=False),  # baton's key: agent, repo slug, thread
    sa.Column("thread", Text, nullable=False),
    sa.Column("repo_url", Text, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("pr", Int),  # the thread's PR (an issue's binding is found by it too)
    sa.Column("head_sha", Text),
    sa.Column("branch", Text),
    sa.Column("access", Text, nullable=False),
    sa.Column("status_comment", sa.BigInteger),  # a GitHub comment id (beyond 2^31)
    sa.Column("etag", Text),
    sa.Column("seen_at", Real, nullable=False),
    sa.Column("note", Text),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("updated_at", Real, nullable=False),
    # the outcome facts (baton.forge.data.outcomes), kept by the store, not on the Binding record:
    sa.Column("pr_opened_at", Real),  # when baton opened the thread's PR (None: it did not)
    sa.Column("closed_at", Real),  # when it was seen closed (None while open)
    sa.Column("merged", Int),  # 1: its PR was merged (set once, never undone)
    sa.Column("waiting_since", Real),  # when it went to needs_human (None while it does not wait)
    # how its conversation writes its number: ``#``, or ``!`` for a GitLab merge request bound since
    # migration 25 (a binding's name never changes: one bound before keeps its ``#``)
    sa.Column("sign", Text, nullable=False, server_default="#"),
    sa.PrimaryKeyConstraint("forge", "repo", "number", "on_pr"),
    sa.Index("forge_bindings_key", "agent", "repo_slug", "thread", unique=True),
    sa.Index("forge_bindings_pr", "forge", "repo", "pr"),
    sa.Index("forge_bindings_status", "status"),
)

forge_events = sa.Table(
    "forge_events",
    metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),  # arrival order
    sa.Column("forge", Text, nullable=False),
    sa.Column("repo", Text, nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("on_pr", Int, nullable=False, server_default="0"),  # with ``number``: its binding's
    sa.Column("identity", Text, nullable=False),  # the event itself: acted on once, however it arrives
    sa.Column("kind", Text, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("event", Text, nullable=False),  # JSON: ForgeEvent.to_json()
    sa.Column("access", Text, nullable=False),
    sa.Column("job_id", Text),  # the turn that took it
    sa.Column("reason", Text),  # why it was dropped or held
    sa.Column("received_at", Real, nullable=False),
    sa.Index("forge_events_identity", "forge", "repo", "identity", unique=True),
    sa.Index("forge_events_thread", "forge", "repo", "number", "on_pr", "status"),
    sa.Index("forge_events_job", "job_id"),
    sa.Index(
        "forge_events_status", "status", "forge", "repo", "number", "on_pr"
    ),  # the conversations waiting
    sa.Index("forge_events_kind", "kind"),  # the outcomes' CI failures
)

forge_turns = sa.Table(
    "forge_turns",
    metadata,
    sa.Column("job_id", Text, primary_key=True),
    sa.Column("forge", Text, nullable=False),
    sa.Column("repo", Text, nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("on_pr", Int, nullable=False, server_default="0"),  # with ``number``: its binding's
    sa.Column("kinds", Text, nullable=False),  # JSON list of the feedback kinds the turn is about
    sa.Column("submitted_at", Real, nullable=False),
    sa.Column("published_at", Real),  # set once, when baton wrote the turn's outcome back
    sa.Column("publish", Text),  # JSON: what baton wrote back
    sa.Column("pushed", Text),  # the head the turn pushed (None: it pushed nothing)
    sa.Column("answered", Int),  # 1: it pushed, posted an answer or asked a question (set when published)
    sa.Index("forge_turns_thread", "forge", "repo", "number", "on_pr", "submitted_at"),
    sa.Index("forge_turns_published", "published_at"),
)

forge_budgets = sa.Table(
    "forge_budgets",
    metadata,
    sa.Column("forge", Text, nullable=False),
    sa.Column("repo", Text, nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("on_pr", Int, nullable=False, server_default="0"),  # with ``number``: its binding's
    sa.Column("signature", Text, nullable=False),  # what is counted (the caller names it: a failure, a day)
    sa.Column("spent", Int, nullable=False),
    sa.Column("updated_at", Real, nullable=False),
    sa.PrimaryKeyConstraint("forge", "repo", "number", "on_pr", "signature"),
)
