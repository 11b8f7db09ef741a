"""Which conversation came from which: a key's lineage across forks, hand-offs and stacking.

A session records where its conversation came from (``origin``: a fork of a thread's conversation, or a
hand-off from another agent's) and, when stacked, the thread its branch follows (``base_thread``).
:func:`lineage` follows origins back (ancestors, nearest first), finds the sessions that came from this
key (descendants), the threads stacked on it, and the conversations the key itself went through (a
fork in place, a recovery or a rollover gives the key a new agent session id; its runs say when and why:
``runs.lineage``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

from baton.keys import key_of
from baton.models import Mode, RunRecord, SessionRecord
from baton.store.base import RunStore, Transactions

MAX_DEPTH = 50  # an origin chain longer than this is cut (origins are data: never trust them to end)


@dataclass
class Link:
    """One step of a lineage: a conversation of a key, and how it relates."""

    kind: str  # fork, handoff (a session's origin), stacked (a branch on another thread's)
    agent: str
    thread: str
    session_id: str | None
    at: float | None = None


def lineage(store: RunStore, session: SessionRecord) -> dict[str, Any]:
    """The lineage of ``session``'s key as JSON: ``from`` (ancestors, nearest first), ``to`` (sessions
    whose origin is this key), ``stacked_on`` and ``stacked_below`` (threads), ``conversations`` (the agent
    session ids the key went through, oldest first, with how each began), ``quarantined`` (those
    never resumed again)."""
    others = store.list_sessions(repo=session.repo)
    return {
        "from": [asdict(link) for link in ancestors(store, session)],
        "to": [asdict(link) for link in descendants(session, others)],
        "stacked_on": session.base_thread,
        "stacked_below": sorted(
            f"{s.agent}/{s.thread}" for s in others if s.base_thread == session.thread and s is not session
        ),
        "conversations": conversations(store, session),
        "quarantined": quarantined(store, session),
    }


def quarantined(store: RunStore, session: SessionRecord) -> list[dict[str, Any]]:
    """The key's conversations that are never resumed again (:mod:`baton.runner.quarantine`), each
    with its strikes and the last failure, oldest first."""
    # lazy: cold CLI
    from baton.sessions.tables import strike_store  # (SQLAlchemy: only once a store is opened)

    found = strike_store(cast(Transactions, store)).of_key(key_of(session))
    return [s.to_json() for s in found if s.quarantined]


def ancestors(store: RunStore, session: SessionRecord) -> list[Link]:
    links: list[Link] = []
    seen = {(session.agent, session.thread, session.agent_session_id)}
    current = session
    while len(links) < MAX_DEPTH:
        link = origin_link(current)
        if link is None or (link.agent, link.thread, link.session_id) in seen:
            break
        seen.add((link.agent, link.thread, link.session_id))
        links.append(link)
        parent = store.get_session(link.agent, session.repo, link.thread)
        if parent is None or (parent.agent, parent.thread) == (current.agent, current.thread):
            break
        current = parent
    return links


def descendants(session: SessionRecord, others: list[SessionRecord]) -> list[Link]:
    links = []
    for other in others:
        link = origin_link(other)
        own = (other.agent, other.thread) == (session.agent, session.thread)
        if link and (link.agent, link.thread) == (session.agent, session.thread) and not own:
            links.append(Link(link.kind, other.agent, other.thread, other.agent_session_id, link.at))
    return sorted(links, key=lambda link: link.at or 0.0)


def origin_link(session: SessionRecord) -> Link | None:
    """The session's origin as a link; None when it has none or it is malformed (data, not trusted)."""
    origin = session.origin
    if not isinstance(origin, dict):
        return None
    kind, agent, thread = origin.get("kind"), origin.get("agent"), origin.get("thread")
    if not all(isinstance(v, str) and v for v in (kind, agent, thread)):
        return None
    sid = origin.get("session_id")
    return Link(
        str(kind), str(agent), str(thread), sid if isinstance(sid, str) else None, _time(origin.get("at"))
    )


def _time(value: object) -> float | None:
    """A timestamp from data: None unless a finite number (a 400-digit integer overflows a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def conversations(store: RunStore, session: SessionRecord) -> list[dict[str, Any]]:
    """The agent session ids the key's runs went through, oldest first, each with the mode of the run that
    began it (fresh, fork, recover, ...), when, which conversation it followed (``after``) and why
    (``why``: rollover — the last turn held more than the threshold of the model's window —, too_long —
    the model refused it —, lost, quarantine, unreadable, instructions, asked; None for the key's first
    or a run from before lineage was recorded), the context it held at its last measured turn
    (``held``: tokens, window), and how many times its CLI compacted it in place (``compacted``)."""
    runs = store.list_runs(session.agent, session.repo, session.thread, limit=1000)
    seen: dict[str, dict[str, Any]] = {}
    previous: str | None = None
    for run in reversed(runs):
        sid = run.session_id_out
        if sid and sid in seen:
            _measure(seen[sid], run)
            seen[sid]["compacted"] += run.lineage == "compacted"  # compacted in place by this run
        if not sid or sid in seen:
            continue
        began = run.mode.value if run.session_id_in != sid else Mode.RESUME.value
        seen[sid] = {
            "session_id": sid,
            "began": began,
            "run_id": run.id,
            "at": run.started_at,
            "after": previous,
            "why": run.lineage,
            "held": None,
            "compacted": 0,  # times the CLI compacted it in place (its id kept)
        }
        _measure(seen[sid], run)
        previous = sid
    return list(seen.values())


def _measure(conversation: dict[str, Any], run: RunRecord) -> None:
    """The conversation's context as ``run`` measured it, when it did (the later run's wins)."""
    context = run.usage.get("context") if isinstance(run.usage, dict) else None
    if isinstance(context, dict) and isinstance(context.get("tokens"), int):
        window = context.get("window")
        conversation["held"] = {
            "tokens": context["tokens"],
            "window": window if isinstance(window, int) else None,
        }
