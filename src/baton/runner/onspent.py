"""What a spent usage quota means to whoever met it: one decision, made here for every caller (the runner,
the job executor and both executors). A spent quota is met in two ways (:class:`Spent`): the
credential's breaker held before the run started (:class:`~baton.errors.QuotaHeld`, nothing started),
or the run ended ``rate_limited``. What follows depends only on what the caller can do (:class:`Can`):
fall back, stop, wait here, queue again, or stop with exit 75, decided by :func:`consequence`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from baton.errors import QuotaHeld
from baton.models import Outcome, RunRecord
from baton.runner import quota

SPENT = "the usage quota is spent"  # what a rate_limited run that said nothing more is told as


class Then(enum.StrEnum):
    """What the caller does about a spent quota."""

    FALL_BACK = "fall_back"  # the fallback agent carries this turn in its own conversation
    WAIT = "wait"  # sleep here until a little after the reset, then run the instruction again
    REQUEUE = "requeue"  # back to the queue, first of its key, not started before the reset
    STOP = "stop"  # told to the caller: the run's result (rate_limited), or QuotaHeld (exit 75)


@dataclass(frozen=True)
class Spent:
    """A spent quota as it was met."""

    why: str  # for people: the breaker's message, or the run's error
    resets_at: float | None  # when runs may start again; None: the agent said nothing of it
    held: QuotaHeld | None = None  # the breaker refused the run before it started (nothing started)

    @classmethod
    def refused(cls, exc: QuotaHeld) -> Spent:
        return cls(str(exc), exc.resets_at, exc)

    @classmethod
    def ended(cls, record: RunRecord) -> Spent | None:
        """The run's spent quota, or None when it ended otherwise."""
        if record.outcome != Outcome.RATE_LIMITED:
            return None
        return cls(record.error or SPENT, record.resets_at or None)


@dataclass(frozen=True)
class Can:
    """What the caller can do about a spent quota."""

    fall_back_to: str | None = None  # on_limit fallback:<agent>: the agent that may carry the turn
    wait: bool = False  # --wait-quota: sleep here until the reset
    requeue: bool = False  # an executor: put the job back on its queue until the reset


@dataclass(frozen=True)
class Consequence:
    then: Then
    spent: Spent
    until: float | None = None  # WAIT and REQUEUE: not before then (the reset plus a jitter)


def consequence(spent: Spent, can: Can, *, cancelled: bool = False, now: float | None = None) -> Consequence:
    """What the caller does about ``spent``, in this order:

    1. **fall back**: with ``on_limit = fallback:<agent>``, the thread's turn is carried by the fallback
       agent in its own conversation (:func:`baton.runner.run`); a spent quota of the fallback's is
       decided again, with no second fallback;
    2. **stop** when there is nothing to wait for (a ``rate_limited`` run whose agent said no reset),
       or when the run that ended ``rate_limited`` was cancelled meanwhile (its result is its end; a job
       the breaker refused before it started is still queued again, and the executor ends it as
       cancelled, never started);
    3. **wait** here, with ``--wait-quota`` (the CLI, the SDK, a plan): sleep until a little after the
       reset and run the instruction again;
    4. **queue again**, in an executor (:mod:`baton.fleet.local`, :mod:`baton.fleet.queued`): the job
       goes back to the queue, still first of its key, and is not started before the reset;
    5. **stop**: the caller is told, the run's result (``rate_limited``) or :class:`QuotaHeld`, which
       the CLI ends with exit 75.

    Waiting and queueing start again at the same moment, the reset plus a jitter
    (:func:`baton.runner.quota.jitter`), so a thousand threads of one credential do not all start in
    the same second."""
    if can.fall_back_to is not None:
        return Consequence(Then.FALL_BACK, spent)
    if spent.resets_at is None or (cancelled and spent.held is None):
        return Consequence(Then.STOP, spent)
    if can.wait or can.requeue:
        until = quota.jitter(spent.resets_at, time.time() if now is None else now)
        return Consequence(Then.WAIT if can.wait else Then.REQUEUE, spent, until)
    return Consequence(Then.STOP, spent)


def requeue_at(held: QuotaHeld, now: float) -> float:
    """When an executor starts a job again that went back to its queue for ``held``."""
    then = consequence(Spent.refused(held), Can(requeue=True), now=now)
    assert then.then == Then.REQUEUE and then.until is not None
    return then.until
