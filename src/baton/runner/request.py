"""What a caller asks :func:`baton.run` for, and what it gets back: the one schema of a run request and of
its result. :class:`RunRequest` is the definition every surface derives from — each field a caller may
set carries an :class:`Option` in its metadata, and :func:`request_fields` lists them — so the options
of ``baton run`` and ``baton submit``, the body of ``POST /v1/runs`` and a job's plain form all follow
from it. :class:`RunJson` is the one definition of the result's shape: :meth:`RunResult.to_json` fills
it (mypy checks every key) and the API's ``RunView`` is derived from it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Annotated, Any, TypedDict, get_args, get_type_hints

from baton.agents import listed
from baton.models import (
    Access,
    Environment,
    Mode,
    OnConflict,
    OnInstructions,
    OnPermission,
    Outcome,
    RunRecord,
    SessionRecord,
    SyncHow,
    iso,
)

EventCallback = Callable[[RunRecord, dict[str, Any]], None]


@dataclass(frozen=True)
class Option:
    """How one field of :class:`RunRequest` is offered to callers."""

    help: str  # the command line's help text
    doc: str | None = None  # the API's description, when it says it differently (else ``help``)
    flags: tuple[str, ...] = ()  # the command line's names (default: --the-name)
    queued: bool = True  # False: only a run started here takes it (baton run), not a queued one
    from_file: str | None = None  # the command line's argument; --NAME-file (this its help) reads it

    @property
    def description(self) -> str:
        return self.doc or self.help


def option(help: str, **how: Any) -> dict[str, Option]:
    """A field's metadata: ``field(metadata=option("..."))`` makes it a request option."""
    return {"option": Option(help, **how)}


@dataclass
class RunRequest:
    """What to run: a key, an instruction and how to run it. The fields with an :class:`Option` are
    what callers may set (on the command line, in ``POST /v1/runs``, in a queued job); the others
    are for Python callers only."""

    agent: str = field(
        metadata=option(
            listed(),  # the agents registered when this is imported (BATON_AGENTS_EXTRA's too)
            doc="the agent, by name: the enum lists every agent registered with the service",
            flags=("--agent", "-a"),
        )
    )
    repo: str = field(
        metadata=option(
            "git URL, local path, or a stored slug",
            doc="a git URL or the path of a local repository on the server",
            flags=("--repo", "-r"),
        )
    )
    thread: str = field(
        metadata=option(
            "unit of work, e.g. issue-42",
            doc="the unit of work in the repo: issue-42, pr-7, ...",
            flags=("--thread", "-t"),
        )
    )
    prompt: str = field(metadata=option("the instruction", from_file="read the instruction from a file"))
    mode: Mode = field(default=Mode.AUTO, metadata=option("auto picks fresh/resume/recover"))
    branch: str | None = field(
        default=None, metadata=option("branch for a new worktree (default baton/AGENT/THREAD)")
    )
    base: str | None = field(
        default=None,
        metadata=option(
            "start a new worktree from this ref (default branch)", doc="start a new worktree from this ref"
        ),
    )
    # task context, added to full and recap prompts only
    context: str | None = field(default=None, metadata=option("task context for the first prompt"))
    # with mode fork: the thread whose conversation to branch from
    fork_from: str | None = field(
        default=None,
        metadata=option(
            "with --mode fork: branch from this thread", doc="with mode fork: the thread to branch from"
        ),
    )
    # bring upstream changes in before the turn (None: the setting)
    sync: SyncHow | None = field(
        default=None,
        metadata=option(
            "bring upstream changes in first (default: setting sync)",
            doc="off, merge or rebase: upstream first",
        ),
    )
    # what a conflicting sync does (None: the setting)
    on_conflict: OnConflict | None = field(
        default=None,
        metadata=option(
            "stop: outcome conflict, worktree untouched (default); agent: markers + a note",
            doc="stop or agent (markers + a note)",
        ),
    )
    # what a resumed turn does when its agent's instruction files changed under it (None: the setting)
    on_instructions_change: OnInstructions | None = field(
        default=None,
        metadata=option(
            "tell: the prompt says which instruction files (CLAUDE.md, AGENTS.md, ...) changed and how;"
            " fresh: a new conversation with a recap; default: setting on_instructions_change (tell)",
            doc="tell (a diff in the prompt) or fresh (a new conversation with a recap): what a resumed "
            "turn does when its agent's instruction files changed (default: the setting)",
        ),
    )
    # the repository's environment setup, over its own (.baton/setup.sh, devcontainer, copilot steps)
    setup: str | None = field(
        default=None,
        metadata=option(
            "a shell command that prepares the key's worktree (in the agent's walls at full, when it is "
            "new or its inputs changed), over the repository's own setup (.baton/setup.sh, devcontainer.json,"
            " copilot-setup-steps)",
            doc="a shell command preparing the worktree before the agent's turn, over the repository's "
            "own setup; run when the key is new or its setup or lock files changed",
        ),
    )
    # where the setup and the agent run (None: the setting environment)
    environment: Environment | None = field(
        default=None,
        metadata=option(
            "host, or container: the image the repository's devcontainer.json names (default: setting "
            "environment, host)",
            doc="host or container (the devcontainer's image): where the setup and the agent run "
            "(default: the setting environment)",
        ),
    )
    # an ACP agent's permission request above the access level: refused, or also asked of a person
    on_permission: OnPermission = field(
        default=OnPermission.REFUSE,
        metadata=option(
            "refuse: a permission above --access is refused (default); ask: also end needs_input, the "
            "request put to a person as a question",
            doc="refuse or ask",
        ),
    )
    # this run answers the question of that run: refused unless the thread still waits on it
    answers: str | None = field(
        default=None,
        metadata=option(
            "the run whose question this answers: refused unless the thread still waits on it (set by "
            "baton answer)",
            doc="the run id whose question this answers: refused (nothing written) unless the thread still "
            "waits on it, so an answer resumes a thread once",
        ),
    )
    # a new key's branch starts from this thread's branch (stacked)
    base_thread: str | None = field(
        default=None,
        metadata=option(
            "a new thread's branch starts from this thread's", doc="stack on this thread's branch"
        ),
    )
    # a new conversation that starts with a recap of this agent's one
    handoff_from: str | None = field(
        default=None,
        metadata=option(
            "start this agent's conversation with a recap of AGENT's on this key",
            doc="recap this agent's conversation",
        ),
    )
    # what the agent may do in its worktree (None: the setting access)
    access: Access | None = field(
        default=None,
        metadata=option(
            "read, edit (files in the worktree) or full (any command there); default: setting access",
            doc="read, edit or full: what the agent may do in its worktree (default: the setting access)",
        ),
    )
    # where the agent may connect through baton's egress proxy (None: the setting egress)
    egress: str | None = field(
        default=None,
        metadata=option(
            "hosts and presets the agent may reach, comma-separated: open, none, registries, pypi.org, "
            "*.example.com, host:8443 (default: setting egress)",
            doc="where the agent may connect through baton's egress proxy: open, none, registries, or "
            "hosts, comma-separated (default: the setting egress)",
        ),
    )
    timeout: float | None = field(
        default=None,
        metadata=option(
            "stop the agent after S seconds (default: setting run_timeout, 3600; the idle timeout,"
            " setting idle_timeout, stops one silent for 900)",
            doc="stop the agent after this many seconds (default: the setting run_timeout, 3600)",
        ),
    )
    # the run's limits over the settings run_memory, run_pids, run_cpu (enforced where a cgroup can be made)
    memory: str | None = field(
        default=None,
        metadata=option(
            "memory the agent's processes may use, such as 4G (default: setting run_memory, 8G; 0: no limit)",
            doc="memory the agent's processes may use, such as 4G (default: the setting run_memory)",
        ),
    )
    pids: int | None = field(
        default=None,
        metadata=option(
            "processes and threads the agent may have at once (default: setting run_pids, 2048; 0: no limit)",
            doc="processes and threads the agent may have at once (default: the setting run_pids)",
        ),
    )
    cpu: float | None = field(
        default=None,
        metadata=option(
            "cores' worth of CPU the agent may use, such as 2 (default: setting run_cpu; 0: unbounded)",
            doc="cores' worth of CPU the agent may use (default: the setting run_cpu, unbounded)",
        ),
    )
    retries: int = field(
        default=0,
        metadata=option(
            "retry failed or timed-out runs N times", doc="retry failed or timed-out attempts this many times"
        ),
    )
    # what a spent usage quota does (None: the setting on_limit)
    on_limit: str | None = field(
        default=None,
        metadata=option(
            "wait (for the quota's reset) or fallback:AGENT (it carries the thread meanwhile and hands it"
            " back); default: setting on_limit",
            doc="wait, or fallback:<agent>: what a spent usage quota does (default: the setting on_limit)",
        ),
    )
    # spending caps of the thread for this run, over the settings max_usd, ... (the smaller holds)
    max_usd: float | None = field(
        default=None,
        metadata=option(
            "park the thread (needs_input) before a turn once it has spent this many USD, as its agent "
            "reports cost (default: setting max_usd; the smaller holds; 0: none)",
            doc="USD the thread may spend before it parks (the setting max_usd holds too; 0: none)",
        ),
    )
    max_tokens: int | None = field(
        default=None,
        metadata=option(
            "park the thread once its runs used this many input+output tokens (default: setting max_tokens)",
            doc="input+output tokens the thread may use before it parks (the setting max_tokens holds too)",
        ),
    )
    max_minutes: float | None = field(
        default=None,
        metadata=option(
            "park the thread once its turns ran this many wall-clock minutes (default: setting max_minutes)",
            doc="wall-clock minutes the thread's turns may run before it parks (the setting holds too)",
        ),
    )
    max_turns: int | None = field(
        default=None,
        metadata=option(
            "park the thread once it has had this many turns (default: setting max_turns)",
            doc="turns the thread may have before it parks (the setting max_turns holds too)",
        ),
    )
    # a queued run does not wait: its executor starts a key's runs one after the other
    wait: float = field(default=0.0, metadata=option("wait up to S seconds for a busy key", queued=False))
    cancel: threading.Event = field(default_factory=threading.Event)
    on_event: EventCallback | None = None  # live subscriber: every agent event as it arrives
    on_start: Callable[[RunRecord], None] | None = None
    # a success's answer as soon as its run is recorded, before the transcript's snapshot and the
    # worktree's checkpoint (which still finish under the lease before run returns): the record and
    # the session (not a fallback's turn, whose result carries the original key's attempts too)
    on_ended: Callable[[RunRecord, SessionRecord], None] | None = None
    job_id: str | None = None  # the submitted run (job) this call runs: its attempts carry its id
    wait_quota: bool = False  # a spent usage quota: wait for its reset and run again (``baton run``)
    # the other agent of an on_limit fallback pair worked on the thread since this key last did: its
    # work is brought in first and the prompt says what it did (:func:`baton.sync.handoff.catch_up`)
    catch_up_from: str | None = None
    carried_for: str | None = None  # an on_limit fallback's run: for whom and why (on its record's note)
    on_wait: Callable[[str], None] | None = None  # told why and until when it waits for a quota
    submitted_by: str | None = None  # a job's actor (an API token's name): that token's caps hold the run


@dataclass(frozen=True)
class RequestField:
    """One option of a run request, as every surface derives it."""

    name: str
    type: Any  # the annotation, resolved: str, Mode, str | None, float | None, ...
    default: Any  # dataclasses.MISSING: the caller must give it
    option: Option

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    @property
    def nullable(self) -> bool:
        return isinstance(self.type, UnionType) and NoneType in get_args(self.type)

    @property
    def kind(self) -> type:
        """The type without ``None``: ``str``, ``int``, ``float`` or an enum."""
        kinds = [t for t in get_args(self.type) if t is not NoneType] if self.nullable else [self.type]
        assert len(kinds) == 1, f"{self.name}: one type (or it and None), not {self.type}"
        kind: type = kinds[0]
        return kind


def request_fields(schema: type[RunRequest] = RunRequest, queued: bool = False) -> tuple[RequestField, ...]:
    """The options of ``schema`` in its order (only a queued run's with ``queued``); worked out once per
    schema (``get_type_hints`` evaluates every annotation anew: ~0.5 ms a call, twice a queued run)."""
    found = _FIELDS.get((schema, queued))
    if found is None:
        hints = get_type_hints(schema)
        found = _FIELDS[schema, queued] = tuple(
            RequestField(f.name, hints[f.name], f.default, f.metadata["option"])
            for f in dataclasses.fields(schema)
            if "option" in f.metadata and (f.metadata["option"].queued or not queued)
        )
    return found


_FIELDS: dict[tuple[type[RunRequest], bool], tuple[RequestField, ...]] = {}


@dataclass(frozen=True)
class Doc:
    """The API's description of a field of :class:`RunJson` (``Annotated`` metadata)."""

    text: str


class AttemptJson(TypedDict):
    """One attempt of a run: its own id, its number, its mode and how it ended."""

    attempt_id: str
    attempt: int
    mode: str
    outcome: str


class RunJson(TypedDict):
    """``baton run --json``'s object: the run (its id, every surface takes it), its last attempt, the
    session after it, every attempt."""

    run_id: Annotated[str, Doc("the run's id: what POST /v1/runs, `baton run` and `baton submit` return")]
    attempt_id: Annotated[str, Doc("the last attempt's own id")]
    agent: str
    repo: str
    thread: str
    session_id: str | None
    mode: str
    prompt_kind: str
    outcome: str
    attempt: int
    result: str | None
    error: str | None
    resets_at: Annotated[str | None, Doc("rate_limited: when the agent's usage quota resets (ISO 8601, UTC)")]
    limit_kind: Annotated[
        str | None, Doc("rate_limited: which quota (five_hour, seven_day, daily…; '' unknown)")
    ]
    question: Annotated[
        dict[str, Any] | None, Doc("needs_input: what the agent asked a person ({text, options})")
    ]
    usage: dict[str, Any]
    cost_usd: float | None
    worktree: str
    branch: str
    duration_s: float | None
    note: str | None
    sync: Annotated[dict[str, Any] | None, Doc("what a sync brought in, how it went")]
    access: Annotated[str | None, Doc("what the agent was allowed to do: read, edit or full")]
    confined: Annotated[bool | None, Doc("whether baton walled the agent into its key (Landlock)")]
    cli_version: Annotated[str | None, Doc("the version of the agent CLI that ran the last attempt")]
    reaped: Annotated[int | None, Doc("processes the last attempt left running, ended when it ended")]
    left_running: Annotated[str | None, Doc("what those were: their first few commands")]
    warnings: list[str]
    attempts: Annotated[list[AttemptJson], Doc("every attempt (retries, a recovery), oldest first")]


def attempt_json(record: RunRecord) -> AttemptJson:
    return {
        "attempt_id": record.id,
        "attempt": record.attempt,
        "mode": record.mode.value,
        "outcome": record.outcome.value,
    }


@dataclass
class RunResult:
    """The outcome of :func:`run`: the last attempt, every attempt, and the session after them."""

    run: RunRecord
    attempts: list[RunRecord]
    session: SessionRecord
    warnings: list[str] = field(default_factory=list)  # things the caller should know (printed by the CLI)

    @property
    def ok(self) -> bool:
        return self.run.outcome == Outcome.SUCCEEDED

    @property
    def run_id(self) -> str:
        """The run's id (a job's, or its first attempt's): what every surface accepts."""
        return (self.attempts[0] if self.attempts else self.run).run_id

    def to_json(self) -> dict[str, Any]:
        run = self.run
        shape: RunJson = {
            "run_id": self.run_id,
            "attempt_id": run.id,
            "agent": run.agent,
            "repo": run.repo,
            "thread": run.thread,
            "session_id": self.session.agent_session_id,
            "mode": run.mode.value,
            "prompt_kind": run.prompt_kind.value,
            "outcome": run.outcome.value,
            "attempt": run.attempt,
            "result": run.result,
            "error": run.error,
            "resets_at": iso(run.resets_at),
            "limit_kind": run.limit_kind,
            "question": run.question,
            "usage": run.usage,
            "cost_usd": run.cost_usd,
            "worktree": self.session.worktree,
            "branch": self.session.branch,
            "duration_s": run.duration_s,
            "note": run.note,
            "sync": run.sync,
            "access": run.access.value if run.access else None,
            "confined": run.confined,
            "cli_version": run.cli_version,
            "reaped": run.reaped,
            "left_running": run.left_running,
            "warnings": self.warnings,
            "attempts": [attempt_json(a) for a in self.attempts],
        }
        return dict(shape)
