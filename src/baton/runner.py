"""The runner: one call of :func:`run` takes a key through DESIGN.md's "What a run does".

validate everything that can be validated (nothing written yet) → hold the key's lease (kept alive
through every step by :func:`baton.leases.held`) → mark runs left ``running`` by dead runners as
``crashed`` (killing their agent if it survived) → prepare the worktree (undone if the run is refused
after it) → per attempt: choose the mode (:mod:`baton.decide`) and run it (:mod:`baton.attempt`) →
retry retryable outcomes with backoff, resuming the same conversation → release the lease.
"""

from __future__ import annotations

import dataclasses
import shutil
import time

from baton import portable
from baton.agents import AGENTS, Agent, get_agent
from baton.attempt import new_run_id, run_attempt, usage_delta
from baton.decide import Context, Decision, decide, fork_source
from baton.errors import BadInput, DiskFull, GitError
from baton.keys import Key, make_key, validate_thread
from baton.leases import HOST, held, key_lease
from baton.models import Fence, Mode, Outcome, RunRecord, SessionRecord, SessionStatus
from baton.process import kill_tagged
from baton.request import RunRequest, RunResult
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.workdirs import Workdirs, branch_for, run_git

__all__ = ["check_request", "mark_crashed", "new_run_id", "run", "usage_delta"]


def run(request: RunRequest, settings: Settings | None = None, store: Store | None = None) -> RunResult:
    """Run one instruction on one key. Raises BadInput (nothing written), Busy or DiskFull; agent
    failures are outcomes in the result, not exceptions."""
    settings = settings or load_settings()
    request, key, agent = check_request(request, settings)
    check_free_space(settings)
    own_store = store is None
    store = store or open_store(settings.resolved_store_url)
    try:
        lease = key_lease(settings, store, key.id)
        with held(lease, request.wait, settings.heartbeat, request.cancel) as lost:
            mark_crashed(store, key, lease.proof)
            ctx = Context(request, settings, store, key, agent, Workdirs(settings), lost, fence=lease.proof)
            return _Runner(ctx).execute()
    finally:
        if own_store:
            store.close()


def check_request(request: RunRequest, settings: Settings) -> tuple[RunRequest, Key, Agent]:
    """Everything about a request that needs neither the store nor the lease (nothing is written):
    the request with its branch in short form, its key and its agent; BadInput for anything wrong.
    The service calls it before it stores a job, so a bad request is refused with the CLI's message."""
    request = validate(request)
    key = make_key(request.agent, request.repo, request.thread, AGENTS)
    agent = get_agent(key.agent, settings)
    if request.mode != Mode.AUTO and not agent.capabilities.supports(request.mode):
        raise BadInput(f"agent {key.agent!r} cannot run in mode {request.mode.value!r}")
    agent.command  # noqa: B018 -- a missing CLI is an error now, before anything is written
    agent.check_prompt("\n".join(filter(None, [request.context, request.prompt])))  # too long for the CLI?
    return request, key, agent


def validate(request: RunRequest) -> RunRequest:
    """The request with its branch in short form; BadInput for anything malformed."""
    _check_text("prompt", request.prompt)
    _check_text("context", request.context or "")
    if not request.prompt.strip():
        raise BadInput("prompt is empty")
    if request.timeout is not None and not request.timeout > 0:
        raise BadInput(f"timeout must be positive, not {request.timeout}")
    if request.retries < 0:
        raise BadInput(f"retries must be 0 or more, not {request.retries}")
    if not request.wait >= 0:
        raise BadInput(f"wait must be 0 or more, not {request.wait}")
    if request.fork_from is not None:
        validate_thread(request.fork_from)
        if request.mode != Mode.FORK:
            raise BadInput("fork_from needs mode fork")
    if request.branch is None:
        return request
    return dataclasses.replace(request, branch=_short_branch(request.branch))


def _check_text(name: str, value: str) -> None:
    if "\0" in value:
        raise BadInput(f"the {name} contains a NUL byte, which no agent CLI can take; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes from argv arrive as lone surrogates
        raise BadInput(f"the {name} is not valid UTF-8 text (at character {exc.start})") from exc


def _short_branch(branch: str) -> str:
    """``refs/heads/x`` and ``x`` name the same branch; any other ``refs/`` name is no branch."""
    short = branch.removeprefix("refs/heads/")
    if short.startswith("refs/") or short.startswith("-") or not short:
        raise BadInput(f"branch {branch!r} is not a valid branch name")
    try:
        normal = run_git(["check-ref-format", "--branch", short])
    except GitError:
        normal = ""
    if normal != short:
        raise BadInput(f"branch {branch!r} is not a valid branch name")
    return short


def check_free_space(settings: Settings) -> None:
    """Refuse to start with less than ``min_free`` free where BATON_HOME lives: a run on a full
    disk cannot record what it did, and SQLite cannot commit."""
    probe = settings.home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < settings.min_free_bytes:
        raise DiskFull(
            f"only {free / 1024 / 1024:.0f} MiB free on the disk holding {settings.home} "
            f"(baton needs {settings.min_free_bytes / 2**20:.0f} MiB, setting min_free); free some space"
        )


def mark_crashed(store: Store, key: Key, fence: Fence | None = None) -> list[RunRecord]:
    """Runs of ``key`` still ``running`` while we hold its lease belong to dead runners: mark them
    ``crashed`` and kill whatever of their agent outlived its runner on this host."""
    crashed = []
    for record in store.list_runs(key.agent, key.repo.slug, key.thread, limit=100, outcome=Outcome.RUNNING):
        if record.host == HOST:
            kill_tagged("BATON_RUN_ID", record.id)
        store.update_run(
            record.id,
            fence=fence,
            outcome=Outcome.CRASHED,
            ended_at=record.heartbeat_at or record.started_at,
            error="the runner stopped mid-run (killed or crashed); the next run resumes the conversation",
        )
        crashed.append(record)
    if crashed:
        session = store.get_session(key.agent, key.repo.slug, key.thread)
        if session is not None:
            session.status = SessionStatus.ACTIVE
            session.last_outcome = Outcome.CRASHED
            store.save_session(session, fence=fence)
    return crashed


class _Runner:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.warnings: list[str] = []
        self.first: Decision | None = None  # a fork's decision, made before the first write is kept

    def execute(self) -> RunResult:
        ctx = self.ctx
        key = ctx.key
        stored = ctx.store.get_session(key.agent, key.repo.slug, key.thread)
        self._refuse(stored)
        session = self._prepare(stored)
        last = ctx.store.list_runs(key.agent, key.repo.slug, key.thread, limit=1)
        interrupted: RunRecord | None = last[0] if last and last[0].outcome.interrupted else None
        attempts = self._attempts(session, interrupted)
        return RunResult(run=attempts[-1], attempts=attempts, session=session, warnings=self.warnings)

    def _refuse(self, session: SessionRecord | None) -> None:
        """Every refusal that needs only the store, before the first write."""
        key, request = self.ctx.key, self.ctx.request
        if session and request.branch and request.branch != session.branch:
            raise BadInput(
                f"{key} already works on branch {session.branch!r}; reset its worktree to change it"
            )
        if request.mode == Mode.RESUME and (session is None or not session.agent_session_id):
            raise BadInput(f"{key} has no conversation to resume")
        if request.mode == Mode.FORK:
            fork_source(self.ctx, session)

    def _prepare(self, stored: SessionRecord | None) -> SessionRecord:
        """The worktree and the session record; a worktree made now is removed again if the run is
        refused before its first attempt starts."""
        ctx, key = self.ctx, self.ctx.key
        branch = stored.branch if stored else (ctx.request.branch or branch_for(key))
        base = stored.base if stored else ctx.request.base
        made, ctx.worktree_note = portable.prepare_worktree(
            ctx.store, ctx.workdirs, key, branch, base, known=stored is not None
        )
        ctx.worktree = worktree = made.path
        if stored is None and not made.built:
            self.warnings.append(
                f"the store has no session for {key}, but its worktree exists at {worktree}: was "
                f"{ctx.settings.db_path.name} deleted or replaced? A NEW conversation starts; the old "
                f"one's transcript may still be under {ctx.agent.home} (`baton doctor` lists it)"
            )
        try:
            ctx.agent.prepare_home(ctx.settings.ttl_days)
            session = stored or self._new_session(branch, base)
            session.worktree = str(worktree)
            self.first = decide(ctx, session, None, None) if ctx.request.mode == Mode.FORK else None
        except BadInput:
            if stored is None:
                ctx.workdirs.discard_new_worktree(key, made)
            raise
        return session

    def _new_session(self, branch: str, base: str | None) -> SessionRecord:
        key, now = self.ctx.key, time.time()
        return SessionRecord(
            agent=key.agent,
            repo=key.repo.slug,
            thread=key.thread,
            repo_url=key.repo.url,
            branch=branch,
            worktree=str(self.ctx.worktree),
            base=base,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.ctx.settings.ttl_days * 86400,
        )

    def _attempts(self, session: SessionRecord, interrupted: RunRecord | None) -> list[RunRecord]:
        ctx = self.ctx
        attempts: list[RunRecord] = []
        retries_left, forced, delay = ctx.request.retries, None, ctx.settings.retry_backoff
        decision = self.first
        while True:
            decision = decision or decide(ctx, session, forced, interrupted)
            record = run_attempt(ctx, session, decision, len(attempts) + 1)
            attempts.append(record)
            decision = None
            if record.outcome == Outcome.SESSION_LOST and forced != Mode.RECOVER:
                forced = Mode.RECOVER  # does not use up a retry: the agent did no work
                continue
            if not record.outcome.retryable or retries_left <= 0 or ctx.request.cancel.is_set():
                return attempts
            if ctx.lost.is_set() or (record.exit_code is None and record.outcome == Outcome.FAILED):
                return attempts  # the key is someone else's now, or the agent could not even start
            retries_left -= 1
            interrupted = record
            if ctx.request.cancel.wait(delay):
                return attempts
            delay *= 2
