"""``baton doctor``'s fleet checks, for a machine configured with a broker or Redis:

- **broker**: it answers at ``BATON_BROKER_URL`` (a connection with a short timeout; an error if not:
  runs submitted here would fail);
- **redis**: it answers ``PING`` at ``BATON_REDIS_URL`` (an error if not: leases and cancel flags
  live there);
- **workers**: which workers of this store heartbeat recently (name, host, queues, age), and whether
  one reads the queue runs submitted here go to. None is a warning, not an error: runs wait, queued,
  until one starts.
"""

from __future__ import annotations

import time
from typing import Any

from baton.errors import BatonError
from baton.fleet.presence import alive_window, describe, reads, recent_workers
from baton.fleet.routing import queue_for, store_tag
from baton.housekeeping.doctor import Check, CheckStatus
from baton.settings import Settings
from baton.store import store_for
from baton.store.redis import ping_url, safe_url

TIMEOUT = 3.0  # seconds a broker gets to answer


def fleet_checks(settings: Settings) -> list[Check]:
    """The checks that apply to this configuration (none without a broker or Redis)."""
    checks = []
    if settings.broker_url:
        checks.append(check_broker(settings))
    if settings.redis_url:
        checks.append(check_redis(settings))
    if settings.broker_url:
        checks.append(check_workers(settings))
    return checks


def check_broker(settings: Settings, timeout: float = TIMEOUT) -> Check:
    where = safe_url(settings.broker_url)
    try:
        # lazy: the celery extra
        from kombu import Connection  # type: ignore[attr-defined]
    except ImportError:
        return Check("broker", CheckStatus.ERROR, f"{where}: not checked, the celery extra is not installed")
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    conn: Any = Connection(settings.broker_url, connect_timeout=timeout, transport_options=options)  # type: ignore[no-untyped-call]
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as exc:  # kombu's and the transports' errors: refused, timed out, login refused
        detail = f"{where} does not answer: {exc.__class__.__name__}: {exc}; runs cannot be submitted"
        return Check("broker", CheckStatus.ERROR, detail)
    finally:
        conn.release()
    return Check("broker", CheckStatus.OK, f"{where} answers")


def check_redis(settings: Settings) -> Check:
    where = safe_url(settings.redis_url)
    try:
        if settings.redis_url:
            ping_url(settings.redis_url)
    except BatonError as exc:
        return Check("redis", CheckStatus.ERROR, f"{where}: {exc}")
    return Check("redis", CheckStatus.OK, f"{where} answers PING")


def check_workers(settings: Settings) -> Check:
    """The workers of this store seen recently, and whether one reads this machine's queue."""
    try:
        store = store_for(settings)
    except BatonError as exc:
        return Check("workers", CheckStatus.WARN, f"not checked: {exc}")
    try:
        tag, now = store_tag(settings, store), time.time()
        seen = recent_workers(settings, store, now)
    except BatonError as exc:
        return Check("workers", CheckStatus.WARN, f"not checked: {exc}")
    finally:
        store.close()
    queue = queue_for(settings, tag)
    listed = "; ".join(describe(w, now) for w in seen)
    if not seen:
        return Check(
            "workers",
            CheckStatus.WARN,
            f"no worker of store {tag} seen in the last {alive_window(settings):.0f} s: runs submitted "
            f"here wait on queue {queue!r} until one starts (`baton worker` with this BATON_STORE_URL)",
        )
    if not any(reads(w, queue) for w in seen):
        detail = (
            f"none of the workers of store {tag} reads queue {queue!r}, where runs go from here: {listed}"
        )
        return Check("workers", CheckStatus.WARN, detail)
    return Check("workers", CheckStatus.OK, f"{len(seen)} up for store {tag}, queue {queue!r}: {listed}")
