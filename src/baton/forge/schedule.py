"""The forge loop's background work in ``baton serve``: a reconcile every ``forge_reconcile`` seconds
(:func:`baton.forge.reconcile.reconcile`), and between them a quick heal every few seconds: a turn whose
process died before it was published (kill -9 between the agent's end and the forge's writes) is
published, and the turn of any thread with events left ``pending`` and no turn under way starts — an
event that arrived while the thread's last turn was publishing is picked up within seconds instead of
at the next reconcile.

A daemon thread: stopping the service does not wait for a forge that is slow to answer.
"""

from __future__ import annotations

import logging
import threading

from baton.forge import dispatch, publish
from baton.forge.loop import ForgeLoop
from baton.forge.reconcile import reconcile
from baton.forge.tables import forge_store
from baton.models import JobStatus

log = logging.getLogger("baton.forge")
HEAL_EVERY = 5.0


def heal(loop: ForgeLoop) -> int:
    """Publish the turns that ended unpublished (their process died between the agent's end and the
    forge's writes), then kick every thread with pending events; how many turns started."""
    for turn in forge_store(loop.store).unpublished_turns():
        job = loop.store.get_job(turn["job_id"])
        if job is None or job.status != JobStatus.DONE:
            continue  # queued or running: its own executor publishes it
        fields = {"result": job.result, "error": job.error}
        log.info("forge: publishing turn %s, which ended unpublished", job.id)
        publish.after_job(loop, job.id, job.outcome or "crashed", fields, again=True)
    started = 0
    for forge, repo, number in forge_store(loop.store).pending_forge_threads():
        binding = forge_store(loop.store).get_binding(forge, repo, number)
        if binding is not None and dispatch.kick(loop, binding) is not None:
            started += 1
    return started


class Schedule:
    """Reconcile every ``every`` seconds (0: never; the first one at start), heal in between."""

    def __init__(self, loop: ForgeLoop, every: float) -> None:
        self.loop, self.every = loop, every
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="baton-forge", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5.0)  # a round in flight ends first (the forge's timeout bounds it)
        self.loop.close()

    def _run(self) -> None:
        next_reconcile = self.loop.clock() if self.every > 0 else float("inf")
        while not self.stopping.is_set():
            try:
                if self.loop.clock() >= next_reconcile:
                    report = reconcile(self.loop)
                    next_reconcile = self.loop.clock() + self.every
                    log.info("forge reconcile: %s", report.to_json())
                heal(self.loop)
            except Exception:  # the store or a forge hiccuped: the next round tries again
                log.exception("forge: background round failed")
            self.stopping.wait(HEAL_EVERY)
