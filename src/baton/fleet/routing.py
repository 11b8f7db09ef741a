"""Which queue a job goes to, and what a worker does with a message that is not for its store. A job
lives in one store and only a worker on that store can run it, so the default queue is the store's
own, ``baton.<id>`` (:func:`queue_for`; the id read from the store itself,
:meth:`baton.store.base.Store.identity`: two URLs naming one database agree, two databases never do).
An explicit queue (``BATON_QUEUE``, ``baton worker --queues``) is shared by whoever names it, so every
message carries its sender's :class:`StoreTag`, and a worker that does not find the job in its store
logs an ERROR naming both stores (:func:`misrouted`) and sends the message back to the same queue
after a growing delay (:func:`bounce_delay`), never dropping it: a worker of the right store takes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from baton.settings import Settings
from baton.store.base import Store
from baton.store.engine import redact

QUEUE_PREFIX = "baton."
FIRST_BOUNCE_DELAY = 2.0  # seconds before a misrouted message is offered again, doubling per bounce
MAX_BOUNCE_DELAY = 300.0


@dataclass(frozen=True)
class StoreTag:
    """A store as a message names it: its identity and its URL without the password."""

    id: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "url": self.url}

    @classmethod
    def from_json(cls, data: Any) -> StoreTag | None:
        """The tag a message carries, or None (a message from an older baton, or malformed)."""
        if not isinstance(data, dict):
            return None
        ident, url = data.get("id"), data.get("url")
        if (
            not isinstance(ident, str)
            or not re.fullmatch(r"[0-9a-f]{1,64}", ident)
            or not isinstance(url, str)
        ):
            return None
        return cls(ident, "".join(c if c.isprintable() else "?" for c in url[:500]))  # it goes into logs

    def __str__(self) -> str:
        return f"{self.id} ({self.url})"


def store_tag(settings: Settings, store: Store) -> StoreTag:
    """This process's store as messages name it (one query, cached by the store)."""
    return StoreTag(store.identity(), redact(settings.resolved_store_url))


def queue_for(settings: Settings, tag: StoreTag) -> str:
    """``BATON_QUEUE`` when set, else the store's own queue ``baton.<id>``."""
    return job_queue(settings.queue, tag)


def job_queue(queue: str | None, tag: StoreTag) -> str:
    """Where a job's messages go: the queue it was submitted to (``jobs.queue``), else the store's own."""
    return queue or f"{QUEUE_PREFIX}{tag.id}"


def bounce_delay(bounces: int) -> float:
    """Seconds before a misrouted message's ``bounces``-th return (0-based) is offered again: doubling
    up to :data:`MAX_BOUNCE_DELAY`, so a message that no worker can take costs one log line a few
    minutes, not a hot loop."""
    return min(MAX_BOUNCE_DELAY, FIRST_BOUNCE_DELAY * float(2 ** min(bounces, 16)))


def misrouted(job_id: str, ours: StoreTag, theirs: StoreTag | None, queue: str, delay: float) -> str:
    """The ERROR a worker logs for a message whose job is not in its store. Jobs are never deleted
    from a store, so a job missing from the store that sent it means the store was replaced: the
    message goes back too."""
    if theirs is None:
        sender = "a store the message does not name (sent by an older baton)"
    elif theirs.id == ours.id:
        sender = "this same store, which no longer has it (was the database replaced?)"
    else:
        sender = f"store {theirs}"
    return (
        f"job {job_id} is not in this worker's store {ours}; it was submitted to {sender}. "
        f"Sending it back to queue {queue!r} in {delay:.0f} s for a worker of its store: a client and its "
        "workers must share BATON_STORE_URL (or use separate queues)"
    )
