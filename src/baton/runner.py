"""The runner: one call of :func:`run` takes a key through DESIGN.md's "What a run does".

validate the key → take the lease → mark runs left ``running`` by dead runners as ``crashed`` (killing
their agent if it survived) → prepare the worktree → choose the mode (decision matrix below) → build
the prompt → launch the agent → classify → snapshot the transcript → checkpoint the worktree → retry
retryable outcomes with backoff, resuming the same conversation → release the lease.

Decision matrix (``mode=auto``):

- no session id for the key → ``fresh`` (with a pre-assigned id), full prompt;
- transcript on local disk → ``resume`` by id;
- transcript missing locally, snapshot in the store → hydrate, then ``resume``;
- gone everywhere, or the agent says "not found" → ``recover``: fresh, with a recap of earlier runs.

A resumed turn after an interrupted one (crashed, timed out, cancelled, or a failed attempt being
retried) gets the "you were interrupted" prompt instead of the bare delta.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.agents import AGENTS, Agent, Turn, get_agent
from baton.errors import BadInput, GitError
from baton.keys import Key, make_key, validate_thread
from baton.leases import HOST, LeaseHolder
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus
from baton.process import kill_tagged, run_process
from baton.prompts import recap, render
from baton.request import RunRequest, RunResult
from baton.settings import Settings, load_settings
from baton.snapshots import hydrate, take_snapshot
from baton.store import Store, open_store
from baton.workdirs import Workdirs, branch_for, run_git


def run(request: RunRequest, settings: Settings | None = None, store: Store | None = None) -> RunResult:
    """Run one instruction on one key. Raises BadInput (nothing written) or Busy; agent failures are
    outcomes in the result, not exceptions."""
    settings = settings or load_settings()
    key = make_key(request.agent, request.repo, request.thread, AGENTS)
    _validate(request)
    agent = get_agent(key.agent, settings)
    if request.mode != Mode.AUTO and not agent.capabilities.supports(request.mode):
        raise BadInput(f"agent {key.agent!r} cannot run in mode {request.mode.value!r}")
    own_store = store is None
    store = store or open_store(settings.resolved_store_url)
    lease = LeaseHolder(store, key.id, settings.lease_ttl)
    try:
        lease.acquire(request.wait)
        try:
            mark_crashed(store, key)
            return _Runner(request, settings, store, key, agent, lease).execute()
        finally:
            lease.release()
    finally:
        if own_store:
            store.close()


def _validate(request: RunRequest) -> None:
    if not request.prompt.strip():
        raise BadInput("prompt is empty")
    if request.timeout is not None and request.timeout <= 0:
        raise BadInput(f"timeout must be positive, not {request.timeout}")
    if request.retries < 0:
        raise BadInput(f"retries must be 0 or more, not {request.retries}")
    if request.wait < 0:
        raise BadInput(f"wait must be 0 or more, not {request.wait}")
    if request.branch is not None:
        try:
            normal = run_git(["check-ref-format", "--branch", request.branch]) if request.branch else ""
        except GitError:
            normal = ""
        if normal != request.branch or request.branch.startswith("-"):
            raise BadInput(f"branch {request.branch!r} is not a valid branch name")
    if request.fork_from is not None:
        validate_thread(request.fork_from)
        if request.mode != Mode.FORK:
            raise BadInput("fork_from needs mode fork")


def _usage_delta(total: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Per-run usage from a thread's cumulative counters; the total is kept for the next delta."""
    counters = {k: v for k, v in total.items() if isinstance(v, int | float)}
    if any(v < before.get(k, 0) for k, v in counters.items()):
        before = {}  # the thread's counters went back (an older transcript was restored): start over
    return {**{k: v - before.get(k, 0) for k, v in counters.items()}, "thread_total": total}


def new_run_id() -> str:
    """Time-ordered and unique: 12 hex digits of milliseconds, 8 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


def mark_crashed(store: Store, key: Key) -> list[RunRecord]:
    """Runs of ``key`` still ``running`` while we hold its lease belong to dead runners: mark them
    ``crashed`` and kill whatever of their agent outlived its runner on this host."""
    crashed = []
    for record in store.list_runs(key.agent, key.repo.slug, key.thread, limit=100, outcome=Outcome.RUNNING):
        if record.host == HOST:
            kill_tagged("BATON_RUN_ID", record.id)
        store.update_run(
            record.id,
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
            store.save_session(session)
    return crashed


@dataclass
class _Plan:
    mode: Mode
    session_id: str | None  # the conversation to resume or fork
    kind: PromptKind
    reason: str = ""
    previous: str = ""  # the interrupted instruction (the agent may not have flushed it to disk)


class _Runner:
    def __init__(
        self,
        request: RunRequest,
        settings: Settings,
        store: Store,
        key: Key,
        agent: Agent,
        lease: LeaseHolder,
    ) -> None:
        self.request = request
        self.settings = settings
        self.store = store
        self.key = key
        self.agent = agent
        self.lease = lease
        self.workdirs = Workdirs(settings)

    def execute(self) -> RunResult:
        key, request = self.key, self.request
        session = self.store.get_session(key.agent, key.repo.slug, key.thread)
        if session and request.branch and request.branch != session.branch:
            raise BadInput(
                f"{key} already works on branch {session.branch!r}; reset its worktree to change it"
            )
        if request.mode == Mode.RESUME and (session is None or not session.agent_session_id):
            raise BadInput(f"{key} has no conversation to resume")
        branch = session.branch if session else (request.branch or branch_for(key))
        base = session.base if session else request.base
        worktree, _ = self.workdirs.ensure_worktree(key, branch, base)
        self.worktree = worktree
        self.agent.prepare_home(self.settings.ttl_days)
        now = time.time()
        if session is None:
            session = SessionRecord(
                agent=key.agent,
                repo=key.repo.slug,
                thread=key.thread,
                repo_url=key.repo.url,
                branch=branch,
                worktree=str(worktree),
                base=base,
                created_at=now,
                last_used_at=now,
                expires_at=now + self.settings.ttl_days * 86400,
            )
        session.worktree = str(worktree)
        last = self.store.list_runs(key.agent, key.repo.slug, key.thread, limit=1)
        interrupted: RunRecord | None = last[0] if last and last[0].outcome.interrupted else None
        attempts: list[RunRecord] = []
        retries_left = request.retries
        forced: Mode | None = None
        delay = self.settings.retry_backoff
        while True:
            plan = self._plan(session, forced, interrupted)
            record = self._attempt(session, worktree, plan, len(attempts) + 1)
            attempts.append(record)
            if record.outcome == Outcome.SESSION_LOST and forced != Mode.RECOVER:
                forced = Mode.RECOVER  # does not use up a retry: the agent did no work
                continue
            if record.outcome.retryable and retries_left > 0 and not request.cancel.is_set():
                retries_left -= 1
                interrupted = record
                if request.cancel.wait(delay):
                    break
                delay *= 2
                continue
            break
        return RunResult(run=attempts[-1], attempts=attempts, session=session)

    # -- the decision matrix ------------------------------------------------------------------------

    def _plan(self, session: SessionRecord, forced: Mode | None, interrupted: RunRecord | None) -> _Plan:
        mode = forced or self.request.mode
        if mode == Mode.FRESH:
            return _Plan(Mode.FRESH, None, PromptKind.FULL)
        if mode == Mode.RECOVER:
            return _Plan(Mode.RECOVER, None, PromptKind.RECAP)
        if mode == Mode.FORK:
            return self._plan_fork(session)
        follow_up, reason, previous = PromptKind.DELTA, "", ""
        if interrupted is not None:
            follow_up, reason = PromptKind.INTERRUPTED, interrupted.outcome.value.replace("_", " ")
            if interrupted.prompt.strip() != self.request.prompt.strip():
                previous = f"That turn's instruction was:\n\n{interrupted.prompt.strip()}\n"
        if mode == Mode.CONTINUE:
            kind = follow_up if session.agent_session_id else PromptKind.FULL
            return _Plan(Mode.CONTINUE, None, kind, reason, previous)
        if not session.agent_session_id:
            return _Plan(Mode.FRESH, None, PromptKind.FULL)
        if self._ensure_local(self.key, session.agent_session_id, self.worktree):
            return _Plan(Mode.RESUME, session.agent_session_id, follow_up, reason, previous)
        return _Plan(Mode.RECOVER, None, PromptKind.RECAP)

    def _plan_fork(self, session: SessionRecord) -> _Plan:
        source_key, source_id, source_dir = self.key, session.agent_session_id, self.worktree
        if self.request.fork_from:
            source_key = Key(self.key.agent, self.key.repo, self.request.fork_from)
            source = self.store.get_session(source_key.agent, source_key.repo.slug, source_key.thread)
            source_id = source.agent_session_id if source else None
            source_dir = Path(source.worktree) if source else self.worktree
        if not source_id:
            raise BadInput(f"{source_key} has no conversation to fork")
        # hydrated for the SOURCE's directory: agents that key sessions by directory (Gemini) must keep
        # finding the source conversation from its own worktree afterwards
        if not self._ensure_local(source_key, source_id, source_dir):
            raise BadInput(
                f"the conversation of {source_key} is lost (no transcript, no snapshot); cannot fork it"
            )
        return _Plan(Mode.FORK, source_id, PromptKind.DELTA)

    def _ensure_local(self, key: Key, session_id: str, cwd: Path) -> bool:
        """True when the transcript is on local disk, hydrating it from the store if needed."""
        if self.agent.transcript_files(session_id):
            return True
        # nothing usable locally: the snapshot overwrites whatever unusable file is there
        return hydrate(self.store, self.agent, key, session_id, cwd, overwrite=True) is not None and bool(
            self.agent.transcript_files(session_id)
        )

    # -- one attempt --------------------------------------------------------------------------------

    def _prompt(self, plan: _Plan, session: SessionRecord) -> str:
        values = {
            "prompt": self.request.prompt,
            "repo": self.key.repo.slug,
            "thread": self.key.thread,
            "branch": session.branch,
            "worktree": session.worktree,
            "context": (self.request.context or "").strip() + "\n" if self.request.context else "",
            "reason": plan.reason,
            "previous": plan.previous,
            "recap": "",
        }
        if plan.kind == PromptKind.RECAP:
            earlier = self.store.list_runs(self.key.agent, self.key.repo.slug, self.key.thread, limit=20)
            values["recap"] = recap([r for r in reversed(earlier) if r.outcome != Outcome.SESSION_LOST])
        return render(plan.kind, self.settings.home, **values)

    def _last_usage_total(self, session_id: str | None) -> dict[str, Any]:
        for record in self.store.list_runs(self.key.agent, self.key.repo.slug, self.key.thread, limit=50):
            if record.session_id_out == session_id and record.usage.get("thread_total"):
                total: dict[str, Any] = record.usage["thread_total"]
                return total
        return {}

    def _attempt(self, session: SessionRecord, worktree: Path, plan: _Plan, attempt: int) -> RunRecord:
        key, store, agent = self.key, self.store, self.agent
        text = self._prompt(plan, session)
        launch = agent.launch(plan.mode, text, plan.session_id)
        run_id = new_run_id()
        now = time.time()
        record = RunRecord(
            id=run_id,
            agent=key.agent,
            repo=key.repo.slug,
            thread=key.thread,
            attempt=attempt,
            mode=plan.mode,
            prompt_kind=plan.kind,
            prompt=self.request.prompt,
            started_at=now,
            heartbeat_at=now,
            session_id_in=plan.session_id or session.agent_session_id,
            log_path=str(self.settings.home / "logs" / f"{run_id}.jsonl"),
            host=HOST,
            runner_pid=os.getpid(),
        )
        if launch.new_session_id:
            # Pre-assigned: the agent writes the prompt under this id at once, so even if this runner
            # dies mid-turn the next run resumes the right conversation.
            session.agent_session_id = launch.new_session_id
        session.status = SessionStatus.RUNNING
        session.attempts += 1
        session.last_used_at = now
        store.save_session(session)
        store.add_run(record)
        if self.request.on_start:
            self.request.on_start(record)
        turn = Turn()
        env = {
            **os.environ,
            **self.workdirs.git_env(key.agent),
            **launch.env,
            "BATON_RUN_ID": run_id,
            "BATON_KEY": str(key),
        }

        def on_line(line: str) -> None:
            event = agent.read_event(line, turn)
            if (
                not launch.new_session_id
                and plan.mode != Mode.RESUME
                and turn.session_id
                and turn.session_id != session.agent_session_id
            ):
                # An id the agent chose itself (Codex, Gemini forks): keep it at once, so a runner
                # killed mid-turn still leaves the next run a conversation to resume.
                session.agent_session_id = turn.session_id
                store.save_session(session)
            if event is not None and self.request.on_event:
                self.request.on_event(record, event)

        def heartbeat() -> bool:
            store.update_run(run_id, heartbeat_at=time.time())
            return self.lease.renew()

        result = run_process(
            launch.argv,
            env,
            worktree,
            Path(record.log_path),
            on_line,
            on_start=lambda pid: store.update_run(run_id, agent_pid=pid),
            heartbeat=heartbeat,
            heartbeat_every=self.settings.heartbeat,
            timeout=self.request.timeout,
            cancel=self.request.cancel,
            kill_grace=self.settings.kill_grace,
            stdin=launch.stdin,
        )
        if result.timed_out:
            outcome, error = Outcome.TIMED_OUT, f"killed after the {self.request.timeout:g} s timeout"
        elif result.cancelled:
            outcome, error = Outcome.CANCELLED, "cancelled"
        else:
            outcome = agent.classify(result.exit_code, turn, result.stderr)
            error = None
            if outcome != Outcome.SUCCEEDED:
                lines = turn.errors or [line for line in result.stderr.splitlines() if line.strip()][-3:]
                error = "; ".join(lines) or f"the agent exited with code {result.exit_code}"
        if (
            outcome == Outcome.SUCCEEDED
            and plan.mode == Mode.RESUME
            and agent.capabilities.resume_keeps_id
            and turn.session_id not in (None, plan.session_id)
        ):
            # The CLI silently started a NEW conversation (Codex does when it cannot find the id):
            # that is a lost session, never a success on the old one.
            outcome = Outcome.SESSION_LOST
            error = f"asked to resume {plan.session_id}, the agent started {turn.session_id} instead"
        if outcome != Outcome.SESSION_LOST and turn.session_id:
            session.agent_session_id = turn.session_id  # re-captured every run: ids can change
        if agent.capabilities.cumulative_usage and turn.usage:
            before = self._last_usage_total(plan.session_id) if plan.mode == Mode.RESUME else {}
            turn.usage = _usage_delta(turn.usage, before)
        ended = time.time()
        final: dict[str, Any] = {
            "outcome": outcome,
            "ended_at": ended,
            "exit_code": result.exit_code,
            "session_id_out": session.agent_session_id if outcome != Outcome.SESSION_LOST else None,
            "result": turn.result,
            "error": error,
            "usage": turn.usage,
            "cost_usd": turn.cost_usd,
        }
        for name, value in final.items():
            setattr(record, name, value)
        store.update_run(run_id, **final)
        if session.agent_session_id and outcome != Outcome.SESSION_LOST:
            take_snapshot(store, agent, key, session.agent_session_id)
        self.workdirs.checkpoint(key, worktree)
        session.status = SessionStatus.ACTIVE
        session.last_outcome = outcome
        session.last_used_at = ended
        session.expires_at = ended + self.settings.ttl_days * 86400
        store.save_session(session)
        return record
