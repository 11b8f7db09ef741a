"""Lease grants through Redis (``BATON_LEASE_BACKEND=redis``): the :class:`baton.store.leases.LeaseBackend`
the SQL store also implements, for deployments whose store should not carry every heartbeat. A lease is
one string key, ``<prefix>lease:{KEY}``, holding the grant as JSON (holder, host, pid, acquired, fence)
and expiring by Redis's own clock (``PX``): an expired lease is simply gone. Beside it
``<prefix>fence:{KEY}`` counts grants (``INCR``, never expires, survives releases), so every grant gets
a larger fencing token. Grant, renewal and release are Lua scripts, atomic in Redis; the braces keep
both keys in one Redis Cluster slot. Each grant's token is recorded in the SQL store too
(:meth:`RedisLeases._record`), so the store's fenced writes refuse every older grant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from baton.errors import Fenced
from baton.store.base import Lease, LeaseStore
from baton.store.redis import RedisConn

# KEYS: lease, counter; ARGV: holder, host, pid, ttl ms, a holder the caller may replace ("" none).
# Returns {1, value, now_ms, pttl} granted, or {0, value, now_ms, pttl} blocked by value.
_GRANT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('GET', KEYS[1])
local fence
if current then
  local held = cjson.decode(current)
  if held.holder == ARGV[1] then
    fence = held.fence
  elseif held.holder ~= ARGV[5] then
    return {0, current, now, redis.call('PTTL', KEYS[1])}
  end
end
if not fence then fence = redis.call('INCR', KEYS[2]) end
local value = cjson.encode({holder = ARGV[1], host = ARGV[2], pid = tonumber(ARGV[3]),
                            acquired = now, fence = fence})
redis.call('SET', KEYS[1], value, 'PX', ARGV[4])
return {1, value, now, tonumber(ARGV[4])}
"""

# KEYS: lease; ARGV: holder, ttl ms. 1 renewed, 0 not the holder (or expired).
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease; ARGV: holder. The counter stays, so the next grant's token is larger.
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).holder == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, counter; ARGV: holder, at least. Raise the counter to max(counter + 1, at least) and
# give the holder's grant that token; 0 when the holder no longer holds the lease.
_RAISE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local held = cjson.decode(current)
if held.holder ~= ARGV[1] then return 0 end
local fence = redis.call('INCR', KEYS[2])
if fence < tonumber(ARGV[2]) then
  fence = tonumber(ARGV[2])
  redis.call('SET', KEYS[2], fence)
end
held.fence = fence
redis.call('SET', KEYS[1], cjson.encode(held), 'KEEPTTL')
return fence
"""


def _lease(key: str, value: str, now_ms: int, pttl_ms: int) -> Lease:
    held = json.loads(value)
    now = now_ms / 1000
    expires = now + pttl_ms / 1000 if pttl_ms >= 0 else float("inf")
    return Lease(
        key,
        held["holder"],
        held["host"],
        int(held["pid"]),
        held["acquired"] / 1000,
        expires,
        int(held["fence"]),
    )


class RedisLeases:
    """Leases of one deployment (its key prefix) in Redis, their tokens recorded in ``store``."""

    def __init__(self, conn: RedisConn, store: LeaseStore) -> None:
        self.conn = conn
        self.store = store
        client = conn.client
        self._grant = client.register_script(_GRANT)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._raise = client.register_script(_RAISE)

    def _keys(self, key: str) -> list[str]:
        return [self.conn.key("lease", "{" + key + "}"), self.conn.key("fence", "{" + key + "}")]

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        """Grant ``lease`` (updated in place: times by Redis's clock, its fencing token), or return the
        lease that blocks it. ``can_take(existing, now)`` may replace a live holder (an expired one is
        already gone): a holder on this host whose process is gone is replaced at once, as with the SQL
        lease (the value carries host and pid for that). A free lease, or one this holder holds (it
        keeps its token), gets the next token and ``SET ... PX``. Renewal is ``PEXPIRE`` only if the
        value still names this holder, release ``DEL`` likewise."""
        granted, existing, now = self._attempt(lease, ttl, "")
        if not granted and can_take(existing, now):
            granted, existing, now = self._attempt(lease, ttl, existing.holder)
        if not granted:
            return existing
        lease.acquired_at, lease.expires_at = existing.acquired_at, existing.expires_at
        lease.fence = existing.fence
        try:
            lease.fence = self._record(lease)
        except BaseException:
            self.release_lease(lease.key, lease.holder)
            raise
        return None

    def _attempt(self, lease: Lease, ttl: float, replace: str) -> tuple[bool, Lease, float]:
        """One grant script: (granted, the grant or the blocker, Redis's clock in seconds)."""
        args: list[Any] = [lease.holder, lease.host, lease.pid, max(int(ttl * 1000), 1), replace]
        with self.conn.errors(f"granting the lease of {lease.key}"):
            ok, value, now_ms, pttl = self._grant(keys=self._keys(lease.key), args=args)
        return bool(ok), _lease(lease.key, value, int(now_ms), int(pttl)), int(now_ms) / 1000

    def _record(self, lease: Lease) -> int:
        """Record the grant's token in the store (:meth:`LeaseStore.advance_fence`), so the store refuses
        writes of every older grant; raise Redis's counter past the store's if Redis lost it. Returns the
        token the store accepted.

        If Redis lost its counters (restarted empty), the store has seen larger tokens than Redis now
        hands out; the grant then raises its counter past the store's: to one above it when
        :class:`Fenced` says which it saw (``seen``), else doubling until the store accepts it. Still
        one holder at a time: tokens only need to grow, not to be consecutive. (One deployment uses one
        lease backend: SQL grants and Redis grants of the same keys at once would keep raising each
        other.)"""
        token = lease.fence
        while True:
            try:
                self.store.advance_fence(lease.key, token)
                return token
            except Fenced as exc:
                # one above the store's token when the error names it, else double until accepted
                seen = getattr(exc, "seen", None)
                at_least = seen + 1 if isinstance(seen, int) else token * 2
                with self.conn.errors(f"raising the fencing token of {lease.key}"):
                    raised = int(self._raise(keys=self._keys(lease.key), args=[lease.holder, at_least]))
                if not raised:
                    raise
                token = raised

    def renew_lease(self, key: str, holder: str, ttl: float) -> bool:
        with self.conn.errors(f"renewing the lease of {key}"):
            return bool(self._renew(keys=self._keys(key)[:1], args=[holder, max(int(ttl * 1000), 1)]))

    def release_lease(self, key: str, holder: str) -> None:
        with self.conn.errors(f"releasing the lease of {key}"):
            self._release(keys=self._keys(key)[:1], args=[holder])
