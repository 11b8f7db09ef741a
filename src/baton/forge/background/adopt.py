"""Where an unpublished turn is published from. A turn is pushed from a worktree, so it is published
only where its worktree is: by the process whose home ran it (:func:`here`), or, when that machine
cannot (a worker with no forge tables, a publisher that died), by the replica holding the duty
``forge``, after bringing its own worktree of the thread to the checkpoint the turn's run shared through
the store (:func:`from_checkpoint`, :mod:`baton.workspace.portable`), under the key's lease; what the
publish committed is shared again, so the next turn starts from the pushed state wherever it runs. A
run that could not share its checkpoint (its note says so) is left to its own machine: publishing an
older state would push the wrong work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baton.errors import BatonError, Busy, Fenced
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.keys import Key, parse_repo
from baton.models import JobRecord, RunRecord
from baton.store.leases import HOST, held, key_lease
from baton.workspace import portable
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.forge")


def last_run(loop: ForgeLoop, job: JobRecord) -> RunRecord | None:
    """The run record of the job's last attempt (the key's last run when the job has no result)."""
    run_id = (job.result or {}).get("attempt_id")
    if run_id:
        return loop.store.get_run(run_id)
    runs = loop.store.list_runs(job.agent, job.repo, job.thread, 1)
    return runs[0] if runs else None


def here(loop: ForgeLoop, job: JobRecord) -> bool:
    """Whether this process has the worktree ``job``'s turn left: its last run ran on this host, and the
    key's worktree is this home's and is there."""
    run = last_run(loop, job)
    session = loop.store.get_session(job.agent, job.repo, job.thread)
    if run is None or run.host != HOST or session is None:
        return False
    path = Workdirs(loop.settings).worktree_path(Key(job.agent, parse_repo(session.repo_url), job.thread))
    return session.worktree == str(path) and path.is_dir()


def shared(loop: ForgeLoop, job: JobRecord) -> bool:
    """Whether the turn's last run shared its worktree's state through the store (its checkpoint there)."""
    run = last_run(loop, job)
    if run is None or portable.NOT_SHARED in (run.note or ""):
        return False
    return loop.store.get_checkpoint(job.agent, job.repo, job.thread) is not None


def publish_elsewhere(loop: ForgeLoop, job: JobRecord, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Publish another machine's turn from the store's checkpoint (:func:`from_checkpoint`); None when
    it is not done now (another process publishes it or runs the key, or the worktree could not be
    brought: the next heal tries again)."""
    try:
        return publish.after_job(
            loop,
            job.id,
            job.outcome or "crashed",
            fields,
            again=True,
            within=lambda: from_checkpoint(loop, job),
        )
    except Busy:
        return None  # the key is another process's now
    except (BatonError, OSError) as exc:
        log.warning("forge: turn %s not published from the store's checkpoint: %s", job.id, exc)
        return None


@contextmanager
def from_checkpoint(loop: ForgeLoop, job: JobRecord) -> Iterator[None]:
    """This home's worktree of the turn's thread, brought to the store's checkpoint under the key's
    lease for the ``with`` block (the publish); then its state (what the publish committed) is shared."""
    session = loop.store.get_session(job.agent, job.repo, job.thread)
    if session is None:
        raise BatonError(f"turn {job.id}: its thread has no session any more")
    key = Key(job.agent, parse_repo(session.repo_url), job.thread)
    lease = key_lease(loop.settings, loop.store, key.id)
    with held(lease, 0.0, loop.settings.heartbeat):
        workdirs = Workdirs(loop.settings)
        made, note = portable.worktree_from_store(loop.store, workdirs, key, session.branch, session.base)
        log.info("forge: publishing turn %s from here: %s", job.id, note or "the worktree is current")
        yield
        try:
            trouble = portable.publish_checkpoint(
                loop.store, workdirs, key, made.path, session.branch, lease.proof
            )
        except Fenced as exc:  # the turn is published: only its next state is not shared from here
            trouble = str(exc)
        if trouble:
            log.warning("forge: turn %s published; %s", job.id, trouble)
