"""Routes: spending caps. ``GET /v1/budget`` shows a thread's caps (``agent``, ``repo``, ``thread``), a
repository's (``repo`` and ``repo_wide``) or an API token's (``token``): each cap, its spend, its
raises, as ``baton budget --json``. ``POST /v1/budget`` raises them (admin: a raise lets money be
spent), each amount a positive number, all checked before the first is written; a thread named in it
that was parked at its cap is resumed when no cap holds it any more and it is a thread of its own: its
parked instruction is queued as a run (its id in ``run_id``). A plan's or a forge thread resumes where
it lives (``resumed`` says which).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from pydantic import BaseModel, Field, Strict

from baton.caps.budget import Target, raise_caps, show
from baton.caps.check import Standing
from baton.caps.model import MAXIMA, Measure, Scope, parse_raise, thread_subject
from baton.caps.parked import parked
from baton.errors import BadInput, NotFound
from baton.fleet import jobs
from baton.forge.owners import Owner, owner
from baton.keys import Key, parse_repo
from baton.runner.capped import blocking, resume_request
from baton.service.auth import Actor, require
from baton.service.fields import Agent, Thread, TokenName
from baton.service.records import TokenScope
from baton.service.runs import ExecutorDep, SettingsDep, StoreDep
from baton.service.tables import token_store
from baton.sessions.manage import resolve_key
from baton.store import Store

router = APIRouter(tags=["budget"])
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]
Admin = Annotated[Actor, Depends(require(TokenScope.ADMIN))]


class CapOut(BaseModel):
    """One cap of the scope as it stands."""

    scope: Scope
    subject: str = Field(description="agent:repo:thread, the repo's slug, or the token's name")
    measure: Measure
    cap: float | None = Field(description="as configured (null: no cap)")
    raised: float = Field(description="the sum of its raises")
    limit: float | None = Field(description="cap + raised: a turn does not start at or past it")
    spent: float
    reached: bool


class BudgetOut(BaseModel):
    """Whose caps, each cap; after a raise, whether a thread parked at its cap was resumed."""

    target: str
    caps: list[CapOut]
    raised: int = Field(0, description="raises recorded by this request")
    resumed: str | None = Field(None, description="what became of the thread parked at its cap, if any")
    run_id: str | None = Field(None, description="the run queued to resume it (its parked instruction)")


# a raise: a positive number up to the cap's maximum (never NaN or infinite), tokens and turns whole
Usd = Annotated[float, Strict(), Field(gt=0, le=MAXIMA[Measure.USD])]
Tokens = Annotated[int, Strict(), Field(gt=0, le=int(MAXIMA[Measure.TOKENS]))]
Minutes = Annotated[float, Strict(), Field(gt=0, le=MAXIMA[Measure.MINUTES])]
Turns = Annotated[int, Strict(), Field(gt=0, le=int(MAXIMA[Measure.TURNS]))]


class BudgetIn(BaseModel):
    """Whose caps (a thread; a repository with ``repo_wide``; or a token) and by how much to raise each."""

    agent: Agent | None = None
    repo: str | None = Field(None, max_length=2048, description="the repo's slug, URL or local path")
    thread: Thread | None = None
    repo_wide: bool = Field(False, description="the repository's caps (all its threads)")
    token: TokenName | None = Field(None, description="an API token's caps")
    usd: Usd | None = Field(None, description="USD to add to the cap")
    tokens: Tokens | None = Field(None, description="tokens to add to the cap")
    minutes: Minutes | None = Field(None, description="minutes to add to the cap")
    turns: Turns | None = Field(None, description="turns to add to the cap")


def target_of(
    store: Store, agent: str | None, repo: str | None, thread: str | None, repo_wide: bool, token: str | None
) -> tuple[Target, Key | None]:
    """Whose caps, and the thread named; BadInput (422) for a mix that names none, NotFound (404) for
    an unknown token."""
    key = resolve_key(store, agent, repo, thread) if agent and repo and thread else None
    if token is not None:
        if repo_wide:
            raise BadInput("give token or repo_wide, not both")
        if token_store(store).get_token(token) is None:
            raise NotFound(f"no API token {token!r}")
        return Target(Scope.TOKEN, token), key
    if repo_wide:
        if not repo:
            raise BadInput("repo_wide needs repo")
        return Target(Scope.REPO, key.repo.slug if key else parse_repo(repo).slug), key
    if key is None:
        raise BadInput("name the thread (agent, repo, thread), the repository (repo, repo_wide) or a token")
    return Target(Scope.THREAD, thread_subject(key.agent, key.repo.slug, key.thread)), key


def _out(target: Target, rows: list[Standing], **more: Any) -> BudgetOut:
    return BudgetOut(target=target.describe(), caps=[CapOut(**r.to_json()) for r in rows], **more)


@router.get("/v1/budget", response_model=BudgetOut, summary="Show a thread's, repository's or token's caps")
def get_budget(
    actor: Reader,
    store: StoreDep,
    settings: SettingsDep,
    agent: Annotated[Agent | None, Query()] = None,
    repo: Annotated[str | None, Query(max_length=2048)] = None,
    thread: Annotated[Thread | None, Query()] = None,
    repo_wide: bool = False,
    token: Annotated[TokenName | None, Query()] = None,
) -> BudgetOut:
    """Each cap, its spend and raises (422 when the query names no thread, repository or token)."""
    target, key = target_of(store, agent, repo, thread, repo_wide, token)
    found = parked(store, key.agent, key.repo.slug, key.thread) if key else None
    return _out(target, show(settings, store, target, found))


@router.post("/v1/budget", response_model=BudgetOut, summary="Raise caps (and resume a thread parked there)")
def post_budget(
    body: BudgetIn,
    actor: Admin,
    store: StoreDep,
    settings: SettingsDep,
    executor: ExecutorDep,
    after: BackgroundTasks,
) -> BudgetOut:
    """Record the raises (audited ``caps.raised`` with the token's name) and resume the named thread
    when it was parked at a cap and none holds it now; nothing is written for a bad amount (422)."""
    given = {Measure.USD: body.usd, Measure.TOKENS: body.tokens, Measure.MINUTES: body.minutes}
    given[Measure.TURNS] = body.turns
    changes = {m: parse_raise(m, v) for m, v in given.items() if v is not None}
    target, key = target_of(store, body.agent, body.repo, body.thread, body.repo_wide, body.token)
    found = parked(store, key.agent, key.repo.slug, key.thread) if key else None
    made = raise_caps(store, target, changes, f"{actor.name} (through baton's API)")
    resumed, run_id = _resume(store, settings, key, actor) if made and key and found else (None, None)
    if run_id is not None:
        after.add_task(executor.submit, run_id)
    return _out(
        target, show(settings, store, target, found), raised=len(made), resumed=resumed, run_id=run_id
    )


def _resume(store: Store, settings: Any, key: Key, actor: Actor) -> tuple[str, str | None]:
    """What became of the parked thread, and the run queued for it (its parked instruction)."""
    who, where = owner(store, key.agent, key.repo.slug, key.thread)
    request = resume_request(store, key.agent, key.repo.slug, key.thread)
    if request is None:
        return "the thread was not parked at a cap", None
    if blocking(settings, store, key, request) is not None:
        return "still at a cap: not resumed", None
    if who == Owner.PLAN:
        return f"a plan's thread: run its plan again ({where}) to resume it", None
    if who == Owner.FORGE:
        return f"a forge thread: a reply on {where} from someone with write access resumes it", None
    job = jobs.submit(store, settings, request, actor.name)
    return "its parked instruction is queued", job.id
