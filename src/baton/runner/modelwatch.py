"""Watching a turn's model API: the CLI's retries shown as they come, and a model that cannot be reached
made an outcome within seconds, not minutes (a mistyped ``ANTHROPIC_BASE_URL`` used to look like baton
hanging). :class:`ModelWatch` reads each line of the turn through the adapter's classifier
(:mod:`baton.agents.signals`): every signal becomes a ``baton.model`` event for the run's log and live
subscribers, and after ``unreachable_grace`` seconds of nothing but "no connection" baton tries the
model's address itself and stops the turn when it cannot connect either (:meth:`ModelWatch.stop`); any
other event (the model answered) ends the streak. What a user sees: docs/cli.md.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from baton.agents import Agent
from baton.agents.signals import Signal, SignalKind
from baton.runner.process import RunLog

Publish = Callable[[dict[str, Any]], None]
PROBE_TIMEOUT = 3.0  # seconds baton's own connection attempt waits


class ModelWatch:
    """One turn's watch: its events go to ``log`` and to ``publish`` (the
    run's live subscribers). ``event`` and ``stderr`` are called from the process's reader threads,
    ``stop`` from its supervisor: the state is behind a lock."""

    def __init__(
        self,
        agent: Agent,
        url: str | None,
        grace: float,
        env: Mapping[str, str],
        log: RunLog,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent, self.url, self.grace, self.env, self.log = agent, url, grace, env, log
        self._publish, self._clock = publish, clock
        self._lock = threading.Lock()
        self.last: Signal | None = None  # the last signal of the turn
        self._since: float | None = None  # the first "no connection" of the current streak
        self._probe: _Probe | None = None
        self._gateway = False  # baton's model gateway said it: the CLI's retries are of the gateway's 502s

    @property
    def last_error(self) -> str | None:
        """What the agent last said of the model API, for a timeout's message."""
        return self.last.detail if self.last is not None else None

    def event(self, event: dict[str, Any] | None) -> None:
        """One parsed stdout event: a signal, or the model answered (the streak ends)."""
        if event is None:
            return
        signal = self.agent.signal(event)
        if signal is not None:
            self._saw(signal)
            return
        with self._lock:
            if not self._gateway:  # behind the gateway, baton's own probe says whether it can be reached
                self._since = None

    def stderr(self, line: str) -> None:
        if (signal := self.agent.stderr_signal(line)) is not None:
            self._saw(signal)

    def unreachable(self, detail: str) -> None:
        """baton's model gateway could not reach the model API (the agent, behind it, sees only its
        502s and retries them): a "no connection" the CLI's retries do not end."""
        self._gateway = True
        self._saw(Signal(SignalKind.UNREACHABLE, detail))

    def _saw(self, signal: Signal) -> None:
        with self._lock:
            self.last = signal
            if signal.kind != SignalKind.UNREACHABLE and not self._gateway:
                self._since = None  # the server answered: it can be reached
            elif self._since is None:
                self._since = self._clock()
        where = self.url or "its model API"
        text = f"waiting for the model at {where}: {signal.detail}"
        if signal.retry is not None:
            text += f", retry {signal.retry}"
        note = {
            "type": "baton.model",
            "state": signal.kind.value,
            "url": self.url,
            "detail": signal.detail,
            "retry": signal.retry,
            "text": text,
        }
        self.log.note(note)
        if self._publish is not None:
            self._publish(note)

    def stop(self) -> str | None:
        """Why the turn must stop now: its model could not be reached for ``grace`` seconds, neither by
        the agent nor by baton (a TCP connection to its host and port, or to the proxy the agent's
        environment names for it); None otherwise. When baton connects, the CLI's trouble is its own
        (its proxy, its walls), and it is left to its retries for another grace."""
        if not self.grace or self.url is None:
            return None
        with self._lock:
            since = self._since
        if since is None or self._clock() - since < self.grace:
            self._probe = None
            return None
        if self._probe is None:
            self._probe = _Probe(self.url, self.env)
        if not self._probe.done.is_set():
            return None
        cause, self._probe = self._probe.cause, None
        if cause is None:  # baton connects: wait another grace before trying again
            with self._lock:
                self._since = self._clock() if self._since is not None else None
            return None
        return self._unreached(cause, f"no answer for {self.grace:g} s")

    def unreached(self) -> str | None:
        """Why a turn that failed while baton's model gateway could not reach the model API failed (the
        CLI gave up on the gateway's 502s before the grace: Codex does), when baton cannot connect
        either; None otherwise."""
        with self._lock:
            streak = self._gateway and self._since is not None
        if not streak or self.url is None or (cause := reach(self.url, self.env)) is None:
            return None
        return self._unreached(cause, "the agent gave up")

    def _unreached(self, cause: str, how: str) -> str:
        said = f"; the agent said: {self.last.detail}" if self.last else ""
        return (
            f"the model API at {self.url} could not be reached: {cause} "
            f"({how}{said}; BATON_UNREACHABLE_GRACE sets how long)"
        )


class _Probe:
    """baton's own connection attempt to a URL, in a thread of its own (a name lookup can hang)."""

    def __init__(self, url: str, env: Mapping[str, str]) -> None:
        self.cause: str | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(url, env), daemon=True, name="baton-probe").start()

    def _run(self, url: str, env: Mapping[str, str]) -> None:
        try:
            self.cause = reach(url, env)
        finally:
            self.done.set()


def reach(url: str, env: Mapping[str, str], timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens (or to the proxy ``env`` names
    for it); else why not, in words."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    via = ""
    if (proxy := _proxy(parts.scheme, host, env)) is not None:
        host, port = proxy
        via = f" (through the proxy {host}:{port})"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror:
        return f"the name {host} does not resolve{via}"
    except ConnectionRefusedError:
        return f"connection refused{via}"
    except TimeoutError:
        return f"no answer within {timeout:g} s{via}"
    except OSError as exc:
        return f"{exc.strerror or exc}{via}"
    return None


def _proxy(scheme: str, host: str, env: Mapping[str, str]) -> tuple[str, int] | None:
    """The proxy the agent's environment sends ``scheme://host`` through, as curl reads it."""
    found = {k.lower(): v for k, v in env.items() if k.lower().endswith("_proxy") and v}
    for entry in (e.strip().lstrip(".").lower() for e in found.get("no_proxy", "").split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    value = found.get(f"{scheme}_proxy") or found.get("all_proxy")
    if not value:
        return None
    parts = urlsplit(value if "://" in value else f"http://{value}")
    return (parts.hostname, parts.port or 80) if parts.hostname else None
