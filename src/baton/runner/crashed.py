"""Runs whose runner died mid-run: found, marked ``crashed`` and handed on, in one place.

A run is ``running`` in the store from the moment its record is written until its runner writes how
it ended. Whoever holds the key's lease next knows no runner is writing it any more: :func:`settle`
(the runner calls it first thing under the lease) marks such runs ``crashed``, kills whatever of
their agent outlived its runner on this host, and returns the key's last turn, so the first attempt is
told when it did not end (crashed, timed out, cancelled, limited) and what of it was stopped. Nothing else
in the runner looks at a dead runner's runs.
"""

from __future__ import annotations

from baton.keys import Key
from baton.models import Fence, Outcome, RunRecord, SessionStatus
from baton.runner.process import kill_tagged
from baton.sandbox.enclosure import end_stale
from baton.store.base import RunStore
from baton.store.leases import HOST

CRASHED = (
    "the runner stopped mid-run (killed or crashed); the conversation is kept and the next run is told "
    "this turn was interrupted"
)


def settle(store: RunStore, key: Key, fence: Fence | None = None) -> tuple[RunRecord | None, bool]:
    """Mark the key's dead runs crashed (:func:`mark_crashed`); the key's last run (None: none yet),
    and whether any was marked (then the key's session record was written too)."""
    crashed = mark_crashed(store, key, fence)
    last = store.list_runs(key.agent, key.repo.slug, key.thread, limit=1)
    return (last[0] if last else None), bool(crashed)


def mark_crashed(store: RunStore, key: Key, fence: Fence | None = None) -> list[RunRecord]:
    """Runs of ``key`` still ``running`` while we hold its lease belong to dead runners: mark them
    ``crashed`` and kill whatever of their agent outlived its runner on this host: what is left in the
    run's group, and (where there was none) processes tagged with its ``BATON_RUN_ID``."""
    crashed = []
    for record in stop_left_running(store, key):
        store.update_run(
            record.id,
            fence=fence,
            outcome=Outcome.CRASHED,
            ended_at=record.heartbeat_at or record.started_at,
            error=CRASHED,
        )
        crashed.append(record)
    if crashed:
        session = store.get_session(key.agent, key.repo.slug, key.thread)
        if session is not None:
            session.status = SessionStatus.ACTIVE
            session.last_outcome = Outcome.CRASHED
            store.save_session(session, fence=fence)
    return crashed


def stop_left_running(store: RunStore, key: Key) -> list[RunRecord]:
    """Kill whatever of the key's runs still ``running`` outlived its runner on this host; those runs.
    Unmarked here: :func:`mark_crashed` marks them under the key's lease. Also for a run of another key
    about to park this key's worktree (:mod:`baton.sync.sharing`): it holds the lease of the branch
    those runs wrote, which proves their runners gone, and their agents must not write on meanwhile."""
    records = store.list_runs(key.agent, key.repo.slug, key.thread, limit=100, outcome=Outcome.RUNNING)
    for record in records:
        if record.host == HOST:
            end_stale(record.id)
            kill_tagged("BATON_RUN_ID", record.id)
    return records
