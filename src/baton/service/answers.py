"""Routes: answers. ``POST /v1/answers`` answers the question a thread waits on (its last turn ended
``needs_input``): the answer becomes the prompt of a run queued on the same key, which resumes its
conversation told the question and the answer (:func:`baton.asking.pending.answering`, as ``baton
answer`` does); 409 when the thread waits on no question or an answer's run is queued or running
already, nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel, Field

from baton.asking.pending import answering
from baton.asking.questions import MAX_ANSWER
from baton.errors import Busy, NotWaiting
from baton.fleet import jobs
from baton.forge.writes.answered_elsewhere import answered_elsewhere
from baton.models import JobRecord
from baton.runner.request import RunRequest
from baton.service.auth import Actor, require
from baton.service.fields import Agent, Thread
from baton.service.records import TokenScope
from baton.service.runs import SUBMITTED, ExecutorDep, RunState, SettingsDep, StoreDep
from baton.sessions.manage import get_session, resolve_key
from baton.settings import Settings
from baton.store import Store
from baton.store.leases import key_lease

router = APIRouter(tags=["runs"])
Runner = Annotated[Actor, Depends(require(TokenScope.RUN))]
ANSWER_WAIT = 5.0  # seconds an answer waits for another one of the key being taken


class AnswerIn(BaseModel):
    """A person's answer to the question a thread waits on."""

    agent: Agent
    repo: str = Field(description="the repo's slug, URL or local path")
    thread: Thread
    answer: str = Field(min_length=1, max_length=MAX_ANSWER, description="the answer, as plain text")


@router.post(
    "/v1/answers",
    status_code=202,
    response_model=RunState,
    responses=SUBMITTED,
    summary="Answer the question a thread waits on (queues the run that resumes it)",
)
def answer(
    body: AnswerIn,
    actor: Runner,
    store: StoreDep,
    settings: SettingsDep,
    executor: ExecutorDep,
    after: BackgroundTasks,
) -> dict[str, Any]:
    """The run that carries the answer is queued like ``POST /v1/runs`` (its id and links in the 202);
    404 when the key has no session, 409 when its thread waits on no question."""
    job = submit_answer(
        store, settings, Key3(body.agent, body.repo, body.thread), body.answer, actor.name, "API"
    )
    after.add_task(executor.submit, job.id)
    return {"run_id": job.id, "status": job.status}


@dataclass(frozen=True)
class Key3:
    """A key as a person names it (``repo``: slug, URL or local path)."""

    agent: str
    repo: str
    thread: str


def submit_answer(
    store: Store, settings: Settings, named: Key3, answer: str, actor: str, where: str
) -> JobRecord:
    """Queue the run that answers the question ``named``'s thread waits on (the API's and the
    dashboard's one way); NotFound, NotWaiting or BadInput with nothing written. The caller hands the
    job to its executor. Under the key's answer lease, so of two answers at once the second sees the
    first's run queued and is refused (409) at once; a forge thread bound to the key waits no more
    (:func:`baton.forge.writes.answered_elsewhere.answered_elsewhere`)."""
    key = resolve_key(store, named.agent, named.repo, named.thread)
    session = get_session(store, key)
    by = f"{actor} (through baton's {where})"
    lease = key_lease(settings, store, f"answer:{key}")
    try:
        lease.acquire(wait=ANSWER_WAIT)
    except Busy:
        raise NotWaiting(f"{key} is being answered now: the thread is not waiting") from None
    try:
        found = answering(store, key.agent, key.repo.slug, key.thread, answer, by)
        request = RunRequest(
            agent=key.agent,
            repo=session.repo_url,
            thread=key.thread,
            prompt=found.prompt,
            answers=found.answers,
        )
        job = jobs.submit(store, settings, request, actor)
    finally:
        lease.release()
    answered_elsewhere(store, key.agent, key.repo.slug, key.thread, actor, job.id)
    return job
