"""A spending cap on a forge thread: a trusted comment that is exactly ``@baton budget +N`` (USD), or
``@baton budget +N tokens|minutes|turns`` (baton's mention as the forge configures it), raises the
thread's cap by N (:func:`raised`: a raise row, audited with the commenter's login) and, like any
trusted comment, resumes a waiting thread, whose next turn delivers the instruction of the turn that
parked at the cap (:func:`said`); on a thread that waits on nothing it runs no turn. Read strictly:
anything else, an amount out of range included, is an ordinary comment; an untrusted actor's never
raises (the dispatcher asks only for trusted ones). What a parked thread says on the forge is
:func:`baton.caps.words.forge_text`.
"""

from __future__ import annotations

import re

from baton.asking.pending import Waiting
from baton.caps.budget import Target, raise_caps
from baton.caps.model import Measure, Scope, parse_raise, thread_subject
from baton.caps.parked import of_run
from baton.caps.tables import Raise
from baton.errors import BadInput
from baton.forge.data.model import ForgeEvent
from baton.forge.data.records import Binding
from baton.forge.turn.loop import ForgeLoop

MAX_COMMAND = 200  # characters: a longer comment is never a budget command
COMMAND = r"\s*{mention}\s+budget\s+(\+\d{{1,16}}(?:\.\d{{1,6}})?)(?:\s+(usd|tokens|minutes|turns))?\s*"


def command(body: str, mention: str) -> tuple[Measure, float] | None:
    """The raise a comment asks for, or None when it is not exactly a budget command."""
    if len(body) > MAX_COMMAND:
        return None
    pattern = COMMAND.format(mention=re.escape(mention))
    found = re.fullmatch(pattern, body, re.IGNORECASE | re.ASCII)
    if found is None:
        return None
    measure = Measure((found.group(2) or Measure.USD.value).lower())
    try:
        return measure, parse_raise(measure, found.group(1))
    except BadInput:  # out of range: an ordinary comment
        return None


RAISED = "a budget command: the thread's spending cap is raised, and no turn runs for it"


def is_command(loop: ForgeLoop, event: ForgeEvent) -> bool:
    """Whether ``event`` is exactly a budget command (whoever wrote it: trust is the caller's)."""
    return command(event.body or "", loop.forge(event.forge).mention) is not None


def raised(loop: ForgeLoop, binding: Binding, event: ForgeEvent) -> Raise | None:
    """Raise the thread's cap when ``event`` (a trusted comment, stored once) is a budget command."""
    asked = command(event.body or "", loop.forge(event.forge).mention)
    if asked is None:
        return None
    subject = thread_subject(binding.agent, binding.repo_slug, binding.thread)
    by = f"@{event.actor.login} on {binding.conversation}"
    [made] = raise_caps(loop.store, Target(Scope.THREAD, subject), dict([asked]), by)
    return made


def said(loop: ForgeLoop, asked: Waiting, body: str, events: list[ForgeEvent]) -> str:
    """What of a turn's ``body`` answers what the thread waits on: at a cap, nothing when every event
    is a budget command (the turn runs the capped instruction alone); else the whole body."""
    if of_run(asked.run) is None or not events:
        return body
    commands = [command(e.body or "", loop.forge(e.forge).mention) for e in events]
    return "" if all(commands) else body
