"""One attempt of a run, in named steps: start the run record → launch the agent → classify how it
ended (:mod:`baton.runner.ending`) → finish (record, snapshot, checkpoint, session).

A run always ends in the store with its real outcome: an agent that cannot even be started (E2BIG, a
missing binary, no permission) is recorded ``failed`` with the reason at once, and any other error
after the record was written (a full disk, a broken store) is recorded on the run before it is raised.
Once the agent's turn is over, its end waits out a store that cannot be reached (bounded:
:mod:`baton.runner.outage`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from baton import allowlist, tracing
from baton.agents import Agent, Launch, Turn, get_agent, limits
from baton.agents.base import version_or_none
from baton.asking import questions
from baton.errors import AgentError, BatonError, DiskFull, Fenced
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus
from baton.runner import instructions, quarantine, quota, window
from baton.runner.ending import Ending, asked, classify, refused_question
from baton.runner.modelwatch import ModelWatch
from baton.runner.outage import patient
from baton.runner.process import ProcessResult, RunLog, run_process
from baton.runner.prompts import INTERRUPTED_NEW, recap, render
from baton.runner.state import Attempt, Context, Decision, Prepared, Start
from baton.sandbox.enclosure import (
    Egress,
    Enclosure,
    GitParts,
    Walls,
    agent_env,
    allowed,
    check_confine,
    model_gateway,
    walls_for,
)
from baton.sessions.snapshots import take_snapshot
from baton.store.leases import HOST
from baton.workspace import keyspace
from baton.workspace.portable import publish_checkpoint

if TYPE_CHECKING:
    from baton.agents.limits import Limit
    from baton.runner.refusals import Refusals
    from baton.sandbox.enclosure import Pass
    from baton.settings import Settings

# What a rate-limited turn's message ends with: what happens to its instruction.
WAITS = "the conversation is kept and the first turn after the reset delivers this turn's instruction"
STOP_AFTER = 2.0  # seconds the agent's CLI has to say the gateway's refusal before it is stopped


def new_run_id() -> str:
    """Time-ordered and unique: 12 hex digits of milliseconds, 8 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


@tracing.traced("run.attempt")
def run_attempt(
    ctx: Context, prepared: Prepared, decision: Decision, attempt: Attempt, hold: Hold | None = None
) -> RunRecord:
    """One attempt, decided by ``decision``, to its end in the store (see the module docstring);
    ``hold``: what holds it to its caps behind the model gateway as it spends."""
    session = prepared.session
    text = _prompt(ctx, prepared, decision, attempt)
    walled = check_confine(ctx.settings)
    tmp = keyspace.key_tmp(ctx.settings, ctx.key)
    questions.clear(tmp)  # an earlier turn's question is never this one's
    servers = (questions.server(tmp),)
    launch = ctx.agent.launch(decision.mode, text, decision.session_id, ctx.access, walled, servers)
    record = _record(ctx, prepared, decision, attempt)
    record.confined = walled
    turn, passes = Turn(), Passes(hold)
    with RunLog(Path(record.log_path)) as log, passes:
        try:
            _start(ctx, session, record, launch)
            env = _agent_env(ctx, launch, record, prepared.services)
            own, (env, launch) = env, passes.stand_in(ctx, record, env, launch, log)
            watch = _watch(ctx, record, own, log, passes.upstream())  # on the model API, not the gateway
            passes.watch = watch
            halted = None
            if decision.compact:  # the conversation outgrew the threshold: the CLI compacts it first
                halted = _compact(ctx, prepared, decision, record, turn, env, watch, passes.stop)
            if halted is not None:  # stopped while compacting (a timeout, a cancel): the turn ends so
                result, turn = halted
            else:
                result = _launch(ctx, prepared, decision, launch, record, turn, env, watch, passes.stop)
        except AgentError as exc:  # the agent could not even be started
            return _finish(ctx, prepared, record, turn, Ending(Outcome.FAILED, str(exc)))  # (no strike)
        except BaseException as exc:
            _abandon(ctx, session, record, exc)
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        ending = passes.ending(result) or asked(
            passes.limited(classify(ctx, decision, result, turn, watch)),
            questions.take(tmp) or refused_question(ctx, turn),
        )
        _quota(ctx, record, ending)
        ending.reaped, ending.left_running = result.reaped.count, result.reaped.summary()
        if ending.reaped:
            log.note({"type": "baton.reaped", "count": ending.reaped, "processes": ending.left_running})
        # why it ended, for `runs logs` (a success's log ends with the agent's own result)
        if ending.outcome != Outcome.SUCCEEDED:
            log.note({"type": "baton.ended", "outcome": ending.outcome.value, "error": ending.error})
    turn.wire = passes.usage()
    turn.cost_usd = passes.cost(turn.cost_usd, ctx.settings)
    ctx = patient(ctx, record.id, ending.outcome)  # the turn is over: its end waits out a store outage
    trouble = [e for e in (result.log_error, result.callback_error) if e]
    if trouble:  # the agent ran, but baton could not keep everything it said: say so on the run
        record.note = "; ".join(filter(None, [record.note, *trouble]))
        ctx.store.update_run(record.id, fence=ctx.fence, note=record.note)
    record = _finish(ctx, prepared, record, turn, ending)
    # a resume that failed at once is a strike on its conversation, unless baton or the machine stopped it
    stopped = result.stopped or result.cancelled or result.timed_out or ending.limit or ctx.lost.is_set()
    quarantine.after(ctx, record, bool(stopped))
    return record


def _prompt(ctx: Context, prepared: Prepared, decision: Decision, attempt: Attempt) -> str:
    request, key, session = ctx.request, ctx.key, prepared.session
    instruction, told_before = request.prompt, bool(decision.reason) and decision.kind in NEW_CONVERSATION
    if told_before:  # the interrupted turn left nothing to resume: its instruction comes with this one
        values = {"reason": decision.reason, "previous": decision.previous, "prompt": request.prompt}
        instruction = render(INTERRUPTED_NEW, ctx.settings.home, **values).rstrip("\n")
    values = {
        "prompt": instruction,
        "repo": key.repo.slug,
        "thread": key.thread,
        "branch": session.branch,
        "worktree": session.worktree,
        "context": (request.context or "").strip() + "\n" if request.context else "",
        "reason": decision.reason,
        "previous": decision.previous,
        "recap": prepared.recap,
        "source": prepared.source,
    }
    if decision.kind == PromptKind.RECAP:
        earlier = ctx.store.list_runs(key.agent, key.repo.slug, key.thread, limit=20)
        # the turns cut short are told in full with the instruction, not clipped in the recap as well
        skip = decision.cut_short if told_before else ()
        gone = (Outcome.SESSION_LOST, Outcome.CONTEXT_FULL)  # turns that did nothing: not recapped
        kept = [r for r in reversed(earlier) if r.outcome not in gone and r.id not in skip]
        values["recap"] = recap(kept)
    text = decision.told + render(decision.kind, ctx.settings.home, **values)
    if decision.instructions:  # its instruction files changed under the conversation: how, first
        text = decision.instructions.strip() + "\n\n" + text
    if prepared.sync_text:  # the code under the conversation moved: say so before the instruction
        text = prepared.sync_text.strip() + "\n\n" + text
    if prepared.setup_text and (attempt.first or decision.kind in NEW_CONVERSATION):
        text = prepared.setup_text.strip() + "\n\n" + text  # its room was prepared: how to test in it
    if prepared.services_text and (attempt.first or decision.kind in NEW_CONVERSATION):
        text = prepared.services_text.strip() + "\n\n" + text  # where its tests' services are now
    if attempt.left_running:  # its server or watcher is gone: it must not be surprised
        text = LEFT_RUNNING.format(attempt.left_running) + "\n\n" + text
    return text


# the prompts that start a new conversation: an interrupted turn's instruction is told with them
NEW_CONVERSATION = (PromptKind.FULL, PromptKind.RECAP, PromptKind.HANDOFF)

LEFT_RUNNING = (
    "Processes you left running in your previous turn were stopped when it ended: {}. Nothing you start "
    "outlives your turn; start again whatever this turn needs."
)


def opened(ctx: Context) -> str | None:
    """What the run's settings open that baton keeps closed by default, said in its note: an ``open``
    egress, a model key left in the agent's environment (``model_gateway = off``)."""
    said = []
    if allowlist.parse(ctx.request.egress or ctx.settings.egress).open:
        said.append("egress is OPEN (egress = open): the agent could connect to any host")
    if ctx.settings.model_gateway != "on":
        said.append("the model key was in the agent's environment (model_gateway = off)")
    return "; ".join(said) or None


def _record(ctx: Context, prepared: Prepared, decision: Decision, attempt: Attempt) -> RunRecord:
    """The attempt's run record, ``running``; the first attempt carries what preparing the key did.
    The first attempt of a ``baton run`` is the run: its id is the run's (a job's attempts all have
    ids of their own, since a job taken over by another worker starts again at attempt 1)."""
    key, now = ctx.key, time.time()
    own = attempt.number == 1 and ctx.request.job_id is None and ctx.run_id
    run_id = ctx.run_id if own else new_run_id()
    return RunRecord(
        id=run_id,
        job_id=ctx.run_id or None,
        agent=key.agent,
        repo=key.repo.slug,
        thread=key.thread,
        attempt=attempt.number,
        mode=decision.mode,
        prompt_kind=decision.kind,
        prompt=ctx.request.prompt,
        started_at=now,
        heartbeat_at=now,
        session_id_in=decision.session_id or prepared.session.agent_session_id,
        log_path=str(ctx.settings.home / "logs" / f"{run_id}.jsonl"),
        host=HOST,
        runner_pid=os.getpid(),
        note="; ".join(filter(None, [decision.note, prepared.note if attempt.first else None, opened(ctx)]))
        or None,
        sync=prepared.sync if attempt.first else None,
        access=ctx.access,
        lineage=decision.lineage,
    )


def record_conflict(ctx: Context, prepared: Prepared) -> RunRecord:
    """A run that ends before its agent starts: syncing with upstream conflicted, and the worktree was
    left exactly as it was (``--on-conflict stop``). Recorded like any run, with what conflicted."""
    files = ", ".join((prepared.sync or {}).get("conflicts") or []) or "some files"
    error = (
        f"syncing with upstream conflicted in {files}; the agent did not run and the worktree is exactly as "
        "it was (run with --on-conflict agent to let the agent resolve it, or resolve it yourself)"
    )
    return record_unstarted(ctx, prepared, Outcome.CONFLICT, error)


def record_unstarted(
    ctx: Context, prepared: Prepared, outcome: Outcome, error: str, note: str | None = None
) -> RunRecord:
    """A run that ends ``outcome`` before its agent starts (a sync's conflict, a failed setup), recorded
    like any run with ``error`` and, after preparing's own note, ``note``."""
    session = prepared.session
    mode = Mode.RESUME if session.agent_session_id else Mode.FRESH
    decision = Decision(mode, session.agent_session_id, PromptKind.DELTA)
    record = _record(ctx, prepared, decision, Attempt(1, Start.FIRST))
    record.outcome, record.ended_at, record.error = outcome, record.started_at, error
    record.note = "; ".join(filter(None, [record.note, note])) or None
    session.last_outcome, session.last_used_at = outcome, record.started_at
    ctx.store.add_run(record, fence=ctx.fence, session=session)
    return record


def record_parked(ctx: Context, prepared: Prepared, attempt: Attempt, question: dict[str, Any]) -> RunRecord:
    """A turn that ends before its agent starts because its thread is at a spending cap
    (:mod:`baton.runner.capped`): recorded ``needs_input`` with baton's ``question``, its instruction
    kept on the run for the turn that resumes it (whose agent then gets it once)."""
    session = prepared.session
    mode = Mode.RESUME if session.agent_session_id else Mode.FRESH
    record = _record(ctx, prepared, Decision(mode, session.agent_session_id, PromptKind.DELTA), attempt)
    record.outcome, record.ended_at, record.question = Outcome.NEEDS_INPUT, record.started_at, question
    session.status, session.last_outcome = SessionStatus.ACTIVE, Outcome.NEEDS_INPUT
    session.last_used_at = record.started_at
    ctx.store.add_run(record, fence=ctx.fence, session=session)
    return record


def _start(ctx: Context, session: SessionRecord, record: RunRecord, launch: Launch) -> None:
    """Write the run record (``running``) and the session before the agent starts."""
    if launch.new_session_id:
        # Pre-assigned: the agent writes the prompt under this id at once, so even if this runner
        # dies mid-turn the next run resumes the right conversation.
        session.agent_session_id = launch.new_session_id
    session.status = SessionStatus.RUNNING
    session.attempts += 1
    session.last_used_at = record.started_at
    ctx.store.add_run(record, fence=ctx.fence, session=session)  # one transaction
    if ctx.request.on_start:
        ctx.request.on_start(record)


def _watch(
    ctx: Context, record: RunRecord, env: dict[str, str], log: RunLog, upstream: str | None = None
) -> ModelWatch:
    """The turn's watch on its model API (:mod:`baton.runner.modelwatch`), its address read on the
    operator's base home (never the key's, which the agent may rewrite), or the gateway's ``upstream``;
    its events go to the log and to the request's subscriber."""
    on_event = ctx.request.on_event
    publish = (lambda event: on_event(record, event)) if on_event else None
    url = upstream or _operators(ctx).model_url(env)
    return ModelWatch(ctx.agent, url, ctx.settings.unreachable_grace, env, log, publish)


@tracing.traced("run.agent")
def _launch(
    ctx: Context,
    prepared: Prepared,
    decision: Decision,
    launch: Launch,
    record: RunRecord,
    turn: Turn,
    env: dict[str, str],
    watch: ModelWatch,
    gate: Callable[[], str | None],
    part: str = "",
) -> ProcessResult:
    """Run the agent to its end, streaming its events into ``turn``, the watch and the request's
    subscriber; ``gate``: why the model gateway stopped it (:meth:`Passes.stop`); ``part``: a process
    of the attempt before its turn (a compaction), contained apart."""
    store, agent, session = ctx.store, ctx.agent, prepared.session

    def on_line(line: str) -> None:
        event = agent.read_event(line, turn)
        chose = turn.session_id and turn.session_id != session.agent_session_id
        if chose and not launch.new_session_id and decision.mode != Mode.RESUME:
            # An id the agent chose itself (Codex, Gemini forks): keep it at once, so a runner
            # killed mid-turn still leaves the next run a conversation to resume.
            session.agent_session_id = turn.session_id
            store.save_session(session, fence=ctx.fence)
        if event is not None and ctx.request.on_event:
            ctx.request.on_event(record, event)
        watch.event(event)  # last: its note follows the event it is about, and nothing above waits on it

    def heartbeat() -> bool:
        _noted(ctx, record.id, {"heartbeat_at": time.time()})  # a store hiccup must not orphan the agent
        return not ctx.lost.is_set()  # the lease keeps itself alive; a lost one stops the agent

    env = {**env, **tracing.agent_env()}  # the agent's own spans join this trace (docs/deploy.md#tracing)
    inside = prepared.container  # environment container: its walls say what is mounted
    out = _egress(ctx, record, env, watch, bool(record.confined) or inside is not None)
    env = {**env, **out.env} if out is not None else env
    walls = _walls(ctx, prepared, env) if record.confined or inside else None
    watched = [prepared.worktree, Path(env["TMPDIR"]), Path(env["HOME"])]
    name = f"{record.id}-{part}" if part else record.id
    with Enclosure.open(ctx.settings, name, ctx.resolved.limits, walls, watched, out, inside) as box:
        argv, started_env = box.command(launch.argv, env, prepared.worktree, ctx.resolved.timeout)
        result = run_process(
            argv,
            started_env,
            prepared.worktree,
            watch.log,
            on_line,
            on_start=lambda pid: _started(ctx, record, pid),
            heartbeat=heartbeat,
            heartbeat_every=ctx.settings.heartbeat,
            timeout=ctx.resolved.timeout,
            idle_timeout=ctx.resolved.idle_timeout,
            cancel=ctx.request.cancel,
            kill_grace=ctx.settings.kill_grace,
            stdin=launch.stdin,
            spawn=box.spawn,
            on_stderr=watch.stderr,
            stop_when=lambda: box.stop() or watch.stop() or gate() or questions.overdue(Path(env["TMPDIR"])),
            contain=box.contain,
        )
        box.final(result.reaped)  # the key's disk once more, now the agent is gone
    tracing.usage(agent.name, turn.model, turn.usage)  # the GenAI attributes of the agent's span
    return result


def _egress(
    ctx: Context, record: RunRecord, env: dict[str, str], watch: ModelWatch, walled: bool
) -> Egress | None:
    """The agent's way out under its egress allow-list (:mod:`baton.runner.wayout`); every refusal a
    line of its log and an event of its subscriber. ``walled``: behind the walls or in a container."""
    # lazy: cold CLI
    from baton.runner import wayout  # here: the run path's module budget (tests/cli/test_cli_fast.py)

    policy = wayout.agent_policy(ctx)
    if policy.open:
        return None

    on_event = ctx.request.on_event

    def note(event: dict[str, Any]) -> None:
        watch.log.note(event)
        if on_event is not None:
            on_event(record, event)

    return wayout.open_way(ctx, record.id, policy, env, walled, note)


class Hold(Protocol):
    """What holds a running turn to its caps as its model replies spend
    (:class:`baton.runner.capped.WireHold`)."""

    def spend(
        self, total: dict[str, int], models: dict[str, dict[str, int]], note: Callable[[dict[str, Any]], None]
    ) -> str | None: ...
    def question(self) -> dict[str, Any] | None: ...
    def admit(self, total: dict[str, int], models: dict[str, dict[str, int]]) -> str | None: ...


class Passes(contextlib.AbstractContextManager["Passes"]):
    """The run's pass through baton's model gateway (``model_gateway = on``), revoked on leaving; its
    guard holds the turn to its caps as the replies spend (``hold``) and trips the credential's breaker
    on a usage limit the model API answers."""

    def __init__(self, hold: Hold | None = None) -> None:
        self.passes: list[Pass] = []
        self.refusals: list[
            Refusals[tuple[str, str], str]
        ] = []  # the gateway's refusals of the run's calls, coalesced
        self.hold = hold
        self.limit: Limit | None = None  # a spent quota the model API answered the turn
        self.watch: ModelWatch | None = None  # the turn's watch on the model API, told what the gateway met

    def stand_in(
        self, ctx: Context, record: RunRecord, env: dict[str, str], launch: Launch, log: RunLog
    ) -> tuple[dict[str, str], Launch]:
        """``env`` and ``launch`` with the gateway standing in for the agent's model API and key, where
        it can (what it can is read on the operator's base home)."""
        if ctx.settings.model_gateway != "on":
            return env, launch

        def limit(status: int, headers: dict[str, str], body: bytes) -> None:
            found = limits.from_api_reply(status, headers, body)
            if found is None or found.kind != limits.LimitKind.EXHAUSTED:
                return
            self.limit = found
            log.note({"type": "baton.usage_limit", "status": status, "detail": found.detail})
            if ctx.breaker is not None:
                with contextlib.suppress(BatonError):  # the turn's end trips it again
                    ctx.breaker.after(ctx.store, found, record.run_id, record.started_at, ctx.settings)

        hold = self.hold

        def spend(total: dict[str, int], models: dict[str, dict[str, int]]) -> str | None:
            return None if hold is None else hold.spend(total, models, log.note)

        admit = None if hold is None else hold.admit

        def unreachable(said: str) -> None:
            if self.watch is not None:
                self.watch.unreachable(said)

        refused = self._refusals(ctx, record, log)
        upstream = ctx.settings.gateway_upstream(ctx.key.agent)
        admitted = model_gateway(
            _operators(ctx), env, record.id, upstream, spend, limit, refused, admit, unreachable
        )
        if admitted is None:
            return env, launch
        env, gate, setting = admitted
        self.passes.append(gate)
        moved = ctx.agent.behind_gateway(launch, setting, gate.url)
        keyspace.drop_secrets(ctx.agent.home, ctx.agent.gateway_secrets(setting))
        # a CLI told the gateway in its launch's environment (OpenCode's config content) is told it so
        env.update({k: v for k, v in moved.env.items() if launch.env.get(k) != v})
        return env, moved

    def _refusals(self, ctx: Context, record: RunRecord, log: RunLog) -> Callable[[str, str, str], None]:
        """What the gateway calls with each call it refused as no model call: an audit row and a note,
        coalesced per call (a burst of refusals: a few rows, as egress's)."""

        def tell(where: tuple[str, str], reason: str, count: int, last: float) -> None:
            method, path = where
            detail = {"method": method, "path": path, "run_id": record.id, "count": count, "last": last}
            with contextlib.suppress(BatonError):  # the note below still says it
                ctx.store.audit(
                    "gateway.refused", str(ctx.key), f"run:{record.id}", {**detail, "reason": reason}
                )
            log.note({"type": "baton.gateway_refused", **detail, "reason": reason})

        # lazy: the gateway's runs only
        from baton.runner.refusals import Refusals

        told = Refusals[tuple[str, str], str](tell, others=("*", "*"))
        self.refusals.append(told)

        def refused(method: str, path: str, reason: str) -> None:
            told((method, path[:300]), reason)

        return refused

    def upstream(self) -> str | None:
        """The model API the gateway sends the run's requests to; None without a gateway."""
        return self.passes[0].upstream.url if self.passes else None

    def stop(self) -> str | None:
        """Why the agent is stopped now: the gateway has refused its requests for :data:`STOP_AFTER`
        seconds (time for its CLI to say the refusal)."""
        refused = next((gate for gate in self.passes if gate.refused is not None), None)
        if refused is None or time.monotonic() - refused.refused_at < STOP_AFTER:
            return None
        return refused.refused

    def ending(self, result: ProcessResult) -> Ending | None:
        """A turn the gateway stopped at a cap: ``needs_input``, parked as a turn that never started at
        one is; None for any other end."""
        question = self.hold.question() if self.hold is not None else None
        if question is None or not any(gate.refused is not None for gate in self.passes):
            return None
        return Ending(Outcome.NEEDS_INPUT, None, result.exit_code, parked=question)

    def limited(self, ending: Ending) -> Ending:
        """A turn that failed after the model API answered it a spent quota (its CLI may call the
        refusal transient, or say nothing of it): ``rate_limited`` with that limit, as for every agent."""
        if self.limit is None or ending.outcome != Outcome.FAILED:
            return ending
        return Ending(Outcome.RATE_LIMITED, self.limit.detail, ending.exit_code, limit=self.limit)

    def usage(self) -> dict[str, int] | None:
        """The run's usage as the gateway read it on the wire; None without a gateway."""
        return self.passes[0].usage() if self.passes else None

    def cost(self, reported: float | None, settings: Settings) -> float | None:
        """The turn's cost: its agent's report (only Claude Code makes one), else its replies' as the
        gateway read them at the operator's ``model_prices`` (:func:`baton.caps.prices.turn_cost`)."""
        if reported is not None or not self.passes:
            return reported
        # lazy: cold CLI
        from baton.caps.prices import turn_cost  # here: the run path's module budget

        return turn_cost(None, settings.model_price_list, self.passes[0].billed())

    def __exit__(self, *exc: object) -> None:
        for gate in self.passes:  # the run's token is refused from now on
            gate.close()
        for told in self.refusals:  # each refused call's last count, once no more can come
            told.flush()


def _compact(
    ctx: Context,
    prepared: Prepared,
    decision: Decision,
    record: RunRecord,
    turn: Turn,
    env: dict[str, str],
    watch: ModelWatch,
    gate: Callable[[], str | None],
) -> tuple[ProcessResult, Turn] | None:
    """Have the CLI compact the conversation in place before the turn (it outgrew the threshold of its
    window: :mod:`baton.runner.window`), as a process of its own in the same walls; the run's note and
    lineage say whether it did. None when it ended by itself, compacted or not (the turn then resumes
    the conversation as it is: a model that refuses it as too long makes the run roll over); the
    compaction's own result and turn when it was stopped (a timeout, a cancel, a limit), which ends
    the turn before its instruction is sent."""
    assert decision.session_id is not None
    launch = ctx.agent.compact_launch(decision.session_id, ctx.access, bool(record.confined))
    compaction = Turn()
    result = _launch(ctx, prepared, decision, launch, record, compaction, env, watch, gate, part="compact")
    if result.timed_out or result.cancelled or result.stopped or result.reaped.limit or ctx.lost.is_set():
        return result, compaction
    if compaction.compacted:
        turn.context_tokens, turn.model = compaction.context_tokens, compaction.model
        said = "compacted it in place first (the CLI's /compact)"
    else:
        why = "; ".join(compaction.errors) or f"exit {result.exit_code}"
        said = f"the CLI's /compact failed ({why}): resumed the conversation as it was"
        record.lineage = window.COMPACT_FAILED
    record.note = "; ".join(filter(None, [record.note, said]))
    _fenced_update(ctx, record.id, {"note": record.note, "lineage": record.lineage})
    return None


def _agent_env(ctx: Context, launch: Launch, record: RunRecord, services: dict[str, str]) -> dict[str, str]:
    """The agent's environment: an allow-list of baton's (:mod:`baton.sandbox.agentenv`), with the
    key's own home and temp dir, its services' variables (never one of the CLI's own), and its
    repository's shared package caches (none at ``read``)."""
    names = _operators(ctx).env_names()
    theirs = allowed(services, names)
    baton_sets = {
        **{name: value for name, value in services.items() if name not in theirs},
        **ctx.workdirs.git_env(ctx.key.agent),
        # headless: a git command of the agent's that wants an editor (`rebase --continue` after a sync
        # conflict left for it, a merge commit) must not wait for one
        "GIT_EDITOR": "true",
        **launch.env,
        "BATON_RUN_ID": record.id,
        "BATON_KEY": str(ctx.key),
    }
    home, tmp = ctx.agent.home, keyspace.key_tmp(ctx.settings, ctx.key)
    caches = keyspace.shared_cache(ctx.settings, ctx.key, ctx.access)
    return agent_env(os.environ, names, ctx.settings.agent_env_names, baton_sets, home, tmp, caches)


def _operators(ctx: Context) -> Agent:
    """The agent's adapter on the operator's base home: what it declares (the variables and endpoints
    Codex's model providers name) is read from the operator's configuration, never from the key's
    home, which the agent itself may rewrite to widen its next run's environment or ports."""
    return get_agent(ctx.key.agent, ctx.settings)


def _walls(ctx: Context, prepared: Prepared, env: dict[str, str]) -> Walls:
    """The walls of this attempt's agent: its key at the run's access level (the enclosure builds the
    kernel's ruleset of them, and the mount namespace where the host allows)."""
    found = ctx.workdirs.worktree_git(ctx.key)  # its links to its admin dir repaired first
    git = GitParts(found.admin, found.common, f"refs/heads/{prepared.session.branch}") if found else None
    return walls_for(ctx.settings, _operators(ctx), ctx.access, prepared.worktree, git, env, ctx.key.repo.url)


def _quota(ctx: Context, record: RunRecord, ending: Ending) -> None:
    """Trip the credential's breaker on a spent quota (the run then says until when it waits), close it
    after a turn that went through (:mod:`baton.runner.quota`)."""
    if ctx.breaker is None or ending.outcome not in (Outcome.SUCCEEDED, Outcome.RATE_LIMITED):
        return
    tripped = None
    with contextlib.suppress(BatonError):  # a store hiccup: the run's own record still says what happened
        tripped = ctx.breaker.after(ctx.store, ending.limit, record.run_id, record.started_at, ctx.settings)
    if tripped is not None:  # its detail: the agent's words and how baton chose the reset
        ending.resets_at, ending.error = tripped.resets_at, tripped.detail
    if ending.outcome == Outcome.RATE_LIMITED:
        label = ctx.breaker.label
        until = f"until {quota.when(ending.resets_at, time.time())}" if ending.resets_at else "for its reset"
        said = f" ({ending.error})" if ending.error else ""
        ending.error = f"the usage quota of {label} is spent{said}; the thread waits {until}; {WAITS}"


def _finish(ctx: Context, prepared: Prepared, record: RunRecord, turn: Turn, ending: Ending) -> RunRecord:
    """Write the run's final fields, then snapshot the transcript and checkpoint the worktree (at once:
    the checkpoint's git runs in a thread of its own)."""
    session = prepared.session
    lost = ending.outcome == Outcome.SESSION_LOST
    if not lost and turn.session_id:
        session.agent_session_id = turn.session_id  # re-captured every run: ids can change
    usage = turn.usage
    if ctx.agent.capabilities.cumulative_usage and usage:
        # a fork's copied history carries its source's counters: they are the source's usage, not this run's
        source = ctx.request.fork_from if record.mode == Mode.FORK else None
        continued = record.mode in (Mode.RESUME, Mode.FORK)
        before = _last_usage_total(ctx, record.session_id_in, source) if continued else {}
        usage = usage_delta(usage, before)
    if (context := window.held(ctx.settings, ctx.key, turn, usage)) is not None:
        usage = {**usage, "context": context}  # what the conversation held: the next turn may roll it over
    if turn.wire:  # what the model API's replies counted: the larger of it and what the CLI reported
        # lazy: the gateway's runs only
        from baton.caps.spend import reconciled

        usage = reconciled(usage or {}, turn.wire)
    ended = time.time()
    final: dict[str, Any] = {
        "outcome": ending.outcome,
        "ended_at": ended,
        "agent_pid": record.agent_pid,  # written at its start too, unless the store was away then
        "exit_code": ending.exit_code,
        "session_id_out": None if lost else session.agent_session_id,
        "result": turn.result,
        "error": ending.error,
        "usage": usage,
        "cost_usd": turn.cost_usd,
        "cli_version": _cli_version(ctx.agent, turn.version),
        "reaped": ending.reaped,
        "left_running": ending.left_running,
        "resets_at": ending.resets_at,
        "limit_kind": ending.limit.scope if ending.outcome == Outcome.RATE_LIMITED and ending.limit else None,
        "question": ending.parked or (ending.question.to_json() if ending.question else None),
    }
    for name, value in final.items():
        setattr(record, name, value)
    if ctx.lost.is_set() or not _fenced_update(ctx, record.id, final):
        return _stale(ctx, record, final)
    _tell_ended(ctx, record, session)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baton-checkpoint") as pool:
        # git looks at the worktree while the transcript is snapshotted
        made = pool.submit(ctx.workdirs.checkpoint, ctx.key, prepared.worktree)
        if session.agent_session_id and not lost:
            take_snapshot(ctx.store, ctx.agent, ctx.key, session.agent_session_id, ctx.fence)
        trouble = publish_checkpoint(
            ctx.store, ctx.workdirs, ctx.key, prepared.worktree, session.branch, ctx.fence, made
        )
    if trouble:  # the run did its work; only other machines cannot rebuild it: say so on the run
        record.note = "; ".join(filter(None, [record.note, trouble]))
        ctx.store.update_run(record.id, fence=ctx.fence, note=record.note)
    if not lost and not (ending.exit_code is None and ending.outcome == Outcome.FAILED):
        # the agent ran: what its conversation now knows of its instruction files
        with contextlib.suppress(BatonError, OSError):  # unrecorded: the next turn compares nothing
            instructions.record(ctx, prepared.worktree, session.agent_session_id)
    waits = ending.outcome == Outcome.RATE_LIMITED
    session.status = SessionStatus.WAITING if waits else SessionStatus.ACTIVE
    session.last_outcome = ending.outcome
    session.last_used_at = ended
    session.expires_at = ended + ctx.settings.ttl_days * 86400
    ctx.store.save_session(session, fence=ctx.fence)
    return record


def _tell_ended(ctx: Context, record: RunRecord, session: SessionRecord) -> None:
    """A success is its run's last attempt, recorded: its answer is told now (``on_ended``), while its
    snapshot and checkpoint are still to be taken under the lease. A crash from here leaves the run
    recorded as it ended; the next turn takes the snapshot and the checkpoint."""
    told = ctx.request.on_ended
    if told is not None and record.outcome == Outcome.SUCCEEDED and ctx.request.carried_for is None:
        told(record, session)


def _cli_version(agent: Agent, reported: str | None) -> str | None:
    """The version that ran the turn: the one the CLI reported in its events (Claude's ``init``),
    remembered for its binary so the next turn's format check need not run it; else the CLI is asked,
    once per installed binary."""
    if reported is None:
        return version_or_none(agent)
    agent.remember_version(reported)
    return reported


def _started(ctx: Context, record: RunRecord, pid: int) -> None:
    """Record that the agent started (the run's end writes the pid too, should the store miss it now)."""
    record.agent_pid = pid  # the record the caller is given says its agent started, as the store does
    _noted(ctx, record.id, {"agent_pid": pid})


def _noted(ctx: Context, run_id: str, fields: dict[str, Any]) -> None:
    """A fenced update while the agent runs, which a store hiccup (an outage just begun, a full disk)
    may miss: the turn goes on. A refused fence still marks the run lost, which stops the agent."""
    with contextlib.suppress(BatonError):
        _fenced_update(ctx, run_id, fields)


def _fenced_update(ctx: Context, run_id: str, fields: dict[str, Any]) -> bool:
    """Update the run with the lease's fence; False (and the run marked lost) when the store refused
    it: the key's lease was granted to another runner since."""
    try:
        ctx.store.update_run(run_id, fence=ctx.fence, **fields)
    except Fenced:
        ctx.lost.set()
        return False
    return True


def _stale(ctx: Context, record: RunRecord, final: dict[str, Any]) -> RunRecord:
    """A runner whose lease was taken over writes nothing about the key any more (no snapshot, no
    checkpoint, no session): only its own run's ending, saying why, without a fence."""
    why = f"stopped: another runner took over the lease of {ctx.key}; this runner's writes were refused"
    record.outcome, record.error = Outcome.CANCELLED, why
    ctx.store.update_run(record.id, **{**final, "outcome": Outcome.CANCELLED, "error": why})
    return record


def _abandon(ctx: Context, session: SessionRecord, record: RunRecord, exc: BaseException) -> None:
    """Best effort: record why the attempt stopped, so the run does not stay ``running``."""
    outcome = Outcome.CANCELLED if isinstance(exc, KeyboardInterrupt) else Outcome.FAILED
    error = str(_translate(exc)) or exc.__class__.__name__
    try:
        ctx.store.update_run(record.id, outcome=outcome, ended_at=time.time(), error=error)
        session.status, session.last_outcome = SessionStatus.ACTIVE, outcome
        ctx.store.save_session(session, fence=ctx.fence)
    except BatonError:
        pass  # the store itself is failing (a full disk): the next run marks this one crashed


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DiskFull(f"no space left on the device ({exc.filename or 'BATON_HOME'}); free some space")
    return exc


def _last_usage_total(ctx: Context, session_id: str | None, thread: str | None = None) -> dict[str, Any]:
    """The cumulative counters the last run of conversation ``session_id`` ended with (looked up in the
    runs of the key's ``thread``, or of another thread of the key's agent and repo)."""
    key = ctx.key
    for record in ctx.store.list_runs(key.agent, key.repo.slug, thread or key.thread, limit=50):
        if record.session_id_out == session_id and record.usage.get("thread_total"):
            total: dict[str, Any] = record.usage["thread_total"]
            return total
    return {}


def usage_delta(total: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Per-run usage from a thread's cumulative counters; the total is kept for the next delta."""
    counters = {k: v for k, v in total.items() if isinstance(v, int | float)}
    if any(v < before.get(k, 0) for k, v in counters.items()):
        before = {}  # the thread's counters went back (an older transcript was restored): start over
    return {**{k: v - before.get(k, 0) for k, v in counters.items()}, "thread_total": total}
