"""A worker's health, for probes that run a command (Kubernetes ``exec`` probes, a systemd watchdog
script): ``baton worker --check`` (ready: the store and the broker answered) and ``baton worker --check
--live`` (alive: the health file was written in the last :data:`STALE` seconds, whatever it says). A
probe runs every 10 s or so, in a new process: it must be cheap and must not depend on the worker
answering a request. So a thread of the worker's main process (:class:`Monitor`) keeps a small file
fresh, ``$BATON_HOME/worker-health.json`` (one worker per ``BATON_HOME``, as every deployment has), and
the probe only reads it (:func:`verdict`). A worker whose store or broker is gone is not ready but is
not restarted for it (its running turns would die with it); a missing or stale file is neither.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.settings import Settings
from baton.store import Store, store_for

log = logging.getLogger("baton.worker")

ANSWER = 5.0  # seconds a check may take before its service counts as not answering
STALE = 30.0  # seconds after which an unchanged file means the worker (or its monitor) is gone
FILE = "worker-health.json"
DRAINING = "shutting down: it takes no new run and finishes the ones it holds"


def interval(settings: Settings) -> float:
    """Seconds between checks: the heartbeat's, between 0.5 and 5 (a probe every 10 s sees a fresh one)."""
    return max(0.5, min(5.0, settings.heartbeat))


def health_path(settings: Settings) -> Path:
    return settings.home / FILE


@dataclass
class Health:
    at: float  # when the monitor wrote it (epoch seconds)
    pid: int
    ready: bool
    reason: str | None  # why not ready: which service did not answer, in its words


@dataclass
class Verdict:
    ok: bool
    message: str


def verdict(settings: Settings, live: bool = False, now: float | None = None) -> Verdict:
    """What a probe says: ``ok`` for a fresh file (and, unless ``live``, a ready worker)."""
    path = health_path(settings)
    try:
        data: Any = json.loads(path.read_text())
        health = Health(float(data["at"]), int(data["pid"]), bool(data["ready"]), data.get("reason"))
    except FileNotFoundError:
        return Verdict(
            False, f"no worker has written {path} (is `baton worker` running with this BATON_HOME?)"
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verdict(False, f"cannot read {path}: {exc}")
    age = (time.time() if now is None else now) - health.at
    if age > STALE:
        return Verdict(False, f"the worker (pid {health.pid}) last checked in {age:.0f} s ago: hung or gone")
    if live or health.ready:
        return Verdict(True, f"worker pid {health.pid}: {'ready' if health.ready else health.reason}")
    return Verdict(False, f"worker pid {health.pid} is not ready: {health.reason}")


class BrokerCheck:
    """One broker connection of the monitor's own, kept open between checks and made again after a
    failure."""

    def __init__(self, app: Any, queue: str) -> None:
        self.app, self.queue = app, queue
        self.conn: Any = None

    def __call__(self) -> None:
        try:
            if self.conn is None:
                self.conn = self.app.connection_for_read()
                self.conn.ensure_connection(max_retries=1, timeout=ANSWER)
            channel = self.conn.default_channel
            if self.conn.transport.driver_type == "redis":
                channel.client.ping()
            else:
                channel.queue_declare(queue=self.queue, passive=True)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.collect()  # without a round trip to a broker that may be gone
            except Exception as exc:  # a best effort on a broken connection
                log.debug("health: dropping the broker connection: %s", exc)


class Monitor:
    """The thread that keeps :func:`health_path` fresh: every :func:`interval` seconds it asks the store
    (one small read) and the broker (:class:`BrokerCheck`: Redis ``PING``, AMQP a passive declare of the
    worker's queue) whether they answer, each with at most :data:`ANSWER` seconds: a check that hangs (a
    frozen PostgreSQL keeps the connection open and never answers) is reported as not answering, and
    the next round waits for it instead of piling up threads. Then it writes the file atomically (a
    probe never reads half of it)."""

    def __init__(
        self,
        settings: Settings,
        broker: BrokerCheck,
        stopping: Callable[[], bool] = lambda: False,
        on_drain: Callable[[], None] = lambda: None,
    ) -> None:
        """``stopping``: whether the worker was told to stop (read each round); ``on_drain``: called
        once, from this thread, when it first says so."""
        self.settings, self.broker = settings, broker
        self.stopping, self.on_drain = stopping, on_drain
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="baton-health", daemon=True)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="baton-health-check")
        self.pending: dict[str, Future[None]] = {}
        self.store: Store | None = None
        self.draining = False

    def start(self, **_: Any) -> None:
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()

    def close(self, timeout: float = 2.0) -> None:
        """The worker stopped: end the thread (and its checks' threads when none hangs), so the process
        leaves the quick way (``baton.cli``'s ``_leave``, taken only when no other thread runs). A hung
        check's thread stays, and the process then exits the ordinary way, as before."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _loop(self) -> None:
        try:
            due = 0.0
            while not self.stop.is_set():
                if not self.draining and self.stopping():
                    # shutting down (SIGTERM): not ready from now on, still alive while it drains
                    # (a liveness probe must not kill a worker finishing its turns)
                    self.draining, due = True, 0.0
                    self.on_drain()
                if time.monotonic() >= due:
                    self.write(self.check())
                    due = time.monotonic() + interval(self.settings)
                self.stop.wait(min(1.0, interval(self.settings)))  # a drain is seen within a second
        finally:
            # idle checks' threads are joined (at once); a check that hangs is not waited for here
            hung = any(not future.done() for future in self.pending.values())
            self.pool.shutdown(wait=not hung, cancel_futures=True)
            self.broker.close()
            if self.store is not None:
                self.store.close()

    def check(self) -> Health:
        if self.draining:
            return Health(time.time(), os.getpid(), False, DRAINING)
        reasons = [r for r in (self._ask("store", self._store), self._ask("broker", self.broker)) if r]
        return Health(time.time(), os.getpid(), not reasons, "; ".join(reasons) or None)

    def _store(self) -> None:
        if self.store is None:
            self.store = store_for(self.settings)
        self.store.list_sessions(limit=1)

    def _ask(self, name: str, check: Any) -> str | None:
        """None when ``check`` answered within :data:`ANSWER` seconds, else why not."""
        future = self.pending.get(name)
        if future is None or future.done():
            future = self.pending[name] = self.pool.submit(check)
        try:
            future.result(timeout=ANSWER)
        except FutureTimeout:
            return f"{name} did not answer in {ANSWER:.0f} s"
        except Exception as exc:  # the service's own words
            return f"{name} unreachable: {exc}"
        return None

    def write(self, health: Health) -> None:
        path = health_path(self.settings)
        temp = path.with_name(f".{FILE}.{os.getpid()}")
        try:
            temp.write_text(json.dumps(asdict(health)))
            os.replace(temp, path)
        except OSError as exc:  # a full disk: the probe sees a stale file, which is the truth
            log.warning("health: cannot write %s: %s", path, exc)
