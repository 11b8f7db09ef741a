"""The forge loop's background work in ``baton serve``: a reconcile every ``forge_reconcile`` seconds
(:func:`baton.forge.background.reconcile.reconcile`), and between them a quick heal every few seconds: a turn
whose process died before it was published (kill -9 between the agent's end and the forge's writes) is
published, and the turn of any thread with events left ``pending`` and no turn under way starts — an
event that arrived while the thread's last turn was publishing is picked up within seconds instead of
at the next reconcile. Both are the duty ``forge`` (:mod:`baton.store.duties`): one replica of a fleet
does them, so N replicas make the forge traffic of one; a turn is healed where its worktree is, or from
its checkpoint in the store (:mod:`baton.forge.background.adopt`). A daemon thread: stopping the service does
not wait for a slow forge.
"""

from __future__ import annotations

import logging
import threading

from baton.errors import Fenced
from baton.forge.background import adopt
from baton.forge.background.reconcile import reconcile
from baton.forge.data.tables import forge_store
from baton.forge.turn import start
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.models import JobStatus
from baton.store.duties import Duty

log = logging.getLogger("baton.forge")
HEAL_EVERY = 5.0


def heal(loop: ForgeLoop, duty: bool = True) -> int:
    """Publish the turns that ended unpublished (no publisher where they ran, or it died between the
    agent's end and the forge's writes): those whose worktree is here, and (``duty``: this process holds
    the duty ``forge``) those of other machines from the store's checkpoint
    (:mod:`baton.forge.background.adopt`); then (``duty``) start the turn of every thread with pending events;
    how many turns started."""
    for turn in forge_store(loop.store).unpublished_turns():
        job = loop.store.get_job(turn["job_id"])
        if job is None or job.status != JobStatus.DONE:
            continue  # queued or running: its own executor publishes it
        fields = {"result": job.result, "error": job.error}
        if adopt.here(loop, job):
            log.info("forge: publishing turn %s, which ended unpublished", job.id)
            publish.after_job(loop, job.id, job.outcome or "crashed", fields, again=True)
        elif duty and adopt.shared(loop, job):
            adopt.publish_elsewhere(loop, job, fields)
    return kick_pending(loop) if duty else 0


def kick_pending(loop: ForgeLoop) -> int:
    """Start the turn of every thread with events left pending and no turn under way; how many."""
    started = 0
    for forge, repo, number, pr in forge_store(loop.store).pending_forge_threads():
        binding = loop.binding(forge, repo, number, pr)
        if binding is not None and start.kick(loop, binding) is not None:
            started += 1
    return started


class Schedule:
    """Reconcile every ``every`` seconds (0: never; the first one at start), heal in between."""

    def __init__(self, loop: ForgeLoop, every: float) -> None:
        self.loop, self.every = loop, every
        self.duty = Duty(loop.settings, "forge", loop.store)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="baton-forge", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5.0)  # a round in flight ends first (the forge's timeout bounds it)
        self.duty.release()
        self.loop.close()

    def _run(self) -> None:
        next_reconcile = self.loop.clock() if self.every > 0 else float("inf")
        while not self.stopping.is_set():
            try:
                mine = self.duty.mine()
                if mine and self.loop.clock() >= next_reconcile:
                    report = reconcile(self.loop, self.duty.still)
                    next_reconcile = self.loop.clock() + self.every
                    log.info("forge reconcile: %s", report.to_json())
                heal(self.loop, duty=mine)  # every replica publishes what only it can
            except Fenced as exc:  # another replica holds the duty now: it does the rest
                log.info("forge: %s", exc)
            except Exception:  # the store or a forge hiccuped: the next round tries again
                log.exception("forge: background round failed")
            self.stopping.wait(HEAL_EVERY)
