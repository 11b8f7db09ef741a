"""Routes: runs. Submit one (stored ``queued`` before the 202, validated like ``baton run``), read it,
list them, stream its agent events (Server-Sent Events), cancel it. A run of the API is a job
(:mod:`baton.fleet.jobs`): its ``run_id`` is the job's id, and once it ran its record carries every field
of ``baton run --json``; its attempts have ids of their own, and every route takes either
(:mod:`baton.runner.runids`). The event stream is replayed from the job's event file, so a late
subscriber gets it from the start; the list pages as the sessions' does, and the 202 carries OpenAPI
links to the run's routes. What each route answers: docs/service.md (Runs over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from baton import allowlist, tracing
from baton.errors import BadInput, NotFound
from baton.fleet import jobs
from baton.fleet.executor import Executor
from baton.keys import parse_repo
from baton.models import Environment, JobRecord, JobStatus
from baton.runner.request import RunRequest
from baton.runner.runids import RunRef, resolve
from baton.service.auth import Actor, require
from baton.service.errors import Problem, json_errors, problems
from baton.service.records import TokenScope
from baton.service.schemas import body_model, view_model
from baton.settings import Settings
from baton.store import Store

router = APIRouter(prefix="/v1/runs", tags=["runs"])
RunId = Annotated[
    str,
    Path(
        description="the run's id (as `POST /v1/runs` returned it), an attempt's, or the last 8 characters",
        max_length=64,
    ),
]
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]
Runner = Annotated[Actor, Depends(require(TokenScope.RUN))]


class RunState(BaseModel):
    """A run's id and where it is."""

    run_id: str
    status: JobStatus


class JobView(BaseModel):
    """What a job says of itself: the fields a run has from its submission on."""

    run_id: str
    status: JobStatus = Field(description="queued, running or done")
    agent: str
    repo: str = Field(description="the repo's slug")
    thread: str
    actor: str = Field(description="the token that submitted it")
    submitted_at: str | None
    started_at: str | None
    ended_at: str | None
    outcome: str | None = Field(
        description="succeeded, failed, timed_out, cancelled, crashed, rate_limited (a spent usage "
        "quota: see resets_at), …; null until done"
    )
    error: str | None
    not_before: str | None = Field(
        None,
        description="queued again to wait for its credential's usage quota to reset: not started before "
        "this (its last attempt, rate_limited, says why)",
    )
    reruns: int = Field(
        0,
        description="times it was run again, resuming its conversation, because the process running it "
        "died mid-turn (at most the setting job_reruns, or its retries)",
    )


# Both derived from the runner's schema (baton.service.schemas); mypy sees the plain models.
if TYPE_CHECKING:
    RunBody = BaseModel
    RunView = JobView
else:
    RunBody = body_model("RunBody", "One instruction on one key, as ``baton run`` takes it.")
    RunView = view_model(
        "RunView",
        "A submitted run: its status, and once it ran, every field of ``baton run --json``.",
        JobView,
    )


class RunPage(BaseModel):
    """One page of submitted runs, newest first; ``next_offset`` is null on the last page."""

    runs: list[RunView]
    limit: int
    offset: int
    next_offset: int | None


# 401/403/404/422/... are documented for every /v1 operation by the app (baton.service.errors).
ENDED: dict[int | str, dict[str, Any]] = {409: {"model": Problem, "description": "the run already ended"}}
STREAM_ERRORS = json_errors(400, 401, 403, 404, 409, 413, 422, 500, 502, 507)


def _link(method: str, path: str, description: str) -> dict[str, Any]:
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": {"run_id": "$response.body#/run_id"},
        "description": description,
    }


# Where the 202 of a submission leads: the run's own routes, by the run_id it answered.
SUBMITTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "queued: the run's id and status, and links to its routes",
        "links": {
            "GetRun": _link("get", "/v1/runs/{run_id}", "the run: its status, then its result"),
            "RunEvents": _link("get", "/v1/runs/{run_id}/events", "the run's events as they come"),
            "CancelRun": _link("post", "/v1/runs/{run_id}/cancel", "cancel the run"),
        },
    },
    # a repo that names nothing here is valid by the schema (no schema can know the server's disk): its
    # status is the 404 documented here, which Schemathesis' positive checks expect of a valid body too
    404: {
        "model": Problem,
        "description": "no such repository: repo is not a git URL and no such directory exists on the "
        "service (nothing written)",
    },
    422: {
        "model": Problem,
        "description": "bad input, nothing written: a field or a rule between fields, or what no schema can "
        "say: the repo is a directory but not a git repository here, the agent's CLI or credentials are "
        "missing on the service, the instruction is over the agent's limit",
    },
    **problems(503),
}


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ExecutorDep = Annotated[Executor, Depends(_executor)]


def _ref(run_id: RunId, store: StoreDep) -> RunRef:
    """The run ``run_id`` names: its id or an attempt's, whole or short (``baton.runner.runids``)."""
    return resolve(store, run_id)


def _job(ref: Annotated[RunRef, Depends(_ref)]) -> JobRecord:
    """The run's job: only a submitted run has an event stream and can be cancelled here."""
    if ref.job is None:
        raise NotFound(
            f"run {ref.id} was started by `baton run`, not submitted to the service: "
            f"`baton runs logs {ref.id}` prints its log"
        )
    return ref.job


Ref = Annotated[RunRef, Depends(_ref)]
Job = Annotated[JobRecord, Depends(_job)]


@router.post("", status_code=202, response_model=RunState, responses=SUBMITTED)
def submit_run(
    body: RunBody,
    actor: Runner,
    store: StoreDep,
    settings: SettingsDep,
    executor: ExecutorDep,
    after: BackgroundTasks,
    http: Request,
    traceparent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> dict[str, Any]:
    """Queue a run. It is stored before this answers, so a restart of the service loses nothing;
    the runs of one key start in the order they were submitted. With tracing on, a caller's W3C
    ``traceparent`` header makes the run a part of the caller's trace."""
    request = RunRequest(**dict(body))  # typed by pydantic already: no second check
    forges = getattr(http.app.state, "forges", None)
    repository = forges.egress_of(request.repo) if forges is not None else None
    narrower(settings, request.egress, repository)
    request.egress = request.egress or repository  # the repository's list, as its forge turns get
    operators_own(settings, request.environment)
    with tracing.span("api.submit", parent=tracing.incoming(traceparent)):
        job = jobs.submit(store, settings, request, actor.name)  # BadInput: 422, nothing written
    # handed to the executor once the 202 is sent: the run's start does not compete with the answer
    after.add_task(executor.submit, job.id)
    return {"run_id": job.id, "status": job.status}


@router.get("", response_model=RunPage)
def list_runs(
    _actor: Reader,
    store: StoreDep,
    agent: str | None = None,
    repo: Annotated[str | None, Query(description="a slug, git URL or local path")] = None,
    thread: str | None = None,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    """Submitted runs, newest first; page with ``limit`` and ``offset`` (``next_offset`` is null on the
    last page), as ``GET /v1/sessions`` does."""
    # one row more than the page tells whether there is a next page without counting them all
    found = store.list_jobs(
        agent=agent, repo=slug_of(repo), thread=thread, status=status, limit=limit + 1, offset=offset
    )
    return {
        "runs": [job.to_json() for job in found[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(found) > limit else None,
    }


def narrower(settings: Settings, egress: str | None, repository: str | None = None) -> None:
    """A caller of the API may narrow the operator's egress allow-list (the repository's ``egress``
    where a repository table gives one, else the setting), never widen it: BadInput (422, nothing
    written) naming what it would open."""
    if egress is None:
        return
    asked, allowed = allowlist.parse(egress, "egress"), allowlist.parse(repository or settings.egress)
    if not asked.within(allowed):
        whose = "the repository's egress" if repository else "the service's egress setting"
        raise BadInput(
            f"egress: {asked.text!r} allows more than {whose} ({allowed.text!r}); "
            "a run may narrow it, never widen it"
        )


def operators_own(settings: Settings, environment: Environment | None) -> None:
    """A caller of the API may keep the agent on the host, never move it into a container the
    operator did not choose: inside one it shares the host's network, past the walls' port rule."""
    if environment == Environment.CONTAINER and settings.environment != Environment.CONTAINER.value:
        raise BadInput(
            "environment: container runs the agent on the host's network, past the walls' port rule: "
            "only the operator chooses it (the setting environment, or a forge repository's); a run may "
            "ask for host"
        )


def slug_of(repo: str | None) -> str | None:
    """A URL or a local path names the same repo as its slug; anything else is taken as a slug."""
    if repo is None:
        return None
    try:
        return parse_repo(repo).slug
    except BadInput:
        return repo


MAX_WAIT = 300.0  # seconds a GET may wait for a run to end
WAIT_POLL = 0.2  # seconds between its looks at the store


@router.get("/{run_id}", response_model=RunView)
async def get_run(
    request: Request,
    _actor: Reader,
    ref: Ref,
    store: StoreDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT, description="hold the answer until the run is done, or this many seconds"),
    ] = 0,
) -> dict[str, Any]:
    """A run: queued, running or done, with ``baton run --json``'s fields once known and its attempts
    so far. The id may be the run's or one of its attempts', whole or its last 8 characters. With
    ``wait``, the answer comes when the run is done, or after that many seconds as it then is (its
    ``status`` says which): a script can read the outcome without a loop."""
    data = await run_in_threadpool(ref.to_json, store)
    deadline = time.monotonic() + wait
    while data["status"] != JobStatus.DONE and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_POLL)
        if await request.is_disconnected():  # nobody reads the answer: stop polling the store for it
            break
        data = await run_in_threadpool(lambda: resolve(store, ref.id).to_json(store))
    return data


@router.get(
    "/{run_id}/events",
    response_class=EventSourceResponse,
    responses=STREAM_ERRORS,
)
async def run_events(
    _actor: Reader,
    job: Job,
    store: StoreDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The run's agent events as Server-Sent Events: each ``event: agent`` with ``id: <seq>`` and
    ``{"seq", "run_id", "attempt", "attempt_id", "event"}`` as data, from the start (or after
    ``Last-Event-ID``), live while it runs; then one ``event: outcome`` with the run's final record, and
    the end."""
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else 0
    async for item in jobs.read_events(store, settings, job.id, after):
        if item.end is None:
            # raw JSON: the events are plain JSON already, FastAPI's encoder would walk them again
            data = json.dumps({"seq": item.seq, **item.data}, ensure_ascii=False)
            yield ServerSentEvent(event="agent", id=str(item.seq), raw_data=data)
            continue
        yield ServerSentEvent(event="outcome", data=resolve(store, job.id).to_json(store))


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=RunState,
    responses=ENDED,
)
def cancel_run(_actor: Runner, job: Job, store: StoreDep, executor: ExecutorDep) -> dict[str, Any]:
    """Cancel a run: a queued one ends at once (``done``, outcome cancelled); a running one's agent
    process group is stopped (outcome cancelled, the conversation kept) and it reads ``running``
    until then."""
    if job.status == JobStatus.DONE or not executor.cancel(job.id):
        raise HTTPException(409, f"run {job.id} already ended ({job.outcome or 'done'})")
    after = store.get_job(job.id) or job
    return {"run_id": job.id, "status": after.status}
