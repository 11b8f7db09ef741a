"""Records and statuses shared by the store, the runner and the surfaces.

Times are UNIX seconds (floats) everywhere inside baton; surfaces format them. A run (one attempt) is
its own record with a heartbeat, as in rq's executions, so a run left ``running`` by a dead runner can
be told apart and marked ``crashed``.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    """How a run starts its conversation."""

    AUTO = "auto"  # let the decision matrix choose
    FRESH = "fresh"  # a new conversation (with a pre-assigned id where the agent allows it)
    RESUME = "resume"  # the key's conversation, by id
    CONTINUE = "continue"  # the agent's own "latest in this directory" (only when asked)
    FORK = "fork"  # a new id carrying a copy of the history
    RECOVER = "recover"  # fresh, because the old conversation was lost; the prompt carries a recap


class Access(StrEnum):
    """What an agent may do in its key's worktree (each adapter maps it onto its CLI's own flags; the
    confinement around the agent's process holds whatever the CLI allows)."""

    READ = "read"  # read the repository and run read-only commands; never write
    EDIT = "edit"  # also create, change and delete files inside the worktree
    FULL = "full"  # any command inside the worktree: builds, tests, git commit, installs


class Confine(StrEnum):
    """Whether baton walls the agent's process tree in (Landlock)."""

    AUTO = "auto"  # where the kernel allows it; says so once otherwise
    REQUIRED = "required"  # refuse to start an agent that cannot be confined
    OFF = "off"  # never (the operator confines baton itself some other way)


class PromptKind(StrEnum):
    """Which template built the prompt sent to the agent."""

    FULL = "full"  # task context + instruction, for a fresh conversation
    DELTA = "delta"  # only the new instruction, for a resumed conversation
    RECAP = "recap"  # a recap of earlier runs + instruction, for a recovered conversation
    INTERRUPTED = "interrupted"  # "you were interrupted, continue" + instruction
    HANDOFF = "handoff"  # a recap of another agent's conversation on the key's work + instruction


class Outcome(StrEnum):
    """How a run ended; ``running`` while it has not."""

    RUNNING = "running"  # the agent process is (or was, if its runner died) running
    SUCCEEDED = "succeeded"  # the agent finished its turn without error
    FAILED = "failed"  # the agent reported an error or exited non-zero
    TIMED_OUT = "timed_out"  # baton killed it at the run's timeout
    CANCELLED = "cancelled"  # stopped on request (signal, API call, lost lease)
    CRASHED = "crashed"  # its runner died mid-run; found and marked by a later runner
    SESSION_LOST = "session_lost"  # the agent could not find the conversation; followed by a recover run
    CONFLICT = "conflict"  # a sync with upstream conflicted: the agent did not run, worktree as it was
    LIMITED = "limited"  # baton stopped it at one of the run's limits (memory, processes, disk)
    RATE_LIMITED = "rate_limited"  # the agent's usage quota is spent: the thread waits for its reset
    NEEDS_INPUT = "needs_input"  # the agent asked a person (``ask_human``): the thread waits for an answer
    CONTEXT_FULL = "context_full"  # the model refused the conversation as longer than its window; rolled over

    @property
    def interrupted(self) -> bool:
        return self in (
            Outcome.TIMED_OUT,
            Outcome.CANCELLED,
            Outcome.CRASHED,
            Outcome.LIMITED,
            Outcome.RATE_LIMITED,
        )

    @property
    def retryable(self) -> bool:
        return self in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CRASHED)


class SyncHow(StrEnum):
    """How a turn brings upstream changes into the key's worktree before the agent starts."""

    OFF = "off"  # not at all: a retry continues exactly where it stopped
    MERGE = "merge"  # merge the remote branch (people's pushes) and the moved base
    REBASE = "rebase"  # replay the key's own commits onto them


class OnPermission(StrEnum):
    """What a permission the agent asks for above the run's access level does (ACP agents ask)."""

    REFUSE = "refuse"  # refused: the agent goes on without it (or ends its turn)
    ASK = "ask"  # refused, and the turn ends ``needs_input`` with the request as a question to a person


class OnConflict(StrEnum):
    """What a sync does when what came in conflicts with the key's work."""

    STOP = "stop"  # outcome ``conflict``: the agent does not run, the worktree stays exactly as it was
    AGENT = "agent"  # leave the conflict markers and tell the agent which files conflict


class OnInstructions(StrEnum):
    """What a resumed turn does when its agent's instruction files (CLAUDE.md, AGENTS.md, ...) changed
    since its conversation last saw them (:mod:`baton.runner.instructions`)."""

    TELL = "tell"  # resume, and the prompt says which files changed and how (a bounded diff)
    FRESH = "fresh"  # start a new conversation, with a recap, which reads the new files itself


class Environment(StrEnum):
    """Where a key's setup and agent run (docs/environment.md)."""

    HOST = "host"  # on baton's host, in its walls
    CONTAINER = "container"  # in the image the repository's devcontainer.json names, through podman


def plain_fields(record: Any) -> dict[str, Any]:
    """``asdict(record)`` for a flat record (no dataclass among its values), without deep-copying
    every value: strings, numbers and enums are shared, a dict or list is copied. ``asdict`` took
    most of ``baton sessions ls --all --json``'s time over 100,000 sessions."""
    return {
        name: copy.deepcopy(value) if isinstance(value, dict | list) else value
        for name, value in ((name, getattr(record, name)) for name in _field_names(type(record)))
    }


_NAMES: dict[type, tuple[str, ...]] = {}  # a record class → its field names, in order


def _field_names(kind: type) -> tuple[str, ...]:
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


class SessionStatus(StrEnum):
    """The state of a key's session record."""

    ACTIVE = "active"  # usable; its last run has ended
    RUNNING = "running"  # a run holds the key right now
    ARCHIVED = "archived"  # never written (a reset archives, then deletes or keeps ACTIVE); kept only
    # because the HTTP schema's SessionStatus enum, /metrics' baton_sessions and baton.SessionStatus list it
    CLOSED = "closed"  # its branch or PR is gone: worktree and local transcript freed after a
    # checkpoint; the store keeps snapshot and checkpoint for the grace period, and a new run resumes
    WAITING = "waiting_for_quota"  # its last turn met a spent usage quota: it resumes after the reset


@dataclass
class SessionRecord:
    """The stored record of a key."""

    agent: str
    repo: str  # slug
    thread: str
    repo_url: str
    branch: str
    worktree: str
    agent_session_id: str | None = None
    base: str | None = None
    status: SessionStatus = SessionStatus.ACTIVE
    attempts: int = 0
    last_outcome: Outcome | None = None
    created_at: float = 0.0
    last_used_at: float = 0.0
    expires_at: float = 0.0
    base_thread: str | None = None  # stacked: the upstream thread whose branch this one's starts from
    base_sha: str | None = None  # the base commit the branch is based on (where a rebase replays from)
    origin: dict[str, Any] | None = None  # lineage: {"kind": fork|handoff, "agent", "thread", "session_id"}
    pending_sync: dict[str, Any] | None = None  # a sync done between turns (a merged upstream), not yet told

    def to_json(self) -> dict[str, Any]:
        data = plain_fields(self)
        data["session_id"] = data.pop("agent_session_id")
        data["status"] = self.status.value
        data["last_outcome"] = self.last_outcome.value if self.last_outcome else None
        for name in ("created_at", "last_used_at", "expires_at"):
            data[name] = iso(data[name])
        return data


@dataclass
class RunRecord:
    """One attempt: one agent process for one key."""

    id: str
    agent: str
    repo: str
    thread: str
    attempt: int
    mode: Mode
    prompt_kind: PromptKind
    prompt: str
    outcome: Outcome = Outcome.RUNNING
    started_at: float = 0.0
    ended_at: float | None = None
    heartbeat_at: float | None = None
    exit_code: int | None = None
    session_id_in: str | None = None
    session_id_out: str | None = None
    result: str | None = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    log_path: str = ""
    host: str = ""
    runner_pid: int = 0
    agent_pid: int | None = None
    note: str | None = None  # why the run started the way it did (hydrated, recovered, ...)
    sync: dict[str, Any] | None = None  # what syncing with upstream brought in before the agent started
    access: Access | None = None  # what the agent was allowed to do (None: a run from before access levels)
    confined: bool | None = None  # whether baton walled the agent in (None: from before confinement)
    job_id: str | None = None  # the run this attempt belongs to (None: a run of one attempt, from before)
    cli_version: str | None = None  # the agent CLI's version that ran it (None: unknown, or from before)
    reaped: int | None = (
        None  # processes that outlived the agent's own, ended with the run (None: from before)
    )
    left_running: str | None = None  # what those were (their first few commands), for the next turn
    resets_at: float | None = None  # rate_limited: when the agent's quota resets (None: not said)
    limit_kind: str | None = None  # rate_limited: which quota (five_hour, seven_day, daily…; "" unknown)
    question: dict[str, Any] | None = None  # needs_input: what the agent asked ({"text", "options"})
    # why this attempt began a new native conversation in place of the key's last one (rollover: the
    # context window filled; too_long: the model refused it; lost; unreadable; asked), or that it had the
    # CLI compact its conversation in place first (compacted, compact_failed); None: neither
    lineage: str | None = None

    @property
    def run_id(self) -> str:
        """The id of the run this attempt belongs to: the id its caller got back (a submitted job's,
        or the first attempt's of a ``baton run``), accepted by every surface."""
        return self.job_id or self.id

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else round(self.ended_at - self.started_at, 3)

    def to_json(self) -> dict[str, Any]:
        data = plain_fields(self)
        data.pop("job_id")
        data["attempt_id"] = data.pop("id")
        data["run_id"] = self.run_id
        data["mode"] = self.mode.value
        data["prompt_kind"] = self.prompt_kind.value
        data["outcome"] = self.outcome.value
        data["duration_s"] = self.duration_s
        for name in ("started_at", "ended_at", "heartbeat_at", "resets_at"):
            data[name] = iso(data[name])
        return data


@dataclass(frozen=True)
class Fence:
    """A write's proof that its writer holds the key's lease: the lease key and the grant's token.
    The store refuses a write whose token is older than one it has seen for the key."""

    key: str
    token: int


@dataclass
class CheckpointRecord:
    """A key's latest checkpoint in the store: the commit with the worktree's uncommitted work, as a
    git bundle in the store's blobs, so any machine can rebuild the worktree."""

    agent: str
    repo: str  # slug
    thread: str
    commit_sha: str
    branch: str
    branch_sha: str | None
    digest: str  # blob of the bundle
    size: int
    created_at: float
    fence: int = 0


@dataclass
class InstructionsRecord:
    """What a key's conversation knows of its agent's instruction files: each file's digest and a
    bounded copy of its text as they were when the conversation started, or when a later turn last saw
    them (:mod:`baton.runner.instructions` makes and reads ``files``)."""

    agent: str
    repo: str  # slug
    thread: str
    session_id: str  # the agent's conversation this is about (another's record is not compared)
    recorded_at: float
    files: dict[str, dict[str, Any]]  # path relative to the worktree → its entry

    def summary(self) -> dict[str, Any]:
        """For people and ``--json``: each file's kind, size and digest, without its text."""
        listed = {
            path: {k: entry.get(k) for k in ("kind", "size", "sha256") if entry.get(k) is not None}
            for path, entry in sorted(self.files.items())
        }
        return {"session_id": self.session_id, "recorded_at": iso(self.recorded_at), "files": listed}


@dataclass
class Snapshot:
    """A copy of a session's transcript files, as content-addressed chunks."""

    agent: str
    repo: str
    thread: str
    agent_session_id: str
    files: dict[str, list[str]]  # path relative to the agent home → digests of its chunks, in order
    total_bytes: int
    created_at: float

    def digests(self) -> set[str]:
        # a plain string is a one-chunk file (the shape of the first snapshot format)
        return {d for v in self.files.values() for d in ([v] if isinstance(v, str) else v)}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


class JobStatus(StrEnum):
    """Where a submitted run (a job of the service's executor) is."""

    QUEUED = "queued"  # stored, waiting for a free slot (and for earlier runs of its key)
    RUNNING = "running"  # an executor took it: its attempts are runs of the key
    DONE = "done"  # ended; ``outcome`` and ``result`` say how


@dataclass
class JobRecord:
    """A run submitted to the service: the request as plain data, and once it ran, ``baton run
    --json``'s object as ``result``. Its id is the ``run_id`` of the API."""

    id: str
    agent: str
    repo: str  # slug
    thread: str
    request: dict[str, Any]  # RunRequest's plain fields (agent, repo, thread, prompt, mode, ...)
    status: JobStatus = JobStatus.QUEUED
    actor: str = ""
    submitted_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested_at: float | None = None  # a cancel was asked for; whoever runs it stops it
    seq: int | None = None  # its place among its key's jobs, numbered by the store at commit (None: older)
    not_before: float | None = None  # queued again to wait for a usage quota's reset: not started before
    queue: str | None = None  # the broker queue its messages go to (None: the store's own queue)
    reruns: int = 0  # times it was run again after its process died mid-turn (baton.fleet.orphans)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.id,
            "status": self.status.value,
            "agent": self.agent,
            "repo": self.repo,
            "thread": self.thread,
            "actor": self.actor,
            "submitted_at": iso(self.submitted_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "outcome": self.outcome,
            "error": self.error,
            "not_before": iso(self.not_before),
            "reruns": self.reruns,
        }
        return {**data, **(self.result or {}), "run_id": self.id, "status": self.status.value}


@dataclass
class WorkerRecord:
    """A fleet worker as the store knows it: its heartbeat and its volume's latest disk report."""

    name: str  # the worker's own name (Celery's hostname, ``baton@host``)
    host: str
    pid: int
    queue: str  # the queue it consumes
    started_at: float
    seen_at: float  # its latest heartbeat
    disk: dict[str, Any] | None = None  # usage by kind, agent and repo, from its latest sweep
    disk_at: float | None = None
    free_bytes: int | None = None  # free space on the volume holding its BATON_HOME
    total_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "started_at": iso(self.started_at),
            "seen_at": iso(self.seen_at),
            "disk_at": iso(self.disk_at),
        }


class QuotaState(StrEnum):
    """A credential's usage-quota breaker."""

    OK = "ok"  # its runs start (its last limit has reset, or it never met one)
    EXHAUSTED = "exhausted"  # its quota is spent: every run of it waits until ``resets_at``


@dataclass
class QuotaRecord:
    """One credential's breaker (``quotas``), shared by every machine of the fleet: while it is
    exhausted, no run of that credential starts into the wall (:mod:`baton.runner.quota`)."""

    credential: str  # a hash of the credential (never the secret itself)
    agent: str  # the agent whose run met the limit
    label: str  # for people: the agent and where the credential comes from (a variable, a file)
    state: QuotaState = QuotaState.OK
    resets_at: float | None = None  # when runs of it may start again
    scope: str = ""  # which quota (five_hour, seven_day, daily…; "" unknown)
    detail: str = ""  # what the agent said, and how baton chose resets_at
    refusals: int = 0  # limits met in a row at or after a reset: a phantom limit backs off
    tripped_at: float | None = None
    run_id: str | None = None  # the run that met it last
    updated_at: float = 0.0

    def held(self, now: float) -> bool:
        """Whether runs of this credential must wait now."""
        return self.state == QuotaState.EXHAUSTED and (self.resets_at or 0.0) > now

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        for name in ("resets_at", "tripped_at", "updated_at"):
            data[name] = iso(data[name])
        return data
