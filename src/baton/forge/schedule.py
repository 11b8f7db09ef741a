"""The forge loop's background work in ``baton serve``: a reconcile every ``forge_reconcile`` seconds
(:func:`baton.forge.reconcile.reconcile`), and between them a quick heal every few seconds: a turn whose
process died before it was published (kill -9 between the agent's end and the forge's writes) is
published, and the turn of any thread with events left ``pending`` and no turn under way starts — an
event that arrived while the thread's last turn was publishing is picked up within seconds instead of
at the next reconcile. Both are the duty ``forge`` (:mod:`baton.store.duties`): one replica of a fleet
does them, so N replicas make the forge traffic of one, and a turn is healed only by the process that
has its worktree (:func:`here`). A daemon thread: stopping the service does not wait for a slow forge.
"""

from __future__ import annotations

import logging
import threading

from baton.forge import dispatch, publish
from baton.forge.loop import ForgeLoop
from baton.forge.reconcile import reconcile
from baton.forge.tables import forge_store
from baton.keys import Key, parse_repo
from baton.models import JobRecord, JobStatus
from baton.store.duties import Duty
from baton.store.leases import HOST
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.forge")
HEAL_EVERY = 5.0


def heal(loop: ForgeLoop, kick: bool = True) -> int:
    """Publish the turns that ended unpublished (their process died between the agent's end and the
    forge's writes) whose worktree is here, then (``kick``) start the turn of every thread with pending
    events; how many turns started."""
    for turn in forge_store(loop.store).unpublished_turns():
        job = loop.store.get_job(turn["job_id"])
        if job is None or job.status != JobStatus.DONE:
            continue  # queued or running: its own executor publishes it
        if not here(loop, job):
            continue  # another machine's turn: published there (its worker heals it), never from here
        fields = {"result": job.result, "error": job.error}
        log.info("forge: publishing turn %s, which ended unpublished", job.id)
        publish.after_job(loop, job.id, job.outcome or "crashed", fields, again=True)
    return kick_pending(loop) if kick else 0


def here(loop: ForgeLoop, job: JobRecord) -> bool:
    """Whether this process has the worktree ``job``'s turn left: its run (the key's last, when the
    job ended without a result) ran on this host, and the key's worktree is this home's and is there.
    A replica without it must not publish the turn: it would push nothing, or an older state."""
    run_id = (job.result or {}).get("attempt_id")  # the last attempt's run record
    store = loop.store
    runs = [store.get_run(run_id)] if run_id else store.list_runs(job.agent, job.repo, job.thread, 1)
    session = loop.store.get_session(job.agent, job.repo, job.thread)
    if not runs or runs[0] is None or runs[0].host != HOST or session is None:
        return False
    path = Workdirs(loop.settings).worktree_path(Key(job.agent, parse_repo(session.repo_url), job.thread))
    return session.worktree == str(path) and path.is_dir()


def kick_pending(loop: ForgeLoop) -> int:
    """Start the turn of every thread with events left pending and no turn under way; how many."""
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
                    report = reconcile(self.loop)
                    next_reconcile = self.loop.clock() + self.every
                    log.info("forge reconcile: %s", report.to_json())
                heal(self.loop, kick=mine)  # every replica publishes what only it can
            except Exception:  # the store or a forge hiccuped: the next round tries again
                log.exception("forge: background round failed")
            self.stopping.wait(HEAL_EVERY)
