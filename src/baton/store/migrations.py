"""Ordered, append-only schema migrations. Never edit a shipped entry; add a new one.

Each entry is plain DDL that SQLite and PostgreSQL both accept, with ``{blob}`` standing for the
binary column type, ``{real}`` for a double and ``{serial_pk}`` for an auto-numbered key (the
spellings that differ).
"""

from __future__ import annotations

# migration 25's: the columns a forge binding had at 24, and the kind (on_pr) of a row's binding (one
# binding a number then), 0 (an issue's) for a row whose binding is gone
_BINDING_COLUMNS = (
    "forge, repo, number, agent, repo_slug, thread, repo_url, status, pr, head_sha, branch, access, "
    "status_comment, etag, seen_at, note, created_at, updated_at, on_pr, pr_opened_at, closed_at, merged, "
    "waiting_since"
)
_ITS_BINDINGS = (
    "COALESCE((SELECT b.on_pr FROM forge_bindings b WHERE b.forge = {table}.forge AND b.repo = "
    "{table}.repo AND b.number = {table}.number), 0)"
)

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "sessions, runs, leases, blobs, snapshots, audit",
        [
            """CREATE TABLE sessions (
                agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL,
                repo_url TEXT NOT NULL, branch TEXT NOT NULL, base TEXT, worktree TEXT NOT NULL,
                agent_session_id TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                last_outcome TEXT, created_at {real} NOT NULL, last_used_at {real} NOT NULL,
                expires_at {real} NOT NULL,
                PRIMARY KEY (agent, repo, thread))""",
            "CREATE INDEX sessions_expires ON sessions (expires_at)",
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY, agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL,
                attempt INTEGER NOT NULL, mode TEXT NOT NULL, prompt_kind TEXT NOT NULL, prompt TEXT NOT NULL,
                outcome TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real}, heartbeat_at {real},
                exit_code INTEGER, session_id_in TEXT, session_id_out TEXT, result TEXT, error TEXT,
                usage TEXT NOT NULL DEFAULT '{{}}', cost_usd {real}, log_path TEXT NOT NULL,
                host TEXT NOT NULL, runner_pid INTEGER NOT NULL, agent_pid INTEGER)""",
            "CREATE INDEX runs_key ON runs (agent, repo, thread, started_at)",
            "CREATE INDEX runs_outcome ON runs (outcome)",
            """CREATE TABLE leases (
                key TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
                acquired_at {real} NOT NULL, expires_at {real} NOT NULL)""",
            """CREATE TABLE blobs (
                digest TEXT PRIMARY KEY, size INTEGER NOT NULL, data {blob} NOT NULL)""",
            """CREATE TABLE snapshots (
                agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL,
                agent_session_id TEXT NOT NULL, files TEXT NOT NULL, total_bytes INTEGER NOT NULL,
                created_at {real} NOT NULL, PRIMARY KEY (agent, repo, thread))""",
            """CREATE TABLE audit (
                id {serial_pk}, at {real} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                key TEXT NOT NULL, detail TEXT NOT NULL)""",
        ],
    ),
    (
        2,
        "plans: ordered tasks run as turns of one conversation, progress per task",
        [
            """CREATE TABLE plans (
                id TEXT PRIMARY KEY, agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL,
                file TEXT NOT NULL, status TEXT NOT NULL, session_id TEXT, tasks TEXT NOT NULL,
                created_at {real} NOT NULL, updated_at {real} NOT NULL)""",
        ],
    ),
    (
        3,
        "runs.note: why the run started the way it did (hydrated, recovered from a corrupt snapshot, ...)",
        ["ALTER TABLE runs ADD COLUMN note TEXT"],
    ),
    (
        4,
        "the service: submitted runs (jobs), API tokens (hashes), webhook deliveries",
        [
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY, agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL,
                request TEXT NOT NULL, status TEXT NOT NULL, actor TEXT NOT NULL,
                submitted_at {real} NOT NULL, started_at {real}, ended_at {real}, outcome TEXT,
                result TEXT, error TEXT)""",
            "CREATE INDEX jobs_key ON jobs (agent, repo, thread, submitted_at)",
            "CREATE INDEX jobs_status ON jobs (status, submitted_at)",
            """CREATE TABLE tokens (
                name TEXT PRIMARY KEY, scope TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
                created_at {real} NOT NULL, revoked_at {real})""",
            """CREATE TABLE deliveries (
                forge TEXT NOT NULL, delivery_id TEXT NOT NULL, event TEXT NOT NULL,
                received_at {real} NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL,
                PRIMARY KEY (forge, delivery_id))""",
            "CREATE INDEX sessions_status ON sessions (status, last_used_at)",
        ],
    ),
    (
        5,
        "sessions listed most recently used first without a sort (GET /v1/sessions over 10,000 rows)",
        ["CREATE INDEX sessions_recent ON sessions (last_used_at DESC, thread)"],
    ),
    (
        6,
        "runs by start time: the newest across keys, and a day's runs (the dashboard)",
        ["CREATE INDEX runs_started ON runs (started_at)"],
    ),
    (
        7,
        "many machines: fencing tokens on leases, checkpoints in the store (git bundles), cancel "
        "requests on jobs, the Claude Agent SDK's session store",
        [
            "ALTER TABLE leases ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN cancel_requested_at {real}",
            """CREATE TABLE checkpoints (
                agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL, commit_sha TEXT NOT NULL,
                branch TEXT NOT NULL, branch_sha TEXT, digest TEXT NOT NULL, size INTEGER NOT NULL,
                created_at {real} NOT NULL, fence INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (agent, repo, thread))""",
            """CREATE TABLE sdk_entries (
                seq {serial_pk}, project_key TEXT NOT NULL, session_id TEXT NOT NULL,
                subpath TEXT NOT NULL DEFAULT '', uuid TEXT, entry TEXT NOT NULL, mtime {real} NOT NULL)""",
            "CREATE INDEX sdk_entries_session ON sdk_entries (project_key, session_id, subpath, seq)",
            "CREATE UNIQUE INDEX sdk_entries_uuid ON sdk_entries (project_key, session_id, subpath, uuid)",
        ],
    ),
    (
        8,
        "job events in the store, so a run's stream reaches the API from whichever worker runs it",
        [
            """CREATE TABLE job_events (
                job_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, seq))""",
        ],
    ),
    (
        9,
        "beyond one branch and one agent: what a sync brought in (runs), stacked threads, the base a "
        "branch is on, lineage of forks and hand-offs, a sync not yet told to the agent (sessions)",
        [
            "ALTER TABLE runs ADD COLUMN sync TEXT",
            "ALTER TABLE sessions ADD COLUMN base_thread TEXT",
            "ALTER TABLE sessions ADD COLUMN base_sha TEXT",
            "ALTER TABLE sessions ADD COLUMN origin TEXT",
            "ALTER TABLE sessions ADD COLUMN pending_sync TEXT",
        ],
    ),
    (
        10,
        "what a run's agent was allowed to do (read, edit, full) and whether baton walled it in",
        [
            "ALTER TABLE runs ADD COLUMN access TEXT",
            "ALTER TABLE runs ADD COLUMN confined INTEGER",
        ],
    ),
    (
        11,
        "operating without surprises: an attempt names its run (runs.job_id), jobs ordered by a number "
        "assigned under the store's lock (jobs.seq), workers' heartbeats and disk reports, dashboard "
        "sign-in sessions (server side, revoked at sign-out)",
        [
            "ALTER TABLE runs ADD COLUMN job_id TEXT",
            "CREATE INDEX runs_job ON runs (job_id)",
            "ALTER TABLE jobs ADD COLUMN seq INTEGER",
            "CREATE INDEX jobs_key_seq ON jobs (agent, repo, thread, seq)",
            """CREATE TABLE workers (
                name TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, queue TEXT NOT NULL,
                started_at {real} NOT NULL, seen_at {real} NOT NULL, disk TEXT, disk_at {real},
                free_bytes BIGINT, total_bytes BIGINT)""",
            """CREATE TABLE web_sessions (
                digest TEXT PRIMARY KEY, token_name TEXT NOT NULL, created_at {real} NOT NULL,
                expires_at {real} NOT NULL, revoked_at {real})""",
        ],
    ),
    (
        12,
        "which version of the agent CLI ran each attempt (runs.cli_version), so a conversation that "
        "stops resuming after an upgrade can be traced to the release that changed it",
        ["ALTER TABLE runs ADD COLUMN cli_version TEXT"],
    ),
    (
        13,
        "forges: threads bound to issues and PRs, their events (deduplicated), turns and budgets",
        [
            """CREATE TABLE forge_bindings (
                forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL, agent TEXT NOT NULL,
                repo_slug TEXT NOT NULL, thread TEXT NOT NULL, repo_url TEXT NOT NULL, status TEXT NOT NULL,
                pr INTEGER, head_sha TEXT, branch TEXT, access TEXT NOT NULL, status_comment BIGINT,
                etag TEXT, seen_at {real} NOT NULL, note TEXT, created_at {real} NOT NULL,
                updated_at {real} NOT NULL, PRIMARY KEY (forge, repo, number))""",
            "CREATE UNIQUE INDEX forge_bindings_key ON forge_bindings (agent, repo_slug, thread)",
            "CREATE INDEX forge_bindings_pr ON forge_bindings (forge, repo, pr)",
            "CREATE INDEX forge_bindings_status ON forge_bindings (status)",
            """CREATE TABLE forge_events (
                id {serial_pk}, forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL,
                identity TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, event TEXT NOT NULL,
                access TEXT NOT NULL, job_id TEXT, reason TEXT, received_at {real} NOT NULL)""",
            "CREATE UNIQUE INDEX forge_events_identity ON forge_events (forge, repo, identity)",
            "CREATE INDEX forge_events_thread ON forge_events (forge, repo, number, status)",
            "CREATE INDEX forge_events_job ON forge_events (job_id)",
            "CREATE INDEX forge_events_status ON forge_events (status, forge, repo, number)",
            """CREATE TABLE forge_turns (
                job_id TEXT PRIMARY KEY, forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL,
                kinds TEXT NOT NULL, submitted_at {real} NOT NULL, published_at {real}, publish TEXT)""",
            "CREATE INDEX forge_turns_thread ON forge_turns (forge, repo, number, submitted_at)",
            "CREATE INDEX forge_turns_published ON forge_turns (published_at)",
            """CREATE TABLE forge_budgets (
                forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL, signature TEXT NOT NULL,
                spent INTEGER NOT NULL, updated_at {real} NOT NULL,
                PRIMARY KEY (forge, repo, number, signature))""",
            # the trust policy's refusals are counted from the audit log (/metrics, every scrape)
            "CREATE INDEX audit_action ON audit (action)",
        ],
    ),
    (
        14,
        "what each run left running and baton ended (runs.reaped, runs.left_running)",
        ["ALTER TABLE runs ADD COLUMN reaped INTEGER", "ALTER TABLE runs ADD COLUMN left_running TEXT"],
    ),
    (
        15,
        "usage limits: a run's reset (runs.resets_at, limit_kind), a job's wait, a breaker per credential",
        [
            "ALTER TABLE runs ADD COLUMN resets_at {real}",
            "ALTER TABLE runs ADD COLUMN limit_kind TEXT",
            "ALTER TABLE jobs ADD COLUMN not_before {real}",
            """CREATE TABLE quotas (
                credential TEXT PRIMARY KEY, agent TEXT NOT NULL, label TEXT NOT NULL, state TEXT NOT NULL,
                resets_at {real}, scope TEXT NOT NULL, detail TEXT NOT NULL, refusals INTEGER NOT NULL,
                tripped_at {real}, run_id TEXT, updated_at {real} NOT NULL)""",
        ],
    ),
    (
        16,
        "a thread can ask a person: the question of a run that ended needs_input (runs.question)",
        ["ALTER TABLE runs ADD COLUMN question TEXT"],
    ),
    (
        17,
        "the forge loop's outcomes (forge/data/outcomes.py): when a thread's PR was opened, merged or "
        "closed, "
        "since when it waits on a person; what each turn pushed and whether it answered",
        [
            "ALTER TABLE forge_bindings ADD COLUMN pr_opened_at {real}",
            "ALTER TABLE forge_bindings ADD COLUMN closed_at {real}",
            "ALTER TABLE forge_bindings ADD COLUMN merged INTEGER",
            "ALTER TABLE forge_bindings ADD COLUMN waiting_since {real}",
            "ALTER TABLE forge_turns ADD COLUMN pushed TEXT",
            "ALTER TABLE forge_turns ADD COLUMN answered INTEGER",
            "CREATE INDEX forge_events_kind ON forge_events (kind)",
            # what the rows already say, kept: a thread closed or waiting since its last change (the
            # best known time), merged as the reconcile noted it, its PR opened when audited (earlier
            # turns' pushes are in their publish JSON only: not read back, so they count from now on)
            "UPDATE forge_bindings SET closed_at = updated_at WHERE status = 'closed'",
            "UPDATE forge_bindings SET merged = 1 WHERE status = 'closed' AND note = 'merged'",
            "UPDATE forge_bindings SET waiting_since = updated_at WHERE status = 'needs_human'",
            """UPDATE forge_bindings SET pr_opened_at = COALESCE((SELECT min(audit.at) FROM audit
                WHERE audit.action = 'forge.pr_opened' AND audit.key = forge_bindings.forge || ':'
                || forge_bindings.repo || '#' || CAST(forge_bindings.number AS TEXT)), updated_at)
                WHERE pr IS NOT NULL AND pr <> number""",
        ],
    ),
    (
        18,
        "spending caps: caps stored for a subject (an API token's), and every raise of a cap",
        [
            """CREATE TABLE cap_limits (
                scope TEXT NOT NULL, subject TEXT NOT NULL, measure TEXT NOT NULL, amount {real} NOT NULL,
                set_at {real} NOT NULL, set_by TEXT NOT NULL, PRIMARY KEY (scope, subject, measure))""",
            """CREATE TABLE cap_raises (
                id {serial_pk}, scope TEXT NOT NULL, subject TEXT NOT NULL, measure TEXT NOT NULL,
                amount {real} NOT NULL, at {real} NOT NULL, by TEXT NOT NULL)""",
            "CREATE INDEX cap_raises_subject ON cap_raises (scope, subject)",
            "CREATE INDEX jobs_actor ON jobs (actor)",  # a token's spend: the runs of the jobs it submitted
        ],
    ),
    (
        19,
        "forge bindings say whether their own number is a pull request (GitLab numbers MRs apart)",
        [
            "ALTER TABLE forge_bindings ADD COLUMN on_pr INTEGER NOT NULL DEFAULT 0",
            "UPDATE forge_bindings SET on_pr = 1 WHERE pr = number",
        ],
    ),
    (
        20,
        "a job remembers its broker queue (jobs.queue): a janitor sends a lost or waiting job back there",
        ["ALTER TABLE jobs ADD COLUMN queue TEXT"],
    ),
    (
        21,
        "quarantine: a conversation's resumes in a row that failed at once, quarantined at the second "
        "(baton.sessions.tables)",
        [
            """CREATE TABLE session_strikes (
                agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL, session_id TEXT NOT NULL,
                strikes INTEGER NOT NULL, run_id TEXT NOT NULL, why TEXT NOT NULL, at {real} NOT NULL,
                quarantined_at {real}, PRIMARY KEY (agent, repo, thread, session_id))""",
            "CREATE INDEX session_strikes_quarantined ON session_strikes (quarantined_at)",
        ],
    ),
    (
        22,
        "what a key's conversation knows of its agent's instruction files (CLAUDE.md, AGENTS.md, ...): "
        "a resumed turn is told when they changed under it (instructions)",
        [
            """CREATE TABLE instructions (
                agent TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL, session_id TEXT NOT NULL,
                recorded_at {real} NOT NULL, files TEXT NOT NULL, PRIMARY KEY (agent, repo, thread))""",
        ],
    ),
    (
        23,
        "a conversation's lineage: why a run began a new native conversation (runs.lineage: rollover when "
        "the context window filled, too_long when the model refused it, lost, unreadable), or compacted it",
        ["ALTER TABLE runs ADD COLUMN lineage TEXT"],
    ),
    (
        24,
        "a job counts the times it was run again after its process died mid-turn (jobs.reruns): bounded by "
        "the setting job_reruns (baton.fleet.orphans)",
        ["ALTER TABLE jobs ADD COLUMN reruns INTEGER NOT NULL DEFAULT 0"],
    ),
    (
        25,
        "GitLab's issue #N and merge request !N are two threads: the forge room's tables key a thread by "
        "its kind too (on_pr, beside the number: bindings, events, turns, budgets; existing rows take their "
        "binding's), and a binding keeps how its conversation writes its number (sign: # or GitLab's !)",
        [
            # a primary key changes only by a rebuild on SQLite: a new table, its rows, the old one dropped
            """CREATE TABLE forge_bindings_25 (
                forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL, agent TEXT NOT NULL,
                repo_slug TEXT NOT NULL, thread TEXT NOT NULL, repo_url TEXT NOT NULL, status TEXT NOT NULL,
                pr INTEGER, head_sha TEXT, branch TEXT, access TEXT NOT NULL, status_comment BIGINT,
                etag TEXT, seen_at {real} NOT NULL, note TEXT, created_at {real} NOT NULL,
                updated_at {real} NOT NULL, on_pr INTEGER NOT NULL DEFAULT 0, pr_opened_at {real},
                closed_at {real}, merged INTEGER, waiting_since {real}, sign TEXT NOT NULL DEFAULT '#',
                PRIMARY KEY (forge, repo, number, on_pr))""",
            f"INSERT INTO forge_bindings_25 ({_BINDING_COLUMNS}) "
            f"SELECT {_BINDING_COLUMNS} FROM forge_bindings",
            "DROP TABLE forge_bindings",
            "ALTER TABLE forge_bindings_25 RENAME TO forge_bindings",
            "CREATE UNIQUE INDEX forge_bindings_key ON forge_bindings (agent, repo_slug, thread)",
            "CREATE INDEX forge_bindings_pr ON forge_bindings (forge, repo, pr)",
            "CREATE INDEX forge_bindings_status ON forge_bindings (status)",
            "ALTER TABLE forge_events ADD COLUMN on_pr INTEGER NOT NULL DEFAULT 0",
            f"UPDATE forge_events SET on_pr = {_ITS_BINDINGS.format(table='forge_events')}",
            "DROP INDEX forge_events_thread",
            "CREATE INDEX forge_events_thread ON forge_events (forge, repo, number, on_pr, status)",
            "DROP INDEX forge_events_status",
            "CREATE INDEX forge_events_status ON forge_events (status, forge, repo, number, on_pr)",
            "ALTER TABLE forge_turns ADD COLUMN on_pr INTEGER NOT NULL DEFAULT 0",
            f"UPDATE forge_turns SET on_pr = {_ITS_BINDINGS.format(table='forge_turns')}",
            "DROP INDEX forge_turns_thread",
            "CREATE INDEX forge_turns_thread ON forge_turns (forge, repo, number, on_pr, submitted_at)",
            """CREATE TABLE forge_budgets_25 (
                forge TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL,
                on_pr INTEGER NOT NULL DEFAULT 0, signature TEXT NOT NULL, spent INTEGER NOT NULL,
                updated_at {real} NOT NULL, PRIMARY KEY (forge, repo, number, on_pr, signature))""",
            "INSERT INTO forge_budgets_25 (forge, repo, number, on_pr, signature, spent, updated_at) "
            f"SELECT forge, repo, number, {_ITS_BINDINGS.format(table='forge_budgets')}, signature, spent, "
            "updated_at FROM forge_budgets",
            "DROP TABLE forge_budgets",
            "ALTER TABLE forge_budgets_25 RENAME TO forge_budgets",
        ],
    ),
]

DIALECT_TYPES = {
    "sqlite": {"blob": "BLOB", "real": "REAL", "serial_pk": "INTEGER PRIMARY KEY"},
    "postgresql": {"blob": "BYTEA", "real": "DOUBLE PRECISION", "serial_pk": "BIGSERIAL PRIMARY KEY"},
}
