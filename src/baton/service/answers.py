"""Routes: answers. ``POST /v1/answers`` answers the question a thread waits on (its last turn ended
``needs_input``): the answer becomes the prompt of a run queued on the same key, which resumes its
conversation told the question and the answer (:func:`baton.asking.pending.answering`, as ``baton
answer`` does); 409 when the thread waits on no question, nothing written.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel, Field

from baton.asking.pending import answering
from baton.asking.questions import MAX_ANSWER
from baton.fleet import jobs
from baton.runner.request import RunRequest
from baton.service.auth import Actor, require
from baton.service.fields import Agent, Thread
from baton.service.records import TokenScope
from baton.service.runs import SUBMITTED, ExecutorDep, RunState, SettingsDep, StoreDep
from baton.sessions.manage import get_session, resolve_key

router = APIRouter(tags=["runs"])
Runner = Annotated[Actor, Depends(require(TokenScope.RUN))]


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
    key = resolve_key(store, body.agent, body.repo, body.thread)
    session = get_session(store, key)
    by = f"{actor.name} (through baton's API)"
    prompt = answering(store, key.agent, key.repo.slug, key.thread, body.answer, by)
    request = RunRequest(agent=key.agent, repo=session.repo_url, thread=key.thread, prompt=prompt)
    job = jobs.submit(store, settings, request, actor.name)
    after.add_task(executor.submit, job.id)
    return {"run_id": job.id, "status": job.status}
