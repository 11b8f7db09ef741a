"""Preparing a key for its attempts, under its lease: one call of :func:`prepare` returns a frozen
:class:`~baton.runner.state.Prepared`. In order: every refusal that needs only the store (the lineage
the request names looked up once) → the branch taken from another key of this machine
(:mod:`baton.sync.sharing`) → the worktree → the key's own space → the session record and a
fork's or hand-off's first decision (so a refusal there still removes what was made now) → the sync
with upstream. Nothing here is decided again by an attempt.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton import tracing
from baton.errors import BadInput
from baton.keys import Key
from baton.models import Access, Mode, Outcome, PromptKind, SessionRecord, SyncHow
from baton.runner.crashed import stop_left_running
from baton.runner.decide import decide_fork, fork_source
from baton.runner.request import RunRequest
from baton.runner.state import Context, Decision, ForkSource, Prepared
from baton.sync.engine import SyncReport
from baton.sync.handoff import (
    CaughtUp,
    catch_up,
    changed_files,
    handoff_recap,
    handoff_source,
    recap_budget,
    seed_worktree,
)
from baton.sync.sharing import take_branch
from baton.sync.upstream import sync_before_turn, upstream_session
from baton.workspace import keyspace, portable
from baton.workspace.gitcmd import ref_exists
from baton.workspace.workdirs import Worktree, branch_for


@dataclass(frozen=True)
class Lineage:
    """What the request's lineage options name, looked up once before the first write."""

    fork: ForkSource | None = None
    handoff: tuple[Key, SessionRecord] | None = None  # the source key and its session
    upstream: SessionRecord | None = None  # a new stacked key's upstream thread
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Opening:
    """A fork's or a hand-off's first decision, with a hand-off's recap and source agent."""

    decision: Decision | None = None
    recap: str = ""
    source: str = ""


@dataclass(frozen=True)
class _Synced:
    """What syncing with upstream before the first attempt did."""

    note: str | None = None
    record: dict[str, Any] | None = None
    text: str = ""
    conflicted: bool = False


@tracing.traced("run.prepare")
def prepare(ctx: Context, stored: SessionRecord | None) -> Prepared:
    """The worktree and the session record; a worktree made now is removed again if the run is
    refused before its first attempt starts. The lineage is a fork's source, a hand-off's source or a
    stacked key's upstream; the worktree is a hand-off's seeded from its source's work, or a key known
    to the store brought to its checkpoint; the key's space gets its agent home seeded from the base
    home (a conversation still in the base home moved in); the sync runs for a key that already had a
    session. ``stored``: the key's session record (None: a new key), read under its lease."""
    key = ctx.key
    lineage = _refuse(ctx, stored)
    branch = key_branch(ctx.request, key, stored)
    # another key of this machine may have the branch checked out: parked (its dead runs' agents ended)
    taken = take_branch(ctx.workdirs, ctx.store, key, branch, functools.partial(stop_left_running, ctx.store))
    base = stored.base if stored else (lineage.upstream.branch if lineage.upstream else ctx.request.base)
    seeded = _seed(ctx, lineage, branch) if stored is None else None
    caught = _catch_up(ctx, stored, branch) if stored is not None else None
    made, note = portable.worktree_from_store(  # a caught-up key's new state is here, not in the store
        ctx.store,
        ctx.workdirs,
        key,
        branch,
        _start_from(ctx, lineage, base),
        known=stored is not None and not caught,
    )
    warnings = lineage.warnings + (_lost_store(ctx, made) if stored is None else ())
    new_space = keyspace.prepare_space(ctx.settings, key, ctx.agent)
    moved = _move_in(ctx, stored, made.path)
    try:
        session = stored or _new_session(ctx, lineage, branch, base, made)
        session.worktree = str(made.path)
        opening = _opening(ctx, lineage, session)
    except BadInput:
        if stored is None:
            ctx.workdirs.discard_new_worktree(key, made)
            if new_space:
                keyspace.remove_space(ctx.settings, key)
        raise
    synced = _sync(ctx, session) if stored is not None else _Synced()
    return Prepared(
        session=session,
        worktree=made.path,
        note=_notes(
            ctx.request.carried_for,
            taken.note,
            seeded,
            caught.note if caught else None,
            note,
            moved,
            synced.note,
        ),
        sync=synced.record,
        sync_text="\n\n".join(t for t in (taken.text, _caught_text(ctx, stored, caught), synced.text) if t),
        conflicted=synced.conflicted,
        fork=lineage.fork,
        first=opening.decision,
        recap=opening.recap,
        source=opening.source,
        warnings=warnings,
    )


def key_branch(request: RunRequest, key: Key, stored: SessionRecord | None) -> str:
    """The branch the key's worktree is on: its session's once it has one (a request naming another is
    refused: :func:`_refuse`), else the request's, else ``baton/<agent>/<thread>``. The runner takes
    this branch's lease before :func:`prepare` (:mod:`baton.store.branchlease`)."""
    return stored.branch if stored else (request.branch or branch_for(key))


def _catch_up(ctx: Context, stored: SessionRecord, branch: str) -> CaughtUp | None:
    """The other agent of the thread's fallback pair worked since this key did: its work first."""
    source_agent = ctx.request.catch_up_from
    if source_agent is None:
        return None
    source, source_session = handoff_source(ctx.store, ctx.key, source_agent)
    return catch_up(ctx.store, ctx.workdirs, source, source_session, ctx.key, branch)


def _caught_text(ctx: Context, stored: SessionRecord | None, caught: CaughtUp | None) -> str:
    """What the conversation is told of the other agent's turns and changes since it last worked."""
    source_agent = ctx.request.catch_up_from
    if caught is None or stored is None or source_agent is None:
        return ""
    key = ctx.key
    runs = ctx.store.list_runs(source_agent, key.repo.slug, key.thread, limit=200)
    since = stored.last_used_at or 0.0
    turns = [r for r in reversed(runs) if r.started_at >= since and r.outcome != Outcome.SESSION_LOST]
    budget = recap_budget(ctx.agent, others=ctx.resolved.instruction)
    recap = handoff_recap(turns, caught.changed, source_agent, budget)
    return (
        f"While you could not work on this thread (your usage quota was spent), {source_agent} carried it "
        "in a conversation of its own. Its work is now in your working directory, committed and "
        f"uncommitted (this was {caught.old[:12]}, it is {caught.new[:12]} now). What it was asked and "
        f"answered since you last worked, and the files changed since then:\n\n{recap}"
    )


def _refuse(ctx: Context, session: SessionRecord | None) -> Lineage:
    """Every refusal that needs only the store, before the first write; what the lineage options name."""
    key, request = ctx.key, ctx.request
    if session and request.branch and request.branch != session.branch:
        raise BadInput(f"{key} already works on branch {session.branch!r}; reset its worktree to change it")
    if request.mode == Mode.RESUME and (session is None or not session.agent_session_id):
        raise BadInput(f"{key} has no conversation to resume")
    fork = fork_source(ctx, session) if request.mode == Mode.FORK else None
    handoff = None
    if request.handoff_from:
        if session and session.agent_session_id:
            raise BadInput(
                f"{key} already has a conversation; a hand-off starts a new one (reset its conversation "
                "first, or run it without --handoff-from)"
            )
        handoff = handoff_source(ctx.store, key, request.handoff_from)
    upstream, warnings = _stacking(ctx, session)
    return Lineage(fork, handoff, upstream, warnings)


def _stacking(ctx: Context, session: SessionRecord | None) -> tuple[SessionRecord | None, tuple[str, ...]]:
    """A new stacked key's upstream session; a refusal or a warning for a known key's --base-thread."""
    key, thread = ctx.key, ctx.request.base_thread
    if not thread:
        return None, ()
    if session is None:
        return upstream_session(ctx.store, key, thread), ()
    if session.base_thread not in (None, thread):
        raise BadInput(
            f"{key} already exists on base {session.base or 'the default branch'!r}; its base thread "
            "cannot change (reset its worktree to start again)"
        )
    if session.base_thread is None:
        # a dispatcher repeats its flags every turn: after a merged upstream the key is on the
        # default branch, which a repeated --base-thread must not undo or refuse
        return None, (
            f"{key} is on {session.base or 'the default branch'} (not stacked, or its stack was merged); "
            f"--base-thread {thread} applies only when a thread is created",
        )
    return None, ()


def _move_in(ctx: Context, session: SessionRecord | None, worktree: Path) -> str | None:
    """A conversation that ran before key spaces is still in the agent's shared base home: move it
    into the key's own home before deciding (a failed move leaves the decision to hydrate or recover)."""
    if session is None or not session.agent_session_id:
        return None
    return keyspace.adopt_legacy(ctx.settings, ctx.key, ctx.agent, session.agent_session_id, worktree)


def _lost_store(ctx: Context, made: Worktree) -> tuple[str, ...]:
    """A key the store does not know whose worktree exists: its session row went missing."""
    if made.built:
        return ()
    return (
        f"the store has no session for {ctx.key}, but its worktree exists at {made.path}: was "
        f"{ctx.settings.db_path.name} deleted or replaced? A NEW conversation starts; the old "
        f"one's transcript may still be under {ctx.agent.home} (`baton doctor` lists it)",
    )


def _start_from(ctx: Context, lineage: Lineage, base: str | None) -> str | None:
    """Where a new branch starts: a stacked one from the upstream thread's own branch in the cache
    (the agent's latest work there), not from the remote's copy of it, which may be older."""
    if lineage.upstream is None or base is None:
        return base
    cache = ctx.workdirs.cache_path(ctx.key.repo)
    local = f"refs/heads/{base}"
    return local if (cache / "HEAD").is_file() and ref_exists(cache, local) else base


def _seed(ctx: Context, lineage: Lineage, branch: str) -> str | None:
    """A hand-off's new worktree starts from the source's work (its branch tip and uncommitted files)."""
    if lineage.handoff is None:
        return None
    source, source_session = lineage.handoff
    return seed_worktree(ctx.store, ctx.workdirs, source, source_session, ctx.key, branch)


def _opening(ctx: Context, lineage: Lineage, session: SessionRecord) -> _Opening:
    """A fork's or a hand-off's first attempt, decided before the first write; the lineage recorded."""
    if lineage.fork is not None:
        decision = decide_fork(ctx, session, lineage.fork)
        thread = ctx.request.fork_from or ctx.key.thread
        session.origin = _origin("fork", ctx.key.agent, thread, decision.session_id)
        return _Opening(decision)
    if lineage.handoff is None:
        return _Opening()
    source, source_session = lineage.handoff
    runs = ctx.store.list_runs(source.agent, source.repo.slug, source.thread, limit=1000)
    earlier = [r for r in reversed(runs) if r.outcome != Outcome.SESSION_LOST]
    changed = changed_files(ctx.workdirs, source, source_session, store=ctx.store)
    budget = recap_budget(ctx.agent, others=ctx.resolved.instruction)  # the whole prompt must fit the CLI
    recap = handoff_recap(earlier, changed, source.agent, budget)
    session.origin = _origin("handoff", source.agent, source.thread, source_session.agent_session_id)
    note = f"handed off from {source.agent}'s conversation {source_session.agent_session_id}"
    return _Opening(Decision(Mode.FRESH, None, PromptKind.HANDOFF, note=note), recap, source.agent)


def _sync(ctx: Context, session: SessionRecord) -> _Synced:
    """Bring upstream in before the first attempt (and tell it what a sync between turns did)."""
    resolved, how = ctx.resolved, ctx.resolved.sync
    if how == SyncHow.OFF and session.agent_session_id is None and session.last_outcome == Outcome.FAILED:
        # its agent never ran (its first setup failed, say): nothing of its own to keep apart, so it
        # takes the base's fixes (a setup repaired on the default branch) instead of failing again
        how = SyncHow.MERGE
    report, note = sync_before_turn(ctx.workdirs, ctx.key, session, how, resolved.on_conflict)
    reports = [r for r in (SyncReport.from_json(session.pending_sync), report) if r is not None]
    conflicted = report is not None and report.result == "conflict" and not report.left_for_agent
    record = report.to_json() if report is not None else (session.pending_sync or None)
    commit = resolved.access == Access.FULL  # below full the walls keep the index and refs read-only
    text = "\n\n".join(r.prompt_text(commit) for r in reports if r.result != "unchanged")
    if not conflicted:
        session.pending_sync = None  # told now (the session is saved when the attempt starts)
    return _Synced(note, record, text, conflicted)


def _new_session(
    ctx: Context, lineage: Lineage, branch: str, base: str | None, made: Worktree
) -> SessionRecord:
    key, now = ctx.key, time.time()
    record = SessionRecord(
        agent=key.agent,
        repo=key.repo.slug,
        thread=key.thread,
        repo_url=key.repo.url,
        branch=branch,
        worktree=str(made.path),
        base=base,
        created_at=now,
        last_used_at=now,
        expires_at=now + ctx.settings.ttl_days * 86400,
        base_thread=lineage.upstream.thread if lineage.upstream else None,
        base_sha=made.start,
    )
    if lineage.handoff is not None:  # the same work: the same base as the source's
        source = lineage.handoff[1]
        record.base, record.base_thread, record.base_sha = source.base, source.base_thread, source.base_sha
    return record


def _notes(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _origin(kind: str, agent: str, thread: str, session_id: str | None) -> dict[str, Any]:
    return {"kind": kind, "agent": agent, "thread": thread, "session_id": session_id, "at": time.time()}
