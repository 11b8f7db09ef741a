"""A finished turn outlives a store outage: its ending (the run's outcome, the transcript's snapshot,
the worktree's checkpoint, the session) is written when the store answers again, tried with a growing
delay for up to ``store_wait`` seconds while the key's lease is kept (its heartbeat rides out the
outage, and nobody can take a lease the store cannot grant). Only :class:`~baton.errors.StoreUnreachable`
is waited for: any other error is the store's answer. Past the bound the error is raised as before,
and the work stays in the worktree and the agent's home for the key's next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from baton import retry
from baton.errors import StoreUnreachable
from baton.runner.state import Context

log = logging.getLogger("baton.runner")
T = TypeVar("T")


def patiently(ctx: Context, write: Callable[[], T]) -> T:
    """``write()``, again while the store is unreachable, for up to ``ctx.settings.store_wait`` s."""

    def waiting(state: retry.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("run of %s: the turn ended; waiting for the store to record it: %s", ctx.key, error)

    return retry.Retrying(
        retry=retry.retry_if_exception_type(StoreUnreachable),
        wait=retry.growing(0.5, 10.0),
        stop=retry.stop_before_delay(ctx.settings.store_wait),
        sleep=retry.sleep,
        before_sleep=waiting,
        reraise=True,
    )(write)
