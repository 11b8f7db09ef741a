"""Routes: the forge loop — bound threads (list, show one with its events, turns and budgets; bind and
unbind), its outcomes per repository and agent (:mod:`baton.forge.data.outcomes`) and a reconcile on demand;
and its start with the service (:func:`start`): the operator's forge
configuration, the publisher of forge turns on this service's executor, and the schedule (a reconcile
every ``forge_reconcile`` seconds, the heal of waiting events in between).

A forge conversation is addressed as ``/v1/forge/threads/{forge}/{owner}/{name}/{number}``; GitLab's
merge request ``!N`` (a thread apart from issue ``#N``'s) as the same with ``?pr=true``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from baton.fleet.executor import Executor
from baton.forge.background.reconcile import reconcile
from baton.forge.background.schedule import Schedule
from baton.forge.data.config import ForgeSettings
from baton.forge.data.model import ForgeError, ForgeUnreachable
from baton.forge.data.outcomes import outcomes
from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import AlreadyBound, bind_thread, thread_state, unbind_thread
from baton.forge.writes import publish
from baton.models import iso
from baton.service.auth import Actor, require
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import Store

router = APIRouter(tags=["forge"])
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]
Runner = Annotated[Actor, Depends(require(TokenScope.RUN))]
MergeRequest = Annotated[
    bool | None,
    Query(
        description="true: the thread of the merge request of that number, where a forge numbers issues "
        "and merge requests apart (GitLab's !N); absent: the issue's own thread, never merge request !N's "
        "(where one sequence numbers both: the issue's or PR's of that number)"
    ),
]
NO_FORGE = 'no forge is configured: add [forge.<name>] and [repo."owner/name"] to config.toml'
PATH = "/v1/forge/threads/{forge}/{owner}/{name}/{number}"


def start(settings: Settings, store: Store, executor: Executor, config: ForgeSettings) -> Schedule | None:
    """The forge loop of this service (None when no forge is configured): forge turns this service's
    executor ends are published, and the schedule runs."""
    if not config.forges:
        return None
    loop = publish.compose(settings, store, config, executor.submit, publishing=True, cancel=executor.cancel)
    return Schedule(loop, settings.forge_reconcile)


def loop_of(request: Request) -> ForgeLoop:
    schedule: Schedule | None = request.app.state.forge
    if schedule is None:
        raise HTTPException(
            404, 'no forge is configured: add [forge.<name>] and [repo."owner/name"] to config.toml'
        )
    return schedule.loop


class BindBody(BaseModel):
    forge: str = Field(description="the configured forge's name")
    repo: str = Field(description="the forge's full name of the repository: owner/name", max_length=201)
    number: int = Field(ge=1, description="the issue or pull request")
    agent: str | None = Field(None, description="default: the repository's agent")
    thread: str | None = Field(None, description="default: issue-N or pr-N")
    pr: bool = Field(False, description="GitLab: the number is a merge request's (!N), not an issue's")


@router.get("/v1/forge/threads", summary="Threads bound to issues and pull requests")
def threads(
    request: Request,
    _actor: Reader,
    status: Annotated[BindingStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    loop = loop_of(request)
    return [b.to_json() for b in forge_store(loop.store).list_bindings(status=status, limit=limit)]


@router.get(
    "/v1/forge/threads/{forge}/{owner}/{name}/{number}",
    summary="A bound thread: its issue or PR, feedback events and their sources, turns, budgets",
)
def thread(
    request: Request, _actor: Reader, forge: str, owner: str, name: str, number: int, pr: MergeRequest = None
) -> dict[str, Any]:
    state = thread_state(loop_of(request), forge, f"{owner}/{name}", number, bool(pr))
    if state is None:
        raise HTTPException(
            404, f"{forge}:{owner}/{name}{'!' if pr else '#'}{number} is not bound to a thread"
        )
    return state


@router.post(
    "/v1/forge/threads",
    status_code=201,
    summary="Bind an issue or PR to a thread",
    responses={
        404: {"description": "the forge has no such issue or pull request"},
        409: {"description": "the issue or PR is bound already, to another agent or thread"},
        422: {"description": "bad input: an unknown agent, a bad thread, a repository not configured"},
        502: {"description": "the forge refused baton's token (its variable named) or failed"},
    },
)
def bind(request: Request, actor: Runner, body: BindBody) -> dict[str, Any]:
    """Bind an issue or PR to a thread: the agent is checked as ``baton run -a`` checks it (422), the
    issue or PR is asked of the forge (404 when it has none); binding it again as bound returns the
    binding, with another agent or thread is a 409."""
    loop = loop_of(request)
    try:
        binding = bind_thread(
            loop, body.forge, body.repo, body.number, body.agent, body.thread, actor.name, pr=body.pr
        )
    except AlreadyBound as exc:
        raise HTTPException(409, str(exc)) from None
    except (ForgeUnreachable, ForgeError) as exc:
        raise HTTPException(502, str(exc)) from None
    return binding.to_json()


@router.delete(
    "/v1/forge/threads/{forge}/{owner}/{name}/{number}",
    summary="Unbind: feedback no longer reaches the thread",
)
def unbind(
    request: Request, actor: Runner, forge: str, owner: str, name: str, number: int, pr: MergeRequest = None
) -> dict[str, Any]:
    conversation = f"{forge}:{owner}/{name}{'!' if pr else '#'}{number}"
    if unbind_thread(loop_of(request), forge, f"{owner}/{name}", number, actor.name, bool(pr)) is None:
        raise HTTPException(404, f"{conversation} is not bound to a thread")
    return {"unbound": conversation}


class SpreadOut(BaseModel):
    """A distribution: how many values, their sum, median, 90th percentile (nearest rank), largest."""

    count: int
    sum: float
    median: float | None = Field(description="null when there is no value")
    p90: float | None
    max: float | None


class OutcomeOut(BaseModel):
    """What one agent's threads on one repository came to (definitions: docs/forge.md, Outcomes)."""

    forge: str
    repo: str = Field(description="the forge's full name: owner/name")
    agent: str
    threads_started: int = Field(description="threads bound to an issue or PR")
    prs_opened: int = Field(description="pull requests baton opened for an issue's thread")
    prs_merged: int = Field(description="of those, merged")
    prs_closed_unmerged: int = Field(description="of those, closed without a merge")
    merged_rate: float | None = Field(description="merged ÷ (merged + closed unmerged)")
    rounds_to_green: SpreadOut = Field(description="per merged PR: feedback turns until its last push")
    first_push_seconds: SpreadOut = Field(description="per thread: from its binding to its first push")
    ci_fix_seconds: SpreadOut = Field(description="per CI failure: to the push after which it is gone")
    feedback_accepted: int = Field(description="feedback events accepted (not dropped)")
    feedback_answered: int = Field(description="of those, whose turn pushed, answered or asked")
    answered_rate: float | None = Field(description="answered ÷ accepted")
    waiting: int = Field(description="threads waiting on a person now (needs_human)")
    waiting_seconds: SpreadOut = Field(description="how long each of them has waited")


class OutcomesOut(BaseModel):
    """The forge loop's outcomes per forge, repository and agent."""

    at: str = Field(description="when they were computed (ISO 8601, UTC)")
    since: str | None = Field(description="threads bound since then (null: every thread)")
    repos: list[OutcomeOut]


@router.get(
    "/v1/forge/outcomes",
    summary="The forge loop's outcomes per repository and agent",
    response_model=OutcomesOut,
)
def forge_outcomes(
    request: Request,
    _actor: Reader,
    days: Annotated[int | None, Query(ge=1, le=3650, description="threads bound in the last days")] = None,
) -> dict[str, Any]:
    """Threads started, PRs opened, merged and closed unmerged, rounds of feedback to green, time to
    the first push and to a CI failure's fix, feedback answered of accepted, threads waiting on a
    person — what ``/metrics`` and the dashboard show, from the store (no forge needs to be
    configured here: a service that only shows a fleet's store answers too)."""
    now = time.time()
    since = now - days * 86_400 if days is not None else None
    rows = outcomes(request.app.state.store, now, since)
    return {"at": iso(now), "since": iso(since), "repos": [row.to_json() for row in rows]}


@router.post("/v1/forge/reconcile", summary="Reconcile every configured repository now")
async def reconcile_now(request: Request, _actor: Runner) -> dict[str, Any]:
    loop = loop_of(request)
    report = await run_in_threadpool(reconcile, loop)
    return report.to_json()
