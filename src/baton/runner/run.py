"""The runner: one call of :func:`run` runs one instruction on one key, in this order:

validate everything that can be validated (nothing written yet) → hold the key's lease (kept alive
through every step by :func:`baton.store.leases.held`) → mark runs left ``running`` by dead runners as
``crashed`` (killing their agent if it survived) → prepare the worktree (undone if the run is refused
after it) → per attempt: choose the mode (:mod:`~baton.runner.decide`) and
run it (:mod:`~baton.runner.attempt`) →
retry retryable outcomes with backoff, resuming the same conversation → release the lease.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from typing import Any

from baton.agents import AGENTS, Agent, get_agent
from baton.errors import BadInput, DiskFull, GitError
from baton.keys import Key, make_key, validate_thread
from baton.models import (
    Fence,
    Mode,
    OnConflict,
    Outcome,
    PromptKind,
    RunRecord,
    SessionRecord,
    SessionStatus,
    SyncHow,
)
from baton.runner.attempt import new_run_id, record_conflict, run_attempt, usage_delta
from baton.runner.decide import Context, Decision, decide, fork_source
from baton.runner.process import kill_tagged
from baton.runner.request import RunRequest, RunResult
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.store.leases import HOST, held, key_lease
from baton.sync.engine import SyncReport
from baton.sync.handoff import (
    changed_files,
    check_source_agent,
    handoff_recap,
    handoff_source,
    recap_budget,
    seed_worktree,
)
from baton.sync.upstream import sync_before_turn, upstream_session
from baton.workspace import portable
from baton.workspace.gitcmd import ref_exists
from baton.workspace.workdirs import Workdirs, branch_for, run_git

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
    request = dataclasses.replace(
        request,
        sync=request.sync or SyncHow(settings.sync),
        on_conflict=request.on_conflict or OnConflict(settings.on_conflict),
    )
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
    _check_lineage(request)
    if request.branch is None:
        return request
    return dataclasses.replace(request, branch=_short_branch(request.branch))


def _check_lineage(request: RunRequest) -> None:
    """Stacking and hand-off options that cannot go together, or name nothing valid."""
    if request.base_thread is not None:
        validate_thread(request.base_thread)
        if request.base is not None:
            raise BadInput("give --base or --base-thread, not both")
    if request.handoff_from is None:
        return
    check_source_agent(request.agent, request.handoff_from)
    if request.mode not in (Mode.AUTO, Mode.FRESH):
        raise BadInput(f"a hand-off starts a new conversation: it cannot run in mode {request.mode.value!r}")


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


def _notes(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _origin(kind: str, agent: str, thread: str, session_id: str | None) -> dict[str, Any]:
    return {"kind": kind, "agent": agent, "thread": thread, "session_id": session_id, "at": time.time()}


class _Runner:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.warnings: list[str] = []
        self.first: Decision | None = None  # a fork's decision, made before the first write is kept
        self.handoff: tuple[Key, SessionRecord] | None = None  # a hand-off's source key and session
        self.upstream: SessionRecord | None = None  # a new stacked key's upstream thread
        self.conflicted = False  # this turn's sync conflicted and left the worktree as it was

    def execute(self) -> RunResult:
        ctx = self.ctx
        key = ctx.key
        stored = ctx.store.get_session(key.agent, key.repo.slug, key.thread)
        self._refuse(stored)
        session = self._prepare(stored)
        if self.conflicted:
            record = record_conflict(ctx, session)  # the agent does not start: nothing to resume on
            return RunResult(run=record, attempts=[record], session=session, warnings=self.warnings)
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
        if request.handoff_from:
            if session and session.agent_session_id:
                raise BadInput(
                    f"{key} already has a conversation; a hand-off starts a new one (reset its conversation "
                    "first, or run it without --handoff-from)"
                )
            self.handoff = handoff_source(self.ctx.store, key, request.handoff_from)
        if request.base_thread and session is None:
            self.upstream = upstream_session(self.ctx.store, key, request.base_thread)
        elif request.base_thread and session and session.base_thread not in (None, request.base_thread):
            raise BadInput(
                f"{key} already exists on base {session.base or 'the default branch'!r}; its base thread "
                "cannot change (reset its worktree to start again)"
            )
        elif request.base_thread and session and session.base_thread is None:
            # a dispatcher repeats its flags every turn: after a merged upstream the key is on the
            # default branch, which a repeated --base-thread must not undo or refuse
            self.warnings.append(
                f"{key} is on {session.base or 'the default branch'} (not stacked, or its stack was merged); "
                f"--base-thread {request.base_thread} applies only when a thread is created"
            )

    def _prepare(self, stored: SessionRecord | None) -> SessionRecord:
        """The worktree and the session record; a worktree made now is removed again if the run is
        refused before its first attempt starts."""
        ctx, key = self.ctx, self.ctx.key
        branch = stored.branch if stored else (ctx.request.branch or branch_for(key))
        base = stored.base if stored else (self.upstream.branch if self.upstream else ctx.request.base)
        seeded = self._seed(branch) if stored is None else None
        made, ctx.worktree_note = portable.worktree_from_store(
            ctx.store, ctx.workdirs, key, branch, self._start_from(base), known=stored is not None
        )
        ctx.worktree_note = _notes(seeded, ctx.worktree_note)
        ctx.worktree = worktree = made.path
        if stored is None and not made.built:
            self.warnings.append(
                f"the store has no session for {key}, but its worktree exists at {worktree}: was "
                f"{ctx.settings.db_path.name} deleted or replaced? A NEW conversation starts; the old "
                f"one's transcript may still be under {ctx.agent.home} (`baton doctor` lists it)"
            )
        try:
            ctx.agent.prepare_home(ctx.settings.ttl_days)
            session = stored or self._new_session(branch, base, made.start)
            session.worktree = str(worktree)
            self.first = self._first_decision(session)
        except BadInput:
            if stored is None:
                ctx.workdirs.discard_new_worktree(key, made)
            raise
        if stored is not None:
            self._sync(session)
        return session

    def _start_from(self, base: str | None) -> str | None:
        """Where a new branch starts: a stacked one from the upstream thread's own branch in the cache
        (the agent's latest work there), not from the remote's copy of it, which may be older."""
        if self.upstream is None or base is None:
            return base
        cache = self.ctx.workdirs.cache_path(self.ctx.key.repo)
        local = f"refs/heads/{base}"
        return local if (cache / "HEAD").is_file() and ref_exists(cache, local) else base

    def _seed(self, branch: str) -> str | None:
        """A hand-off's new worktree starts from the source's work (its branch tip and uncommitted files)."""
        if self.handoff is None:
            return None
        ctx = self.ctx
        return seed_worktree(ctx.store, ctx.workdirs, self.handoff[0], self.handoff[1], ctx.key, branch)

    def _first_decision(self, session: SessionRecord) -> Decision | None:
        """A fork's or a hand-off's first attempt, decided before the first write; the lineage recorded."""
        ctx = self.ctx
        if ctx.request.mode == Mode.FORK:
            decision = decide(ctx, session, None, None)
            thread = ctx.request.fork_from or ctx.key.thread
            session.origin = _origin("fork", ctx.key.agent, thread, decision.session_id)
            return decision
        if self.handoff is None:
            return None
        source, source_session = self.handoff
        runs = ctx.store.list_runs(source.agent, source.repo.slug, source.thread, limit=1000)
        earlier = [r for r in reversed(runs) if r.outcome != Outcome.SESSION_LOST]
        changed = changed_files(ctx.workdirs, source, source_session, store=ctx.store)
        instruction = "\n".join(filter(None, [ctx.request.context, ctx.request.prompt]))
        budget = recap_budget(ctx.agent, others=instruction)  # the whole prompt must fit the CLI
        ctx.recap = handoff_recap(earlier, changed, source.agent, budget)
        ctx.source = source.agent
        session.origin = _origin("handoff", source.agent, source.thread, source_session.agent_session_id)
        note = f"handed off from {source.agent}'s conversation {source_session.agent_session_id}"
        return Decision(Mode.FRESH, None, PromptKind.HANDOFF, note=note)

    def _sync(self, session: SessionRecord) -> None:
        """Bring upstream in before the first attempt (and tell it what a sync between turns did)."""
        ctx, request = self.ctx, self.ctx.request
        how, on_conflict = request.sync or SyncHow.OFF, request.on_conflict or OnConflict.STOP
        report, note = sync_before_turn(ctx.workdirs, ctx.key, session, how, on_conflict)
        ctx.worktree_note = _notes(ctx.worktree_note, note)
        reports = [r for r in (SyncReport.from_json(session.pending_sync), report) if r is not None]
        self.conflicted = report is not None and report.result == "conflict" and not report.left_for_agent
        if report is not None:
            ctx.sync = report.to_json()
        elif session.pending_sync:
            ctx.sync = session.pending_sync
        ctx.sync_text = "\n\n".join(r.prompt_text() for r in reports if r.result != "unchanged")
        if not self.conflicted:
            session.pending_sync = None  # told now (the session is saved when the attempt starts)

    def _new_session(self, branch: str, base: str | None, start: str | None) -> SessionRecord:
        key, now = self.ctx.key, time.time()
        record = SessionRecord(
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
            base_thread=self.upstream.thread if self.upstream else None,
            base_sha=start,
        )
        if self.handoff is not None:  # the same work: the same base as the source's
            source = self.handoff[1]
            record.base, record.base_thread, record.base_sha = (
                source.base,
                source.base_thread,
                source.base_sha,
            )
        return record

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
