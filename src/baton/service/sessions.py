"""Routes: sessions — list (filtered, paginated), show one with its recent runs, reset.

A key is ``(agent, repo, thread)`` and a repo slug holds slashes (``github.com/acme/api``), so one
session is addressed by query parameters, ``GET /v1/session?agent=&repo=&thread=``, rather than by a
path whose segments would be ambiguous; ``repo`` takes the slug, the URL or the local path, as the CLI
does. Reset is ``POST /v1/sessions/reset`` with the key and a scope in the body (admin), the same
operation as ``baton sessions reset``: archived first, audited with the token's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from baton.asking.pending import waiting
from baton.forge.background.schedule import Schedule
from baton.forge.data.config import ForgeSettings
from baton.forge.turn.threads import key_state
from baton.models import SessionStatus
from baton.service.auth import Actor, require
from baton.service.fields import Agent, Thread
from baton.service.records import TokenScope
from baton.service.runs import slug_of
from baton.sessions.lineage import lineage
from baton.sessions.manage import Scope, get_session, reset_session, resolve_key
from baton.settings import Settings
from baton.store.base import Store

router = APIRouter(tags=["sessions"])
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]
Admin = Annotated[Actor, Depends(require(TokenScope.ADMIN))]
AgentQ = Annotated[Agent, Query(description="the agent, by name: the enum lists every registered agent")]
RepoQ = Annotated[str, Query(description="the repo's slug (github.com/acme/api), URL or local path")]
ThreadQ = Annotated[Thread, Query(description="the unit of work, e.g. issue-42")]


class SessionOut(BaseModel):
    agent: str
    repo: str = Field(description="slug")
    thread: str
    repo_url: str
    branch: str
    worktree: str
    session_id: str | None = Field(description="the agent's own conversation id")
    base: str | None
    status: SessionStatus
    attempts: int
    last_outcome: str | None
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    base_thread: str | None = Field(None, description="stacked: the thread whose branch this one follows")
    base_sha: str | None = Field(None, description="the base commit the branch is on")
    origin: dict[str, Any] | None = Field(None, description="a fork's or a hand-off's source conversation")
    pending_sync: dict[str, Any] | None = Field(None, description="a sync between turns not yet told")


class SessionPage(BaseModel):
    """One page, most recently used first; ``next_offset`` is null on the last page."""

    sessions: list[SessionOut]
    limit: int
    offset: int
    next_offset: int | None


class RunAttempt(BaseModel):
    """One attempt (an agent process) of the key, as ``baton runs show --json`` prints it."""

    run_id: str
    attempt: int
    mode: str
    prompt_kind: str
    outcome: str
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    session_id_in: str | None
    session_id_out: str | None
    exit_code: int | None
    result: str | None
    error: str | None
    note: str | None
    usage: dict[str, Any]
    cost_usd: float | None
    sync: dict[str, Any] | None = Field(None, description="what syncing with upstream brought in")
    resets_at: str | None = Field(None, description="rate_limited: when the agent's usage quota resets")
    limit_kind: str | None = Field(None, description="rate_limited: which quota (five_hour, seven_day…)")
    question: dict[str, Any] | None = Field(
        None, description="needs_input: what the agent asked ({text, options})"
    )


class QuestionOut(BaseModel):
    """The question a thread waits on: its last turn ended ``needs_input``."""

    text: str
    options: list[str]
    run_id: str = Field(description="the run that asked")
    asked_at: str | None


class SessionDetail(SessionOut):
    runs: list[RunAttempt] = Field(description="the most recent runs, newest first")
    lineage: dict[str, Any] = Field(description="forks, hand-offs and stacking (as `baton sessions show`)")
    question: QuestionOut | None = Field(
        None, description="the question the thread waits on (POST /v1/answers answers it); null when none"
    )
    forge: dict[str, Any] | None = Field(
        None,
        description=(
            "null unless the key is bound to a forge issue or PR: then its binding (conversation, "
            "status, note, pr), links to the issue and PR, the newest feedback events (kind, actor, "
            "url, status, reason, run_id; never a comment's text), the turns and the budget spent "
            "(as `baton sessions show --json` and GET /v1/forge/threads/...)"
        ),
    )


class ResetIn(BaseModel):
    agent: Agent
    repo: str = Field(description="slug, URL or local path")
    thread: Thread
    scope: Scope = Field(Scope.CONVERSATION, description="what to remove (it is archived first)")


class ResetOut(BaseModel):
    """What the reset removed, and where what it held is kept (``archive_ref``, ``restore``,
    ``conversation_archive``)."""

    key: str
    scope: Scope
    archive_ref: str | None
    archive_commit: str | None
    cache: str | None
    restore: str | None
    conversation_archive: str | None
    worktree: bool
    branch: str | None
    checkpoint: bool
    transcript_files: int
    snapshot: bool
    runs: int
    session: bool


def _state(request: Request) -> tuple[Settings, Store]:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    return settings, store


@router.get("/v1/sessions", response_model=SessionPage, summary="List sessions (filtered, paginated)")
def list_sessions(
    request: Request,
    actor: Reader,
    agent: str | None = None,
    repo: Annotated[str | None, Query(description="a slug, git URL or local path")] = None,
    status: SessionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> SessionPage:
    """Most recently used first. ``repo`` names a repository as a run does (its slug,
    ``github.com/acme/api``, its git URL or its path here); page with ``limit`` and ``offset``
    (``next_offset`` is null on the last page)."""
    _settings, store = _state(request)
    # one row more than the page tells whether there is a next page without counting them all
    rows = store.list_sessions(agent=agent, repo=slug_of(repo), status=status, limit=limit + 1, offset=offset)
    return SessionPage(
        sessions=[SessionOut(**s.to_json()) for s in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
    )


@router.get("/v1/session", response_model=SessionDetail, summary="Show one session (by key) with its runs")
def show_session(
    request: Request,
    actor: Reader,
    agent: AgentQ,
    repo: RepoQ,
    thread: ThreadQ,
    runs: Annotated[int, Query(ge=0, le=1000, description="how many recent runs")] = 20,
) -> SessionDetail:
    """A session is addressed by its key in query parameters, since a repo slug holds slashes; ``repo``
    may be the slug, the URL or the local path. 404 when the key has no session."""
    _settings, store = _state(request)
    key = resolve_key(store, agent, repo, thread)
    session = get_session(store, key)
    attempts = store.list_runs(key.agent, key.repo.slug, key.thread, limit=runs) if runs else []
    runs_out = [RunAttempt(**_attempt(r.to_json())) for r in attempts]
    forge = key_state(store, key.agent, key.repo.slug, key.thread, forge_config(request), last=FORGE_EVENTS)
    asked = waiting(store, key.agent, key.repo.slug, key.thread)
    question = QuestionOut(**asked.to_json()) if asked else None
    return SessionDetail(
        **session.to_json(), runs=runs_out, lineage=lineage(store, session), forge=forge, question=question
    )


FORGE_EVENTS = 20  # the newest feedback events of a bound key's ``forge``


def forge_config(request: Request) -> ForgeSettings | None:
    """The service's forge configuration (for a bound thread's links and budget), None without one."""
    schedule: Schedule | None = getattr(request.app.state, "forge", None)
    return schedule.loop.config if schedule is not None else None


def _attempt(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in RunAttempt.model_fields}


@router.post("/v1/sessions/reset", response_model=ResetOut, summary="Reset a key (archived first; audited)")
def reset(request: Request, body: ResetIn, actor: Admin) -> ResetOut:
    """``baton sessions reset``: what ``scope`` removes is archived first (the worktree under a git ref,
    the conversation as an export file) and the result says where. Audited with the token's name. 409
    while a run holds the key."""
    settings, store = _state(request)
    key = resolve_key(store, body.agent, body.repo, body.thread)
    result = reset_session(store, settings, key, body.scope, actor=actor.name)
    return ResetOut(**result.to_json())
