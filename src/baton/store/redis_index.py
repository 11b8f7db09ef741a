"""The session index: a key ``(agent, repo slug, thread)`` → the agent's session id and branch, in Redis,
expiring with the session (``PEXPIREAT`` at the record's ``expires_at``).

The SQL store is the truth; the index is a cache in front of it that any worker reads in one round
trip. It holds nothing that cannot be rebuilt:

- **Rebuilt when Redis comes back empty.** A marker key (``<prefix>index:ready``) is written at the end
  of a rebuild; every ``get``/``set``/``delete`` checks it in the same round trip. When it is missing
  (Redis restarted without persistence, flushed, or never filled), the first caller that takes the
  rebuild lock refills the index from :meth:`Store.list_sessions` and writes the marker again.
- **A miss reads the store.** ``get`` falls back to the store on a miss and caches what it finds, so a
  key evicted under memory pressure or missed by a rebuild is still answered right.
- **A rebuild never overwrites fresher news.** Rebuild and miss fills write an entry only if it is
  absent and the key was not deleted in the last minute (a tombstone): a ``set`` or ``delete`` that
  races a rebuild wins over the older copy the rebuild read from the store.

The runner's order keeps it right: save (or delete) in the store first, then ``set`` (or ``delete``)
here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from baton.errors import BatonError
from baton.models import SessionRecord
from baton.settings import Settings
from baton.store.base import Store
from baton.store.redis import RedisConn, connect

log = logging.getLogger("baton.redis")

TOMBSTONE_MS = 60_000  # a deleted key is not refilled by a rebuild or miss for this long
LOCK_MS = 120_000  # one rebuild at a time; a rebuilder that died frees it after this
CHUNK = 500  # entries per pipelined round trip while rebuilding

# Fill an entry unless one is there (a fresher set) or the key was deleted a moment ago (a tombstone).
# KEYS: entry, tombstone; ARGV: expire-at in ms (0: none), then field, value, ...
_FILL = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
return 1
"""

# Delete the key only if it still holds this value (a lock's owner releasing it).
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class IndexEntry:
    """What the index knows about a key."""

    agent: str
    repo: str  # slug
    thread: str
    session_id: str | None  # the agent's own session id; None before its first turn
    branch: str
    status: str  # the record's SessionStatus value
    expires_at: float  # seconds since the epoch; 0: no expiry


def _expire_ms(session: SessionRecord) -> int:
    return int(session.expires_at * 1000) if session.expires_at > 0 else 0


def _live(session: SessionRecord, now: float) -> bool:
    return session.expires_at <= 0 or session.expires_at > now


def _fields(session: SessionRecord) -> dict[str, str]:
    return {
        "session_id": session.agent_session_id or "",
        "branch": session.branch,
        "status": str(session.status.value),
        "expires_at": repr(float(session.expires_at)),
    }


def _entry(agent: str, repo: str, thread: str, fields: dict[str, str]) -> IndexEntry:
    return IndexEntry(
        agent,
        repo,
        thread,
        fields.get("session_id") or None,
        fields.get("branch", ""),
        fields.get("status", ""),
        float(fields.get("expires_at", "0") or 0),
    )


class SessionIndex:
    """The index of one deployment (its key prefix) over its SQL store."""

    def __init__(self, conn: RedisConn, store: Store) -> None:
        self.conn = conn
        self.store = store
        self.marker = conn.key("index", "ready")
        self._lock = conn.key("index", "rebuilding")
        self._fill = conn.client.register_script(_FILL)
        self._unlock = conn.client.register_script(_UNLOCK)

    def _keys(self, agent: str, repo: str, thread: str) -> tuple[str, str]:
        name = f"{agent}/{repo}/{thread}"
        return self.conn.key("session", name), self.conn.key("gone", name)

    def set(self, session: SessionRecord) -> None:
        """Index ``session`` (after it was saved in the store), replacing what was there; an expired
        one is removed instead."""
        key, gone = self._keys(session.agent, session.repo, session.thread)
        with self.conn.errors("updating the session index"):
            pipe = self.conn.client.pipeline(transaction=True)
            pipe.exists(self.marker)
            pipe.delete(key, gone)
            if _live(session, time.time()):
                pipe.hset(key, mapping=cast(Any, _fields(session)))
                if session.expires_at > 0:
                    pipe.pexpireat(key, _expire_ms(session))
            ready = pipe.execute()[0]
        if not ready:
            self.ensure()

    def get(self, agent: str, repo: str, thread: str, fallback: bool = True) -> IndexEntry | None:
        """The key's entry. On a miss (and ``fallback``), the store's record, cached for next time."""
        key, _gone = self._keys(agent, repo, thread)
        with self.conn.errors("reading the session index"):
            pipe = self.conn.client.pipeline(transaction=False)
            pipe.exists(self.marker)
            pipe.hgetall(key)
            ready, found = pipe.execute()
        if not ready and self.ensure():  # refilled from the store: read again
            with self.conn.errors("reading the session index"):
                found = self.conn.client.hgetall(key)
        if found:
            return _entry(agent, repo, thread, found)
        if not fallback:
            return None
        session = self.store.get_session(agent, repo, thread)
        if session is None or not _live(session, time.time()):
            return None
        with self.conn.errors("filling the session index"):
            self._fill_one(session, self.conn.client)
        return _entry(agent, repo, thread, _fields(session))

    def delete(self, agent: str, repo: str, thread: str) -> None:
        """Forget the key (after it was deleted from the store); a rebuild running meanwhile will not
        bring it back."""
        key, gone = self._keys(agent, repo, thread)
        with self.conn.errors("updating the session index"):
            pipe = self.conn.client.pipeline(transaction=True)
            pipe.exists(self.marker)
            pipe.delete(key)
            pipe.set(gone, "1", px=TOMBSTONE_MS)
            ready = pipe.execute()[0]
        if not ready:
            self.ensure()

    def ensure(self) -> bool:
        """Rebuild the index if its marker is missing and no other process is rebuilding it; True when
        this call rebuilt it. Until then ``get`` answers misses from the store."""
        token = uuid.uuid4().hex
        with self.conn.errors("checking the session index"):
            if self.conn.client.exists(self.marker):
                return False
            if not self.conn.client.set(self._lock, token, nx=True, px=LOCK_MS):
                return False
        try:
            self.rebuild()
        finally:
            with self.conn.errors("unlocking the session index"):
                self._unlock(keys=[self._lock], args=[token])
        return True

    def rebuild(self, store: Store | None = None) -> int:
        """Refill the index from ``store`` (default: this index's) and mark it ready; returns how many
        entries were written (entries already there, being fresher, are kept)."""
        now = time.time()
        sessions = [s for s in (store or self.store).list_sessions() if _live(s, now)]
        written = 0
        with self.conn.errors("rebuilding the session index"):
            for start in range(0, len(sessions), CHUNK):
                pipe = self.conn.client.pipeline(transaction=False)
                for session in sessions[start : start + CHUNK]:
                    self._fill_one(session, pipe)
                written += sum(int(result) for result in pipe.execute())
            ready = {"built_at": time.time(), "sessions": len(sessions), "written": written}
            self.conn.client.set(self.marker, json.dumps(ready))
        return written

    def _fill_one(self, session: SessionRecord, client: Any) -> Any:
        keys = self._keys(session.agent, session.repo, session.thread)
        flat = [item for pair in _fields(session).items() for item in pair]
        return self._fill(keys=list(keys), args=[_expire_ms(session), *flat], client=client)


def index_session(settings: Settings, store: Store, session: SessionRecord, deleted: bool = False) -> None:
    """Keep the deployment's index (when ``BATON_REDIS_URL`` is set) in step with a session the store
    has just saved (or deleted). Best effort: the index is a cache of the store, and a failure is
    logged, never raised (the next set or a rebuild puts it right)."""
    if not settings.redis_url:
        return
    try:
        conn = connect(settings)
        if conn is None:
            return
        index = SessionIndex(conn, store)
        if deleted:
            index.delete(session.agent, session.repo, session.thread)
        else:
            index.set(session)
    except BatonError as exc:
        log.warning("session index (Redis): %s: %s", session.thread, exc)
