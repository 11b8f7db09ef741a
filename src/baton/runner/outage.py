"""A turn's end through a store outage: once the agent's turn is over, every store call that records it
(its outcome, snapshot, checkpoint, session; the strikes through :func:`alike`) is tried again while
the store cannot be reached (:class:`~baton.errors.StoreUnavailable`: a restart, a failover, a cut
network), with a growing delay (:mod:`baton.retry`), up to ``store_outage_wait`` seconds for the
whole end. Each call is one transaction, rolled back when it fails, so trying it again is safe; the
key's lease is renewed meanwhile (:func:`baton.store.leases.held`) and every write stays fenced. Past
the bound the run raises a ``StoreUnavailable`` that says what happened to the turn: its run stays
``running`` in the store, and the key's next run marks it ``crashed`` and resumes its conversation, the
worktree as the agent left it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from baton import retry
from baton.errors import StoreUnavailable
from baton.runner.state import Context
from baton.store.base import KeyStore

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_RETRY, LAST_RETRY = 0.2, 2.0  # seconds: the first delay, doubling up to the last


def patient(ctx: Context, run_id: str, outcome: str) -> Context:
    """``ctx`` whose store waits out an outage, for the end of run ``run_id``, which ended ``outcome``."""
    store = waits_out(ctx.store, ctx.settings.store_outage_wait, run_id, outcome)
    return dataclasses.replace(ctx, store=store)


def waits_out(store: KeyStore, wait: float, run_id: str, outcome: str) -> KeyStore:
    """``store``, its calls tried again while it cannot be reached, until ``wait`` seconds from now."""
    return cast(KeyStore, _Patient(store, wait, run_id, outcome))


def alike(ctx: Context, role: T) -> T:
    """``role`` (a room's store over ``ctx.tables``, each of its calls one transaction) waiting out an
    outage as ``ctx.store`` does, until the same deadline; ``role`` itself before the turn's end."""
    store: Any = ctx.store
    return cast(T, store.alike(role)) if isinstance(store, _Patient) else role


class _Patient:
    """A store whose calls are tried again while it cannot be reached, until one deadline for all."""

    def __init__(self, store: KeyStore, wait: float, run_id: str, outcome: str) -> None:
        self._store, self._wait, self._run_id, self._outcome = store, wait, run_id, outcome
        self._deadline = time.monotonic() + wait

    def alike(self, other: Any) -> _Patient:
        """``other``'s calls tried again as this store's, until this store's deadline."""
        twin = _Patient(other, self._wait, self._run_id, self._outcome)
        twin._deadline = self._deadline
        return twin

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found
        return functools.partial(self._call, found)

    def _call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return retry.Retrying(
                retry=retry.retry_if_exception_type(StoreUnavailable),
                wait=retry.growing(FIRST_RETRY, LAST_RETRY),
                stop=self._past,
                before_sleep=self._said,
                sleep=retry.sleep,
                reraise=True,
            )(call, *args, **kwargs)
        except StoreUnavailable as exc:
            raise StoreUnavailable(self._gave_up(exc)) from exc

    def _past(self, state: retry.RetryCallState) -> bool:
        """The next try would come after the deadline: the error stands."""
        return time.monotonic() + (state.upcoming_sleep or 0.0) > self._deadline

    def _said(self, state: retry.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "run %s ended %s; its end is not recorded yet (%s); trying again in %.1f s",
            self._run_id,
            self._outcome,
            exc,
            state.upcoming_sleep,
        )

    def _gave_up(self, exc: StoreUnavailable) -> str:
        return (
            f"run {self._run_id} ended {self._outcome}, but the store stayed unreachable for "
            f"{self._wait:g} s (setting store_outage_wait) and its end is not recorded: {exc}. Its "
            "conversation and worktree are kept on this machine: the key's next run marks the run "
            "crashed and resumes the conversation on the worktree as the agent left it"
        )
