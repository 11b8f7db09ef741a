"""Routes: the sessions table (``/sessions``), a session's page (``/session``) and its reset
(``/session/reset``: a confirmation page, then the POST that archives and removes) and the answer to the
question a thread waits on (``/session/answer``: the run that carries it queued). A session bound to a
forge issue or PR shows its forge thread on its page (:func:`baton.forge.turn.threads.key_state`): links to
the issue and the PR, the feedback events with who sent them, where, what became of them and the run
they became, the budget spent, and a banner when it needs a human. Comment text is never shown;
everything else the forge sent is escaped by the templates, and only http(s) addresses become links.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from baton.asking.pending import under_way, waiting
from baton.environment import split_note
from baton.errors import BadInput
from baton.forge.turn.threads import key_state
from baton.housekeeping.disk import DiskReport, SessionUsage
from baton.models import JobStatus, RunRecord, SessionRecord, SessionStatus
from baton.service.answers import Key3, submit_answer
from baton.service.dashboard.web import Viewer, form_of, page, signed_in, state, with_headers
from baton.service.records import TokenScope
from baton.service.sessions import forge_config
from baton.sessions.lineage import lineage
from baton.sessions.manage import Scope, get_session, reset_session, resolve_key
from baton.store.base import RunStore, Store
from baton.workspace.workdirs import Workdirs

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
FORGE_EVENTS = 50  # a bound session's newest feedback events on its page
SORTS = {"last_used": "last used", "size": "size", "attempts": "attempts"}
Signed = Annotated[Viewer, Depends(signed_in)]
Text = Annotated[str | None, Query(max_length=4096)]
KeyPart = Annotated[str, Query(max_length=4096)]


@dataclass(frozen=True)
class Filters:
    agent: str | None
    repo: str | None
    status: SessionStatus | None
    sort: str
    descending: bool
    page: int

    def url(self, page: int | None = None, **change: str) -> str:
        values = {
            "agent": self.agent or "",
            "repo": self.repo or "",
            "status": self.status.value if self.status else "",
            "sort": self.sort,
            "order": "desc" if self.descending else "asc",
            "page": str(page or self.page),
            **change,
        }
        return "/sessions?" + urlencode({k: v for k, v in values.items() if v})


def filters(
    agent: str | None, repo: str | None, status: str | None, sort: str, order: str, page: int
) -> Filters:
    if status and status not in {s.value for s in SessionStatus}:
        raise BadInput(f"status {status!r}: one of {', '.join(s.value for s in SessionStatus)}")
    if sort not in SORTS:
        raise BadInput(f"sort {sort!r}: one of {', '.join(SORTS)}")
    if order not in ("asc", "desc"):
        raise BadInput(f"order {order!r}: asc or desc")
    state_ = SessionStatus(status) if status else None
    return Filters(agent or None, repo or None, state_, sort, order == "desc", page)


def sizes_of(report: DiskReport | None) -> dict[tuple[str, str, str], int]:
    if report is None:
        return {}
    return {(s.agent, s.repo, s.thread): s.total for s in report.sessions}


def usage_of(report: DiskReport | None, session: SessionRecord) -> SessionUsage | None:
    """The session's row of the last disk measurement (its rebuildable and unique bytes), if measured."""
    key = (session.agent, session.repo, session.thread)
    rows = report.sessions if report is not None else []
    return next((s for s in rows if (s.agent, s.repo, s.thread) == key), None)


def by_size(
    store: Store, f: Filters, sizes: dict[tuple[str, str, str], int]
) -> tuple[list[SessionRecord], int]:
    """A page of the table sorted by size. Sizes are not in the store: they come from the service's
    last disk measurement, so the matching keys are ordered by it in memory (unmeasured ones last).
    The other sorts page in the database (the table pages through 10,000 sessions there, sorted by last
    use or attempts, counted for "page N of M")."""
    keys = store.session_keys(f.agent, f.repo, f.status)
    measured = sorted((k for k in keys if k in sizes), key=lambda k: (sizes[k], k), reverse=f.descending)
    ordered = measured + sorted(k for k in keys if k not in sizes)
    chosen = ordered[(f.page - 1) * PER_PAGE : f.page * PER_PAGE]
    found = (store.get_session(*k) for k in chosen)
    return [s for s in found if s is not None], len(keys)


@router.get("/sessions", response_class=HTMLResponse)
def sessions_table(
    request: Request,
    viewer: Signed,
    agent: Text = None,
    repo: Text = None,
    status: Text = None,
    sort: Annotated[str, Query(max_length=32)] = "last_used",
    order: Annotated[str, Query(max_length=8)] = "desc",
    page_no: Annotated[int, Query(alias="page", ge=1, le=10**7)] = 1,
) -> HTMLResponse:
    _settings, store = state(request)
    f = filters(agent, repo, status, sort, order, page_no)
    sizes = sizes_of(request.app.state.disk.get())
    if f.sort == "size":
        rows, total = by_size(store, f, sizes)
    else:
        offset = (f.page - 1) * PER_PAGE
        rows, total = store.page_sessions(f.agent, f.repo, f.status, f.sort, f.descending, PER_PAGE, offset)
    agents, repos = store.session_facets()
    return page(
        request,
        "sessions.html",
        viewer,
        title="Sessions",
        rows=rows,
        total=total,
        pages=max(1, math.ceil(total / PER_PAGE)),
        f=f,
        sizes=sizes,
        agents=agents,
        repos=repos,
        statuses=[s.value for s in SessionStatus],
        sorts=SORTS,
        measured_at=request.app.state.disk.measured_at,
    )


def key_runs(store: Store, session: SessionRecord, limit: int = 50) -> dict[str, Any]:
    """The key's runs (newest first) and its submitted runs still waiting (a queued job has no run
    yet): what the timeline shows, on the page and in the live stream."""
    runs = store.list_runs(session.agent, session.repo, session.thread, limit=limit)
    queued = store.list_jobs(
        session.agent, session.repo, session.thread, status=JobStatus.QUEUED, limit=limit
    )
    return {"runs": runs, "queued": queued}


def _environment(runs: list[RunRecord]) -> tuple[RunRecord, str] | None:
    """The key's newest run that prepared (or tried to prepare) its environment, and what it said."""
    for run in runs:
        line, _rest = split_note(run.note)
        if line is not None:
            return run, line
    return None


@router.get("/session", response_class=HTMLResponse)
def session_page(
    request: Request, viewer: Signed, agent: KeyPart, repo: KeyPart, thread: KeyPart
) -> HTMLResponse:
    _settings, store = state(request)
    session = get_session(store, resolve_key(store, agent, repo, thread))
    question = waiting(store, session.agent, session.repo, session.thread)
    busy = under_way(store, session.agent, session.repo, session.thread)
    # an answer on its way (a run queued while the question waits, or an answer's run): no form
    answering = busy if busy is not None and (question or busy.request.get("answers")) else None
    report = request.app.state.disk.get()
    sizes = sizes_of(report)
    timeline = key_runs(store, session)
    return page(
        request,
        "session.html",
        viewer,
        title=f"{session.agent}:{session.repo}:{session.thread}",
        s=session,
        size=sizes.get((session.agent, session.repo, session.thread)),
        disk=usage_of(report, session),
        scopes=[s.value for s in Scope],
        family=lineage(store, session),
        forge=key_state(
            store, session.agent, session.repo, session.thread, forge_config(request), last=FORGE_EVENTS
        ),
        question=question,
        answering=answering,
        can_answer=viewer.scope.allows(TokenScope.RUN),
        environment=_environment(timeline["runs"]),
        **timeline,
    )


@router.post("/session/answer", response_class=HTMLResponse)
async def do_answer(request: Request, viewer: Signed) -> Response:
    """The answer form of a waiting thread: the run that carries it is queued, then the session page."""
    fields = await form_of(request, viewer, TokenScope.RUN)
    settings, store = state(request)
    named = Key3(fields.get("agent", ""), fields.get("repo", ""), fields.get("thread", ""))
    job = await run_in_threadpool(
        submit_answer, store, settings, named, fields.get("answer", ""), viewer.name, "dashboard"
    )
    request.app.state.executor.submit(job.id)
    target = "/session?" + urlencode({"agent": named.agent, "repo": named.repo, "thread": named.thread})
    return with_headers(RedirectResponse(target, status_code=303))


def removal(settings: Any, store: RunStore, session: SessionRecord, scope: Scope) -> dict[str, Any]:
    """What a reset of ``scope`` removes and where its archive goes (the confirmation page)."""
    key = resolve_key(store, session.agent, session.repo, session.thread)
    workdirs = Workdirs(settings)
    return {
        "worktree": scope in (Scope.WORKTREE, Scope.ALL),
        "conversation": scope in (Scope.CONVERSATION, Scope.ALL),
        "record": scope == Scope.ALL,
        "worktree_path": str(workdirs.worktree_path(key)),
        "cache": str(workdirs.cache_path(key.repo)),
        "archive_home": str(settings.home / "archive"),
    }


@router.get("/session/reset", response_class=HTMLResponse)
def confirm_reset(
    request: Request, viewer: Signed, agent: KeyPart, repo: KeyPart, thread: KeyPart, scope: Scope
) -> HTMLResponse:
    settings, store = state(request)
    if not viewer.admin:
        return page(
            request,
            "error.html",
            viewer,
            status=403,
            title="Forbidden",
            message=f"token {viewer.name!r} has scope {viewer.scope.value}; a reset needs admin",
        )
    session = get_session(store, resolve_key(store, agent, repo, thread))
    return page(
        request,
        "reset_confirm.html",
        viewer,
        title="Reset",
        s=session,
        scope=scope.value,
        what=removal(settings, store, session, scope),
    )


@router.post("/session/reset", response_class=HTMLResponse)
async def do_reset(request: Request, viewer: Signed) -> HTMLResponse:
    fields = await form_of(request, viewer, TokenScope.ADMIN)
    settings, store = state(request)
    try:
        scope = Scope(fields.get("scope", ""))
    except ValueError:
        raise BadInput(f"scope {fields.get('scope')!r}: one of {', '.join(s.value for s in Scope)}") from None
    key = resolve_key(store, fields.get("agent", ""), fields.get("repo", ""), fields.get("thread", ""))
    result = await run_in_threadpool(reset_session, store, settings, key, scope, viewer.name)
    return page(request, "reset_done.html", viewer, title="Reset done", key=key, result=result.to_json())
