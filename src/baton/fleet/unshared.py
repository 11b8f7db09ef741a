"""A turn whose runner died after recording its end, before sharing what it left (its transcript's
snapshot, its worktree's checkpoint, the session record: :func:`baton.runner.attempt` writes them
after the outcome). Its state is only in the home that ran it. A takeover in that home shares it now
(:func:`share_here`) and the turn counts as ended; anywhere else the turn runs again from the shared
state, and the attempt is marked ``crashed`` (:func:`disown`): one turn, one success in the store.
"""

from __future__ import annotations

import logging

from baton.errors import BatonError, Busy
from baton.keys import Key, parse_repo
from baton.models import Outcome, RunRecord, SessionStatus
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store.base import Store
from baton.store.leases import HOST, held, key_lease
from baton.workspace import keyspace, portable
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.fleet")
DISOWNED = (
    "its runner stopped after the agent's turn ended ({outcome}), before the turn's transcript and "
    "worktree were shared through the store (on {host}); the turn ran again from the shared state"
)


def share_here(settings: Settings, store: Store, record: RunRecord) -> bool:
    """Share the state ``record``'s dead runner left, when this home ran it: the snapshot, the checkpoint
    and the session record, under the key's lease (waited for: the dead runner's expires). False when
    this home did not run it, or the state could not be shared (the turn runs again)."""
    session = store.get_session(record.agent, record.repo, record.thread)
    sid = record.session_id_out
    if record.host != HOST or session is None or not sid:
        return False
    key = Key(record.agent, parse_repo(session.repo_url), record.thread)
    workdirs = Workdirs(settings)
    path = workdirs.worktree_path(key)
    agent = keyspace.holder(settings, key, sid)
    if session.worktree != str(path) or not path.is_dir() or not agent.transcript_files(sid):
        return False
    lease = key_lease(settings, store, key.id)
    try:
        with held(lease, 2 * settings.lease_ttl + 5, settings.heartbeat):
            take_snapshot(store, agent, key, sid, lease.proof)
            trouble = portable.publish_checkpoint(store, workdirs, key, path, session.branch, lease.proof)
            if trouble:
                store.update_run(
                    record.id, fence=lease.proof, note="; ".join(filter(None, [record.note, trouble]))
                )
            waits = record.outcome == Outcome.RATE_LIMITED
            session.agent_session_id, session.last_outcome = sid, record.outcome
            session.status = SessionStatus.WAITING if waits else SessionStatus.ACTIVE
            session.last_used_at = record.ended_at or session.last_used_at
            store.save_session(session, fence=lease.proof)
    except (Busy, BatonError, OSError) as exc:
        log.warning(
            "run %s: its state could not be shared from here (%s); its turn runs again", record.id, exc
        )
        return False
    log.warning("run %s had ended; its dead runner had not shared its state: shared now", record.id)
    return True


def disown(store: Store, record: RunRecord) -> None:
    """Mark ``record`` ``crashed``: its turn runs again elsewhere, from the state the store shares."""
    error = DISOWNED.format(outcome=record.outcome.value, host=record.host)
    store.update_run(record.id, outcome=Outcome.CRASHED, error=error)
