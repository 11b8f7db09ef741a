"""Live streams for the pages (Server-Sent Events, signed in by the cookie; 401 without it):
``/ui/stream/session`` follows a key (its timeline, its card's facts, and every run newer than the
stream's start from its first line: :class:`SessionWatch`), ``/ui/stream/run/<id>`` one run until its
outcome (:class:`Follow`). Data is JSON; the HTML in it is rendered by Jinja2 with autoescaping, so an
agent's output is text, never markup. The store is read in the thread pool, every :data:`POLL` seconds
or at once when a run of this process writes events; a stream lasts at most :data:`LIFETIME`, and the
browser then reconnects by itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from markupsafe import Markup

from baton.agents.events import Entry, LogRenderer
from baton.fleet import jobs
from baton.models import Outcome, RunRecord, SessionRecord
from baton.runner.logtail import LogTail
from baton.runner.runids import resolve_run, short_id
from baton.service.dashboard.sessions import key_runs
from baton.service.dashboard.web import Viewer, signed_in, state, templates, when
from baton.sessions.manage import get_session, resolve_key
from baton.store.base import RunStore, Store

router = APIRouter(include_in_schema=False)
POLL = 0.5  # seconds between looks at the store and the log
LIFETIME = 600.0  # seconds before a stream ends (the browser reconnects)
Signed = Annotated[Viewer, Depends(signed_in)]
KeyPart = Annotated[str, Query(max_length=4096)]


def entry_html(entry: Entry) -> str:
    macro = templates.env.get_template("_macros.html").module.entry  # type: ignore[attr-defined]
    html: Markup = macro(entry)
    return str(html)


class Follow:
    """One run's log, read as it grows: ``entry`` events (the HTML of one entry each), then an
    ``outcome`` event (``{run_id, attempt_id, outcome}``) once the run has ended."""

    def __init__(self, record: RunRecord) -> None:
        self.id, self.run_id = record.id, record.run_id
        self.tail = LogTail(Path(record.log_path)) if record.log_path else None
        self.renderer = LogRenderer(record.agent)

    def step(self, store: RunStore) -> tuple[list[ServerSentEvent], bool]:
        """New entries, and the outcome event once the run has ended (then True)."""
        record = store.get_run(self.id)
        ended = record is None or record.outcome != Outcome.RUNNING
        lines = self.tail.read(final=ended) if self.tail else []
        entries = [*self.renderer.feed(lines), *(self.renderer.flush() if ended else ())]
        events = [ServerSentEvent(event="entry", data=entry_html(e)) for e in entries]
        if ended:
            outcome = record.outcome.value if record else "unknown"
            events.append(
                ServerSentEvent(
                    event="outcome", data={"run_id": self.run_id, "attempt_id": self.id, "outcome": outcome}
                )
            )
        return events, ended


def session_facts(session: SessionRecord) -> dict[str, str]:
    """The session card's facts that a run changes, as the page shows them (``data-fact`` names)."""
    return {
        "agent_session_id": session.agent_session_id or "—",
        "status": session.status.value,
        "attempts": str(session.attempts),
        "last_used": when(session.last_used_at),
        "expires": when(session.expires_at),
    }


class SessionWatch:
    """What changed for one key since the last look, as events: ``timeline`` (HTML, sent again whenever
    it changes: a run submitted, started, ended), ``facts`` (``{name: text}``, the card's ``data-fact``
    elements: attempts, last used...), ``run`` (``{run_id, short, attempt, mode, href}``: the live log
    starts over) and then the run's ``entry`` and ``outcome`` events. Every run newer than the stream's
    start is followed from its first line, one after another, even one that started and ended between
    two looks (a fast agent)."""

    def __init__(self, store: Store, session: SessionRecord) -> None:
        self.store, self.session = store, session
        self.timeline = ""
        self.facts = session_facts(session)
        runs = key_runs(store, session)["runs"]
        self.followed = {r.id for r in runs if r.outcome != Outcome.RUNNING}
        self.current: Follow | None = None

    def step(self) -> list[ServerSentEvent]:
        data = key_runs(self.store, self.session)
        events = []
        html = templates.env.get_template("_timeline.html").render(**data)
        if html != self.timeline:
            self.timeline = html
            events.append(ServerSentEvent(event="timeline", data=html))
        events += self._facts()
        if self.current is None:
            waiting = [r for r in reversed(data["runs"]) if r.id not in self.followed]  # oldest first
            if waiting:
                record = waiting[0]
                self.followed.add(record.id)
                self.current = Follow(record)
                href = f"/runs/{record.id}"
                short = short_id(self.store, record.run_id)
                data = {"run_id": record.run_id, "short": short, "attempt": record.attempt}
                data |= {"mode": record.mode.value, "href": href}
                events.append(ServerSentEvent(event="run", data=data))
        if self.current is not None:
            more, ended = self.current.step(self.store)
            events += more
            if ended:
                self.current = None
        return events

    def _facts(self) -> list[ServerSentEvent]:
        """The card's facts, when they changed (a run's end writes the session after its outcome)."""
        s = self.session
        now = self.store.get_session(s.agent, s.repo, s.thread)
        facts = self.facts if now is None else session_facts(now)
        if facts == self.facts:
            return []
        self.facts = facts
        return [ServerSentEvent(event="facts", data=facts)]


async def _stream(request: Request, step: Any) -> AsyncIterator[ServerSentEvent]:
    """Call ``step`` (in the thread pool) until it says stop, the client leaves or the lifetime ends."""
    deadline = time.monotonic() + LIFETIME
    while time.monotonic() < deadline and not await request.is_disconnected():
        seen = jobs.version()
        events, stop = await run_in_threadpool(step)
        for event in events:
            yield event
        if stop:
            return
        await jobs.wait_change(seen, POLL)


def _session(request: Request, agent: KeyPart, repo: KeyPart, thread: KeyPart) -> SessionRecord:
    _settings, store = state(request)
    return get_session(store, resolve_key(store, agent, repo, thread))


@router.get("/ui/stream/session", response_class=EventSourceResponse)
async def session_stream(
    request: Request, viewer: Signed, session: Annotated[SessionRecord, Depends(_session)]
) -> AsyncIterator[ServerSentEvent]:
    watch = await run_in_threadpool(SessionWatch, state(request)[1], session)
    async for event in _stream(request, lambda: (watch.step(), False)):
        yield event


def _run(request: Request, run_id: str) -> RunRecord:
    return resolve_run(state(request)[1], run_id[:200])


@router.get("/ui/stream/run/{run_id}", response_class=EventSourceResponse)
async def run_stream(
    request: Request, viewer: Signed, record: Annotated[RunRecord, Depends(_run)]
) -> AsyncIterator[ServerSentEvent]:
    follow, store = Follow(record), state(request)[1]
    async for event in _stream(request, lambda: follow.step(store)):
        yield event
