"""Route: ``GET /v1/session/diff?agent=&repo=&thread=`` (read), a thread's worktree as a diff since the
commit its branch is based on (:mod:`baton.workspace.diffview`): what its agent changed, committed or
not, without a write to the worktree. 404 when the key has no session, or its worktree is not on this
service (a worker's elsewhere, or evicted: its checkpoint holds it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from baton.errors import NotFound
from baton.service.auth import Actor, require
from baton.service.records import TokenScope
from baton.service.sessions import AgentQ, RepoQ, ThreadQ
from baton.sessions.manage import get_session, resolve_key
from baton.settings import Settings
from baton.store import Store
from baton.workspace.diffview import worktree_diff

router = APIRouter(tags=["sessions"])
Reader = Annotated[Actor, Depends(require(TokenScope.READ))]


class DiffOut(BaseModel):
    agent: str
    repo: str = Field(description="slug")
    thread: str
    base: str = Field(description="the commit compared with: the branch's base, else its HEAD")
    head: str | None = Field(description="the worktree's checked-out commit")
    stat: str = Field(description="git diff --stat")
    diff: str = Field(description="the diff of tracked files, committed or not")
    untracked: list[str] = Field(description="new files git does not ignore, by path")
    truncated: bool = Field(description="the diff or the list was cut")


@router.get("/v1/session/diff", response_model=DiffOut, summary="A thread's worktree as a diff")
async def session_diff(
    request: Request, actor: Reader, agent: AgentQ, repo: RepoQ, thread: ThreadQ
) -> DiffOut:
    """What the thread's agent changed in its worktree since its branch's base commit."""
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store

    def read() -> DiffOut:
        key = resolve_key(store, agent, repo, thread)
        session = get_session(store, key)
        found = worktree_diff(settings, key, session.base_sha)
        if found is None:
            raise NotFound(f"{key} has no worktree on this service (evicted, or on a worker elsewhere)")
        return DiffOut(agent=key.agent, repo=key.repo.slug, thread=key.thread, **found.to_json())

    return await run_in_threadpool(read)
