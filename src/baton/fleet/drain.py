"""A worker told to stop (SIGTERM: a pod's termination, ``systemctl stop``) drains: it takes no new
job, lets the turns it runs finish, and past ``BATON_DRAIN_TIMEOUT`` seconds hands the rest back.
Celery's warm shutdown does the first two but would wait forever, and the orchestrator's SIGKILL at
the end of its grace period would kill the agent mid-turn without its checkpoint or transcript
snapshot (another worker would resume from the previous turn's worktree). So the main process writes
the drain's deadline into ``$BATON_HOME/worker-drain`` (the pool's processes are forked: a file is
what they share), every running job watches it (:class:`HandBack`), and past it the job stops its run
as a cancel would and goes back to ``queued`` with a message for another worker, which resumes the
conversation with the "you were interrupted" note. The grace period to set: docs/fleet.md, Draining.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from baton.settings import Settings

log = logging.getLogger("baton.worker")

FILE = "worker-drain"
EVERY = 1.0  # seconds between a running job's looks at the deadline


def drain_path(settings: Settings) -> Path:
    return settings.home / FILE


def clear(settings: Settings) -> None:
    """A starting worker forgets the drain of its previous life in this home."""
    drain_path(settings).unlink(missing_ok=True)


def begin(settings: Settings) -> None:
    """The worker is shutting down: write the deadline (none with ``drain_timeout`` 0: wait for the
    turns, however long, as Celery alone would). Called by the health monitor's thread when it sees
    Celery's stop flag (:mod:`baton.fleet.health`), within a second or so of the SIGTERM."""
    if settings.drain_timeout <= 0:
        return
    deadline = time.time() + settings.drain_timeout
    try:
        drain_path(settings).write_text(f"{deadline}\n")
    except OSError as exc:  # the turns then finish or are killed with the process, as before
        log.error("drain: cannot write %s: %s", drain_path(settings), exc)
        return
    log.warning(
        "draining: no new runs; running turns past %.0f s are handed back to the queue",
        settings.drain_timeout,
    )


def deadline(settings: Settings) -> float | None:
    """The drain's deadline (epoch seconds), or None while the worker is not draining."""
    try:
        return float(drain_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None


class HandBack:
    """Watches the drain's deadline for one running job; ``stop`` (the job's run's cancel) is set
    when it passes, and :attr:`due` says that this, not a cancel, stopped it."""

    def __init__(self, settings: Settings, job_id: str, stop: threading.Event) -> None:
        self.settings, self.job_id, self.stop = settings, job_id, stop
        self.due = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"baton-drain-{job_id}", daemon=True)

    def __enter__(self) -> HandBack:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=EVERY + 1)

    def _watch(self) -> None:
        while not self._done.wait(EVERY):
            at = deadline(self.settings)
            if at is not None and time.time() >= at and not self.stop.is_set():
                log.warning(
                    "job %s: the drain's deadline passed: stopping its turn to hand it back", self.job_id
                )
                self.due = True
                self.stop.set()
                return
