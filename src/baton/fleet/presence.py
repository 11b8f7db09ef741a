"""Who serves this store: the workers whose heartbeats it holds (each ``baton worker``'s janitor writes
its row every ``heartbeat`` seconds), and what to tell a person whose run no worker has taken.

A worker counts as *up* while its latest heartbeat is younger than :func:`alive_window` (a lease TTL,
at least three heartbeats): the same patience a lease gets before it is taken over.
"""

from __future__ import annotations

import time

from baton.fleet.routing import queue_for, store_tag
from baton.models import WorkerRecord
from baton.settings import Settings
from baton.store.base import Store


def alive_window(settings: Settings) -> float:
    """Seconds since its last heartbeat within which a worker counts as up."""
    return max(settings.lease_ttl, 3 * settings.heartbeat)


def recent_workers(settings: Settings, store: Store, now: float | None = None) -> list[WorkerRecord]:
    """The workers of this store seen within :func:`alive_window`, by name."""
    now = time.time() if now is None else now
    return store.list_workers(seen_since=now - alive_window(settings))


def reads(worker: WorkerRecord, queue: str) -> bool:
    """Whether ``worker`` consumes ``queue`` (its row lists its queues, comma-separated)."""
    return queue in worker.queue.split(",")


def describe(worker: WorkerRecord, now: float) -> str:
    age = max(0.0, now - worker.seen_at)
    return f"{worker.name} on {worker.host} (queues {worker.queue}, seen {age:.0f} s ago)"


def unclaimed_notice(settings: Settings, store: Store, job_id: str, waited: float) -> str:
    """What ``baton submit --follow`` says when its run is still queued after ``waited`` seconds."""
    tag, now = store_tag(settings, store), time.time()
    queue = queue_for(settings, tag)
    seen = recent_workers(settings, store, now)
    serving = [w for w in seen if reads(w, queue)]
    if serving:
        why = "the workers reading it are busy (all slots, or an earlier run of this key): " + "; ".join(
            describe(w, now) for w in serving
        )
    elif seen:
        why = f"workers of this store are up but none reads queue {queue!r}: " + "; ".join(
            describe(w, now) for w in seen
        )
    else:
        why = f"no worker of this store has been seen in the last {alive_window(settings):.0f} s"
    start = "`baton worker`" + (f" --queues {queue}" if settings.queue else "")
    return (
        f"run {job_id} is still queued after {waited:.0f} s: no worker has taken it. It waits on queue "
        f"{queue!r} for a worker of store {tag}; {why}. Start one where BATON_STORE_URL names this "
        f"store and BATON_BROKER_URL this broker: {start}. Still waiting (Ctrl-C stops following; the "
        "run stays queued)."
    )
