"""One retry policy for the whole house, built on tenacity: every loop in baton that tries something
again (docs/architecture.md, "Trying again") is a :class:`tenacity.Retrying` made from here, so that
what "again" means is written once: a delay that grows by a factor up to a cap (:func:`growing`), a
stop by count or by a deadline that the next sleep would pass (tenacity's own ``stop_*``), and a sleep
that a cancel cuts short (:func:`cancellable`, which raises :class:`Stopped` out of the loop), looked
up when it is called (:func:`sleep`). Each loop keeps its own numbers, what it retries and what it
logs. A loop that gives up re-raises the last error itself (``reraise=True``, never tenacity's
``RetryError``, whose message names no cause a user can act on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    wait_exponential,
    wait_fixed,
    wait_none,
)

__all__ = [
    "RetryCallState",
    "Retrying",
    "Stopped",
    "cancellable",
    "growing",
    "retry_if_exception",
    "retry_if_exception_type",
    "retry_if_result",
    "sleep",
    "stop_after_attempt",
    "stop_before_delay",
    "stop_never",
    "wait_fixed",
    "wait_none",
]


class Stopped(Exception):
    """A cancel came while a loop waited to try again: the loop ends without another try."""


def growing(first: float, last: float = float("inf"), factor: float = 2.0) -> wait_exponential:
    """The delay before each try again: ``first``, then ``factor`` times the one before, at most
    ``last`` (tenacity's exponential wait, counted from the first failure)."""
    return wait_exponential(multiplier=first, exp_base=factor, max=last)


def sleep(seconds: float) -> None:
    """``time.sleep``, looked up at each call (a stubbed clock in a test still applies)."""
    time.sleep(seconds)


def cancellable(cancel: threading.Event | None) -> Callable[[float], None]:
    """A sleep that wakes as soon as ``cancel`` is set and raises :class:`Stopped` then (no
    ``cancel``: a plain :func:`sleep`)."""
    if cancel is None:
        return sleep

    def wait(seconds: float) -> None:
        if cancel.wait(seconds):
            raise Stopped

    return wait
