"""The schema, stated once: typed SQLAlchemy ``Table`` objects that every query of the SQL store is
built from. This module states the tables of the rooms below the plans (sessions, runs, jobs, blobs,
...); a room above owns its data and states its own tables on the same :data:`metadata`, in its
``tables.py`` (:mod:`baton.plans.tables`, ...). The DDL that creates them all is the one ordered list in
:mod:`baton.store.migrations` (append-only, shipped as plain SQL); ``tests/store/test_schema.py`` migrates an
empty database on SQLite and on PostgreSQL and checks that what the migrations built is exactly these
tables (columns, types, nullability, keys, indexes), so the two can never drift apart.

Times are seconds since the epoch as doubles; JSON documents are text.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
Text, Int, Real, Blob = sa.Text, sa.Integer, sa.Double, sa.LargeBinary


def key_columns() -> list[sa.Column[str]]:
    """The three columns of a key: agent, repo slug, thread (new ones each call: a column belongs to
    one table)."""
    return [sa.Column(n, Text, nullable=False) for n in ("agent", "repo", "thread")]


sessions = sa.Table(
    "sessions",
    metadata,
    *key_columns(),
    sa.Column("repo_url", Text, nullable=False),
    sa.Column("branch", Text, nullable=False),
    sa.Column("base", Text),
    sa.Column("worktree", Text, nullable=False),
    sa.Column("agent_session_id", Text),
    sa.Column("status", Text, nullable=False),
    sa.Column("attempts", Int, nullable=False, server_default="0"),
    sa.Column("last_outcome", Text),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("last_used_at", Real, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    sa.Column("base_thread", Text),
    sa.Column("base_sha", Text),
    sa.Column("origin", Text),
    sa.Column("pending_sync", Text),
    sa.PrimaryKeyConstraint("agent", "repo", "thread"),
    sa.Index("sessions_expires", "expires_at"),
    sa.Index("sessions_status", "status", "last_used_at"),
    sa.Index("sessions_recent", sa.text("last_used_at DESC"), "thread"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", Text, primary_key=True),
    *key_columns(),
    sa.Column("attempt", Int, nullable=False),
    sa.Column("mode", Text, nullable=False),
    sa.Column("prompt_kind", Text, nullable=False),
    sa.Column("prompt", Text, nullable=False),
    sa.Column("outcome", Text, nullable=False),
    sa.Column("started_at", Real, nullable=False),
    sa.Column("ended_at", Real),
    sa.Column("heartbeat_at", Real),
    sa.Column("exit_code", Int),
    sa.Column("session_id_in", Text),
    sa.Column("session_id_out", Text),
    sa.Column("result", Text),
    sa.Column("error", Text),
    sa.Column("usage", Text, nullable=False, server_default="{}"),
    sa.Column("cost_usd", Real),
    sa.Column("log_path", Text, nullable=False),
    sa.Column("host", Text, nullable=False),
    sa.Column("runner_pid", Int, nullable=False),
    sa.Column("agent_pid", Int),
    sa.Column("note", Text),
    sa.Column("sync", Text),
    sa.Column("access", Text),
    sa.Column("confined", Int),
    sa.Column("job_id", Text),  # the run (a job's id, or the first attempt's) this attempt belongs to
    sa.Column("cli_version", Text),  # the agent CLI's version that ran the attempt
    sa.Column("reaped", Int),  # processes that outlived the agent's own, ended with the run
    sa.Column("left_running", Text),  # their first few commands
    sa.Column("resets_at", Real),  # rate_limited: when the agent's quota resets
    sa.Column("limit_kind", Text),  # rate_limited: which quota
    sa.Column("question", Text),  # needs_input: what the agent asked (JSON)
    sa.Column("lineage", Text),  # why it began a new conversation (rollover, too_long, lost...) or compacted
    sa.Index("runs_key", "agent", "repo", "thread", "started_at"),
    sa.Index("runs_outcome", "outcome"),
    sa.Index("runs_started", "started_at"),
    sa.Index("runs_job", "job_id"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("key", Text, primary_key=True),
    sa.Column("holder", Text, nullable=False),
    sa.Column("host", Text, nullable=False),
    sa.Column("pid", Int, nullable=False),
    sa.Column("acquired_at", Real, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    # the fencing token of the latest grant: only grows (a released lease keeps its row and token)
    sa.Column("fence", Int, nullable=False, server_default="0"),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", Text, primary_key=True),
    sa.Column("size", Int, nullable=False),
    sa.Column("data", Blob, nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    *key_columns(),
    sa.Column("agent_session_id", Text, nullable=False),
    sa.Column("files", Text, nullable=False),
    sa.Column("total_bytes", Int, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.PrimaryKeyConstraint("agent", "repo", "thread"),
)

# what a key's conversation knows of its agent's instruction files (baton.runner.instructions): one row
# per key, apart from sessions so that listing sessions never reads the files' kept texts (up to 256 KiB)
instructions = sa.Table(
    "instructions",
    metadata,
    *key_columns(),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("recorded_at", Real, nullable=False),
    sa.Column("files", Text, nullable=False),
    sa.PrimaryKeyConstraint("agent", "repo", "thread"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    sa.Column("at", Real, nullable=False),
    sa.Column("actor", Text, nullable=False),
    sa.Column("action", Text, nullable=False),
    sa.Column("key", Text, nullable=False),
    sa.Column("detail", Text, nullable=False),
    sa.Index("audit_action", "action"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", Text, primary_key=True),
    *key_columns(),
    sa.Column("request", Text, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("actor", Text, nullable=False),
    sa.Column("submitted_at", Real, nullable=False),
    sa.Column("started_at", Real),
    sa.Column("ended_at", Real),
    sa.Column("outcome", Text),
    sa.Column("result", Text),
    sa.Column("error", Text),
    sa.Column("cancel_requested_at", Real),  # set by a cancel; the worker running it polls for it
    sa.Column("seq", Int),  # the order of a key's jobs, assigned under the store's write lock
    sa.Column("not_before", Real),  # waiting for a usage quota's reset: not started before this
    sa.Column("queue", Text),  # the broker queue it was submitted to (BATON_QUEUE; None: the store's own)
    sa.Column("reruns", Int, nullable=False, server_default="0"),  # run again after its process died (24)
    sa.Index("jobs_key", "agent", "repo", "thread", "submitted_at"),
    sa.Index("jobs_status", "status", "submitted_at"),
    sa.Index("jobs_key_seq", "agent", "repo", "thread", "seq"),
    sa.Index("jobs_actor", "actor"),  # a token's spend (baton.caps.spend)
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", Text, nullable=False),
    sa.Column("seq", Int, nullable=False),
    sa.Column("data", Text, nullable=False),  # the stream's JSON line, as the event file holds it
    sa.PrimaryKeyConstraint("job_id", "seq"),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    *key_columns(),
    sa.Column("commit_sha", Text, nullable=False),  # the checkpoint commit (uncommitted work on the branch)
    sa.Column("branch", Text, nullable=False),
    sa.Column("branch_sha", Text),  # the branch's tip the checkpoint was made on
    sa.Column("digest", Text, nullable=False),  # the blob holding a git bundle of the commit
    sa.Column("size", Int, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("fence", Int, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("agent", "repo", "thread"),
)

sdk_entries = sa.Table(
    "sdk_entries",
    metadata,
    sa.Column("seq", Int, primary_key=True, autoincrement=True),  # append order
    sa.Column("project_key", Text, nullable=False),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("subpath", Text, nullable=False, server_default=""),
    sa.Column("uuid", Text),  # the entry's idempotency key, when it has one
    sa.Column("entry", Text, nullable=False),
    sa.Column("mtime", Real, nullable=False),
    sa.Index("sdk_entries_session", "project_key", "session_id", "subpath", "seq"),
    sa.Index("sdk_entries_uuid", "project_key", "session_id", "subpath", "uuid", unique=True),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", Text, primary_key=True),  # the worker's own name (Celery's hostname)
    sa.Column("host", Text, nullable=False),
    sa.Column("pid", Int, nullable=False),
    sa.Column("queue", Text, nullable=False),  # the queue it consumes (named after the store)
    sa.Column("started_at", Real, nullable=False),
    sa.Column("seen_at", Real, nullable=False),  # its latest heartbeat
    sa.Column("disk", Text),  # JSON: its volume's usage by kind, agent and repo, from its latest sweep
    sa.Column("disk_at", Real),
    sa.Column("free_bytes", sa.BigInteger),
    sa.Column("total_bytes", sa.BigInteger),
)

quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("credential", Text, primary_key=True),  # a hash of the credential, never the secret
    sa.Column("agent", Text, nullable=False),
    sa.Column("label", Text, nullable=False),
    sa.Column("state", Text, nullable=False),
    sa.Column("resets_at", Real),
    sa.Column("scope", Text, nullable=False),
    sa.Column("detail", Text, nullable=False),
    sa.Column("refusals", Int, nullable=False),
    sa.Column("tripped_at", Real),
    sa.Column("run_id", Text),
    sa.Column("updated_at", Real, nullable=False),
)
