"""A thread whose issue or pull request was merged or closed on the forge (its ``closed`` webhook, or the
reconcile's find of it): :func:`close_thread` closes the binding and stops its forge turns — a queued one
is cancelled before it starts (its events dropped, saying why, and marked published so nothing is
written back), a running one is stopped through the executor's own cancel (the run ends ``cancelled``
and, as every run's end does, checkpoints the worktree and keeps the conversation). The work is never
deleted; a person's own run of the key is theirs to cancel.
"""

from __future__ import annotations

import logging
from typing import Any

from baton.fleet.cancel import request_cancel
from baton.forge.data.records import Binding, BindingStatus, EventStatus
from baton.forge.data.tables import forge_store
from baton.forge.turn.loop import ForgeLoop
from baton.models import JobStatus

log = logging.getLogger("baton.forge")
MAX_TURNS = 100  # queued or running turns of one thread looked at


def close_thread(loop: ForgeLoop, binding: Binding, why: str, actor: str) -> dict[str, Any]:
    """Close ``binding`` (``why``: "merged", "closed on the forge") and stop its turns; what was done
    (the events dropped and the turns cancelled or stopping, when there were any). Audited as
    ``forge.closed`` with all of it."""
    binding.status, binding.note, binding.updated_at = BindingStatus.CLOSED, why, loop.clock()
    forge_store(loop.store).save_binding(binding)
    stopped = stop_turns(loop, binding, why)
    loop.store.audit("forge.closed", binding.conversation, actor, {"why": why, **stopped})
    return {"closed": binding.conversation, **{k: v for k, v in stopped.items() if v}}


def stop_turns(loop: ForgeLoop, binding: Binding, why: str) -> dict[str, Any]:
    """Drop the thread's waiting events, cancel its queued turns and ask its running one to stop."""
    store = forge_store(loop.store)
    waiting = [
        e.id
        for e in store.forge_events(binding.forge, binding.repo, binding.number, pr=binding.on_pr)
        if e.status in (EventStatus.PENDING, EventStatus.HELD) and e.id is not None
    ]
    store.set_forge_events(waiting, EventStatus.DROPPED, f"the thread is closed ({why})")
    cancelled, stopping = [], []
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        jobs = loop.store.list_jobs(
            binding.agent, binding.repo_slug, binding.thread, status=status, limit=MAX_TURNS
        )
        for job in jobs:
            events = store.events_of_job(job.id)
            if not events or not _cancel(loop, job.id):
                continue  # not a forge turn (a person's run), or it ended meanwhile
            after = loop.store.get_job(job.id)
            if after is not None and after.status == JobStatus.DONE and after.started_at is None:
                cancelled.append(job.id)  # it never ran: nothing to publish, its events dropped
                ids = [e.id for e in events if e.id is not None]
                store.set_forge_events(
                    ids, EventStatus.DROPPED, f"its turn was cancelled: the thread is {why}"
                )
                store.mark_published(job.id, {"cancelled": why}, loop.clock())
            else:
                stopping.append(job.id)  # it stops at its next boundary; its run's end checkpoints
    if cancelled or stopping:
        log.info("forge %s (%s): cancelled %s, stopping %s", binding.conversation, why, cancelled, stopping)
    return {"dropped_events": len(waiting), "cancelled": cancelled, "stopping": stopping}


def _cancel(loop: ForgeLoop, job_id: str) -> bool:
    """The executor's cancel (this process's executor runs or queues the turn), else the store's
    request, which a queue's worker watches; False when the job ended already."""
    if loop.cancel is not None and loop.cancel(job_id):
        return True
    return request_cancel(loop.store, job_id)
