"""How a mock or fake served from the command line waits for Ctrl-C or SIGTERM. :func:`hold` gives both
signals a handler (a parent that ignores SIGINT — `nohup … &`, a background `make test` — passes the
ignore on, and an ignored signal is discarded) and blocks them; call it before any server thread exists
(threads inherit the mask). :func:`wait` then takes one with sigwait: a signal that landed while the
server started or printed stays pending and ends the wait at once. (A handler that set an Event
deadlocked when it ran inside that Event's own wait, holding its lock.)"""

from __future__ import annotations

import signal

SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def hold() -> None:
    """Keep SIGINT and SIGTERM pending for :func:`wait` from now on."""
    for signum in SIGNALS:
        signal.signal(signum, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def pending() -> bool:
    """Whether one of them has already arrived."""
    return bool(signal.sigpending() & SIGNALS)


def wait() -> None:
    """Until one of them arrives (at once if one is pending)."""
    signal.sigwait(SIGNALS)
