"""Routes: spending caps. ``GET /v1/budget`` shows a thread's caps (``agent``, ``repo``, ``thread``),
``GET /v1/budget/repo`` a repository's, ``GET /v1/budget/token`` an API token's: each cap, its spend,
its raises, as ``baton budget --json``. ``POST`` to each raises them (admin: a raise lets money be
spent), each amount a positive number, all checked before the first is written; a thread parked at its
cap is resumed when no cap holds it any more and it is a thread of its own: its parked instruction is
queued as a run (its id in ``run_id``); a plan's or a forge thread resumes where it lives (``resumed``
says which). Three routes rather than one with a choice, so the schema says what each needs.
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
from baton.forge.turn.owners import Owner, owner
from baton.keys import Key, parse_repo
from baton.runner.capped import blocking, resume_request
from baton.service.auth import Actor, require
from baton.service.errors import Problem
from baton.service.fields import INTEGRAL, Agent, Thread, TokenName
from baton.service.records import TokenScope
from baton.service.runs import ExecutorDep, SettingsDep, StoreDep
from baton.service.sessions import AgentQ, ThreadQ
from baton.service.tables import token_store
from baton.sessions.manage import resolve_key
from baton.settings import Settings
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
Tokens = Annotated[int, Strict(), Field(gt=0, le=int(MAXIMA[Measure.TOKENS])), INTEGRAL]
Minutes = Annotated[float, Strict(), Field(gt=0, le=MAXIMA[Measure.MINUTES])]
Turns = Annotated[int, Strict(), Field(gt=0, le=int(MAXIMA[Measure.TURNS])), INTEGRAL]


class Amounts(BaseModel):
    """By how much to raise each cap (none: show them)."""

    usd: Usd | None = Field(None, description="USD to add to the cap")
    tokens: Tokens | None = Field(None, description="tokens to add to the cap")
    minutes: Minutes | None = Field(None, description="minutes to add to the cap")
    turns: Turns | None = Field(None, description="turns to add to the cap")

    def changes(self) -> dict[Measure, float]:
        """The raises, read as the CLI reads them (nothing is written before all are read)."""
        given = {Measure.USD: self.usd, Measure.TOKENS: self.tokens, Measure.MINUTES: self.minutes}
        given[Measure.TURNS] = self.turns
        return {m: parse_raise(m, v) for m, v in given.items() if v is not None}


class ThreadRaise(Amounts):
    """A thread's caps to raise; a thread parked at one resumes."""

    agent: Agent
    repo: str = Field(max_length=2048, description="the repo's slug, URL or local path")
    thread: Thread


class RepoRaise(Amounts):
    """A repository's caps (all its threads together) to raise."""

    repo: str = Field(max_length=2048, description="the repo's slug, URL or local path")


class TokenRaise(Amounts):
    """An API token's caps (every run it submits) to raise."""

    token: TokenName


RepoQ = Annotated[str, Query(max_length=2048, description="the repo's slug, URL or local path")]
TokenQ = Annotated[TokenName, Query(description="the API token's name")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such repository here, or no such API token (nothing written)"}
}


def thread_target(store: Store, agent: str, repo: str, thread: str) -> tuple[Target, Key]:
    key = resolve_key(store, agent, repo, thread)  # NotFound (404) for a repo that names nothing
    return Target(Scope.THREAD, thread_subject(key.agent, key.repo.slug, key.thread)), key


def repo_target(repo: str) -> Target:
    try:
        return Target(Scope.REPO, parse_repo(repo).slug)
    except BadInput:
        raise NotFound(f"no repository {repo[:200]!r} here") from None


def token_target(store: Store, token: str) -> Target:
    if token_store(store).get_token(token) is None:
        raise NotFound(f"no API token {token!r}")
    return Target(Scope.TOKEN, token)


def _out(target: Target, rows: list[Standing], **more: Any) -> BudgetOut:
    return BudgetOut(target=target.describe(), caps=[CapOut(**r.to_json()) for r in rows], **more)


@router.get("/v1/budget", response_model=BudgetOut, responses=NOT_FOUND, summary="Show a thread's caps")
def get_thread_budget(
    actor: Reader, store: StoreDep, settings: SettingsDep, agent: AgentQ, repo: RepoQ, thread: ThreadQ
) -> BudgetOut:
    """Each cap of the thread, its spend and raises (a run's own cap it parked at included)."""
    target, key = thread_target(store, agent, repo, thread)
    return _out(target, show(settings, store, target, parked(store, key.agent, key.repo.slug, key.thread)))


@router.get("/v1/budget/repo", response_model=BudgetOut, responses=NOT_FOUND, summary="Show a repo's caps")
def get_repo_budget(actor: Reader, store: StoreDep, settings: SettingsDep, repo: RepoQ) -> BudgetOut:
    target = repo_target(repo)
    return _out(target, show(settings, store, target))


@router.get("/v1/budget/token", response_model=BudgetOut, responses=NOT_FOUND, summary="Show a token's caps")
def get_token_budget(actor: Reader, store: StoreDep, settings: SettingsDep, token: TokenQ) -> BudgetOut:
    target = token_target(store, token)
    return _out(target, show(settings, store, target))


@router.post(
    "/v1/budget", response_model=BudgetOut, responses=NOT_FOUND, summary="Raise a thread's caps (it resumes)"
)
def raise_thread_budget(
    body: ThreadRaise,
    actor: Admin,
    store: StoreDep,
    settings: SettingsDep,
    executor: ExecutorDep,
    after: BackgroundTasks,
) -> BudgetOut:
    """Record the raises (audited ``caps.raised`` with the token's name) and resume the thread when it
    was parked at a cap and none holds it now; nothing is written for a bad amount (422)."""
    changes = body.changes()
    target, key = thread_target(store, body.agent, body.repo, body.thread)
    found = parked(store, key.agent, key.repo.slug, key.thread)
    made = raise_caps(store, target, changes, _by(actor))
    resumed, run_id = _resume(store, settings, key, actor) if made and found else (None, None)
    if run_id is not None:
        after.add_task(executor.submit, run_id)
    rows = show(settings, store, target, found)
    return _out(target, rows, raised=len(made), resumed=resumed, run_id=run_id)


@router.post("/v1/budget/repo", response_model=BudgetOut, responses=NOT_FOUND, summary="Raise a repo's caps")
def raise_repo_budget(body: RepoRaise, actor: Admin, store: StoreDep, settings: SettingsDep) -> BudgetOut:
    """Its threads parked at the repository's cap resume with their next turn (or a raise of each)."""
    changes, target = body.changes(), repo_target(body.repo)
    made = raise_caps(store, target, changes, _by(actor))
    return _out(target, show(settings, store, target), raised=len(made))


@router.post(
    "/v1/budget/token", response_model=BudgetOut, responses=NOT_FOUND, summary="Raise a token's caps"
)
def raise_token_budget(body: TokenRaise, actor: Admin, store: StoreDep, settings: SettingsDep) -> BudgetOut:
    changes, target = body.changes(), token_target(store, body.token)
    made = raise_caps(store, target, changes, _by(actor))
    return _out(target, show(settings, store, target), raised=len(made))


def _by(actor: Actor) -> str:
    return f"{actor.name} (through baton's API)"


def _resume(store: Store, settings: Settings, key: Key, actor: Actor) -> tuple[str, str | None]:
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
