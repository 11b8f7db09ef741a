"""Quarantine: a conversation whose resume fails at once twice in a row is never resumed again.

A resume "fails at once" (:func:`failed_at_once`) when it ends ``failed`` or ``session_lost`` within
:data:`QUICK` seconds without output tokens (a request the model's API refused counts), unless baton
or the machine stopped it (a cancel, a lost lease, an agent that could not start, an unreachable model
API, a usage limit: a new conversation would fail the same way). Each is a strike on the id, in the
store (:mod:`baton.sessions.tables`); a resume that reaches the model clears them. At :data:`LIMIT`
in a row the id is quarantined: the run recovers at once with a recap, every later decision does the
same (:func:`check`), the old transcript and snapshot are kept for export.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from baton.errors import BatonError
from baton.models import Mode, Outcome, RunRecord
from baton.runner import outage
from baton.runner.state import Context

if TYPE_CHECKING:
    from baton.sessions.tables import Strikes, StrikeStore

QUICK = 20.0  # seconds: a resume that ends failed sooner than this, without an answer, failed at once
LIMIT = 2  # strikes in a row that quarantine a conversation


def failed_at_once(record: RunRecord, stopped_by_baton: bool) -> bool:
    """Whether ``record`` (an attempt, ended) is a resume that failed at once (see the module
    docstring); ``stopped_by_baton``: baton or the machine stopped it, or it never started."""
    if stopped_by_baton or record.mode != Mode.RESUME or record.session_id_in is None:
        return False
    if record.outcome not in (Outcome.FAILED, Outcome.SESSION_LOST) or record.ended_at is None:
        return False
    return not answered(record) and record.ended_at - record.started_at < QUICK


def answered(record: RunRecord) -> bool:
    """Whether the model produced output in the attempt: any output counter of its usage above zero
    (``output_tokens``; the ACP agents' ``outputTokens``)."""
    return any(
        "output" in name.lower() and isinstance(n, int | float) and not isinstance(n, bool) and n > 0
        for name, n in record.usage.items()
    )


def check(ctx: Context, session_id: str) -> str | None:
    """The run's note when the key's conversation ``session_id`` is quarantined (then it is not
    resumed: the decision recovers), else None. One primary-key read; an unreadable store resumes
    (the agent judges)."""
    try:
        found = _strikes(ctx).strikes(ctx.key, session_id)
    except BatonError:
        return None
    if found is None:
        ctx.unstruck.add(session_id)
    return note(found) if found is not None and found.quarantined else None


def after(ctx: Context, record: RunRecord, stopped_by_baton: bool) -> str | None:
    """Count an ended attempt against its conversation: a strike when it failed at once, cleared when
    a resume reached the model. The note (also written on the run) when this attempt quarantined the
    conversation, else None. Through a store outage each write waits as the turn's end does
    (:func:`baton.runner.outage.alike`); past its bound the strikes stay as they were."""
    sid = record.session_id_in
    if record.mode != Mode.RESUME or sid is None:
        return None
    strikes = outage.alike(ctx, _strikes(ctx))
    with contextlib.suppress(BatonError):
        if not failed_at_once(record, stopped_by_baton):
            if (answered(record) or record.outcome == Outcome.SUCCEEDED) and sid not in ctx.unstruck:
                strikes.clear(ctx.key, sid)
            return None
        ctx.unstruck.discard(sid)
        why = record.error or f"the agent exited with code {record.exit_code}"
        found = strikes.strike(ctx.key, sid, record.id, why, LIMIT)
        if not found.quarantined:
            return None
        said = note(found)
        record.note = "; ".join(filter(None, [record.note, said]))
        ctx.store.update_run(record.id, fence=ctx.fence, note=record.note)
        return said
    return None


def note(found: Strikes) -> str:
    """What a run says of a quarantined conversation."""
    return (
        f"conversation {found.session_id} is quarantined: its resume failed at once {found.strikes} times "
        f"in a row (last, run {found.run_id}: {found.why}); a new conversation starts with a recap, and the "
        "old one is kept for export but never resumed again"
    )


def _strikes(ctx: Context) -> StrikeStore:
    # lazy: cold CLI
    from baton.sessions.tables import strike_store  # (SQLAlchemy: only once a store is opened)

    return strike_store(ctx.tables)
