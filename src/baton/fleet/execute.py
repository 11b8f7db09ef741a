"""Running one started job and recording how it ended: what both executors share. The in-process pool
(:mod:`baton.fleet.local`) and a queue's worker (:mod:`baton.fleet.queued`) differ in how a job reaches
them, how long it waits for its key, and what they know of earlier attempts (a :class:`JobRun` says
it); once a job is started they run it alike, with :func:`execute`: open its event stream, run its
request with :func:`baton.runner.run.run`, turn what happened into an outcome (:func:`_outcome`) and
end the job (:func:`baton.fleet.jobs.finish`), waiting out a store outage (:func:`_through_outage`),
as the job's events do (:mod:`baton.fleet.eventsink`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from baton import retry, tracing
from baton.errors import BatonError, Busy, Cancelled, QuotaHeld, StoreError
from baton.fleet import jobs
from baton.fleet.eventsink import DRAIN, FIRST_RETRY, LAST_RETRY
from baton.models import Outcome, RunRecord
from baton.runner import onspent
from baton.runner.request import AttemptJson, RunResult
from baton.runner.run import run
from baton.settings import Settings
from baton.store import Store

NOT_STARTED = "cancelled before it started"
# Called when a job's run has ended, before the end is recorded: (job id, outcome, the job's fields:
# ``result``, ``error``). The forge room registers its publisher here (baton.forge.writes.publish), so a
# thread's next turn cannot start before its last one has been pushed and reported.
AfterJob = Callable[[str, str, dict[str, Any]], None]
AFTER_JOB: dict[str, AfterJob] = {}


def _yes() -> bool:
    return True


@dataclass
class JobRun:
    """What an executor decides about running one job; :func:`execute` does the rest."""

    cancel: threading.Event  # stops the run: a cancel, or (a worker) the loss of the job's lease
    wait: float  # seconds the run waits for its key's lease
    log: logging.Logger  # where a job that failed with an internal error is logged
    on_start: Callable[[RunRecord], None] | None = None  # the runner's: each attempt as it starts
    watch: Callable[[], AbstractContextManager[Any]] = nullcontext  # held around the run (a cancel watch)
    earlier: Callable[[], list[AttemptJson]] | None = None  # attempts before (a takeover): listed first
    defer_busy: bool = False  # Busy (the key held past ``wait``) is raised instead of failing the job
    # a spent usage quota (the credential's breaker holds, or the run ended rate_limited) raises
    # QuotaHeld instead of ending the job: the executor queues it again until the reset
    defer_quota: bool = False
    may_end: Callable[[], bool] = _yes  # asked just before the end is recorded: False leaves it unrecorded


def execute(settings: Settings, store: Store, job_id: str, how: JobRun) -> str | None:
    """Run the started job ``job_id`` and record how it ended; returns the outcome recorded, or None
    when ``how.may_end`` said no (a worker that lost the job's lease leaves the end to its successor).
    Raises :class:`Busy` with ``how.defer_busy``, and whatever recording the end raises."""
    try:
        events = jobs.EventLog(settings, job_id, store)
    except OSError as exc:  # a full disk: the job cannot even stream its events
        fields: dict[str, Any] = {"error": f"cannot write its event stream: {exc}"}
        return _end(settings, store, job_id, how, Outcome.FAILED.value, None, fields)
    with events, _traced(store, job_id):
        outcome, fields = _outcome(settings, store, job_id, how, events)
        tracing.note({"baton.outcome": outcome})
        return _end(settings, store, job_id, how, outcome, events, fields)


def _traced(store: Store, job_id: str) -> AbstractContextManager[Any]:
    """With tracing on, the job's span (``job``), in the trace of whoever submitted it (the context its
    stored request carries: :func:`baton.tracing.carry`), after a span of its wait in the queue."""
    if not tracing.on():
        return nullcontext()
    try:
        job = store.get_job(job_id)
    except BatonError:  # the store away: the run says so, the trace starts here
        job = None
    parent = tracing.carried(job.request)[1] if job is not None else None
    if job is not None:
        tracing.waited("job.queued", job.submitted_at, parent, {"baton.job": job_id})
    return tracing.span("job", {"baton.job": job_id}, parent)


def _outcome(
    settings: Settings, store: Store, job_id: str, how: JobRun, events: jobs.EventLog
) -> tuple[str, dict[str, Any]]:
    """How the run ended, as the job's outcome and fields (``result``, ``error``): the run's own outcome
    (with its ``result`` and ``error``), else

    - ``cancelled``: the cancel came before the run started, or while it waited for its key's lease;
    - none yet, with ``defer_quota``: its credential's usage quota is spent (:class:`QuotaHeld` from the
      breaker, or a run that ended ``rate_limited``), raised as :class:`QuotaHeld`: the executor queues
      the job again until the reset (``not_before``), and the run after it delivers the instruction;
    - ``failed`` with the message of a :class:`BatonError` (the key's session refuses the request, a
      full disk, a fenced write, the key held past the wait unless the executor defers that), or
      ``internal error: ...`` for anything else. (A job that cannot even write its event stream, a full
      disk, is ``failed`` too: :func:`execute`.)"""
    try:
        result = _run(settings, store, job_id, how, events)
    except Cancelled as exc:  # while waiting for its key: it never started
        return Outcome.CANCELLED.value, {"error": str(exc)}
    except BatonError as exc:  # BadInput (the key's session refuses it), Busy, DiskFull, Fenced, ...
        if how.defer_busy and isinstance(exc, Busy):
            raise
        if isinstance(exc, QuotaHeld) and _requeued(onspent.Spent.refused(exc), how):
            raise
        return Outcome.FAILED.value, {"error": str(exc)}
    except Exception as exc:
        how.log.exception("job %s failed", job_id)
        return Outcome.FAILED.value, {"error": f"internal error: {type(exc).__name__}: {exc}"}
    if result is None:
        return Outcome.CANCELLED.value, {"error": NOT_STARTED}
    spent = onspent.Spent.ended(result.run)
    if spent is not None and spent.resets_at is not None and _requeued(spent, how):
        raise QuotaHeld(spent.why, spent.resets_at, "")
    data = result.to_json()
    if how.earlier is not None:
        data["attempts"] = how.earlier() + data["attempts"]
    return result.run.outcome.value, {"result": data, "error": result.run.error}


def _requeued(spent: onspent.Spent, how: JobRun) -> bool:
    """Whether the job goes back to its executor's queue (raised to it as QuotaHeld) for ``spent``
    (:func:`baton.runner.onspent.consequence`), instead of ending."""
    can = onspent.Can(requeue=how.defer_quota)
    then = onspent.consequence(spent, can, cancelled=how.cancel.is_set())
    return then.then == onspent.Then.REQUEUE


def _run(
    settings: Settings, store: Store, job_id: str, how: JobRun, events: jobs.EventLog
) -> RunResult | None:
    """The job's request, run; None when it was cancelled before it started."""
    job = store.get_job(job_id)
    if job is None:
        raise BatonError(f"job {job_id} vanished from the store")
    if how.cancel.is_set():
        return None
    request = jobs.build_request(tracing.carried(job.request)[0])
    request.wait, request.cancel, request.on_event = how.wait, how.cancel, events.on_event
    request.on_start, request.job_id, request.submitted_by = how.on_start, job_id, job.actor
    with how.watch():
        return run(request, settings, store)


def _end(
    settings: Settings,
    store: Store,
    job_id: str,
    how: JobRun,
    outcome: str,
    events: jobs.EventLog | None,
    fields: dict[str, Any],
) -> str | None:
    if not _through_outage(job_id, how.log, how.may_end):
        return None
    _after(job_id, outcome, fields, how.log)
    _through_outage(job_id, how.log, lambda: jobs.finish(store, settings, job_id, outcome, events, **fields))
    return outcome


T = TypeVar("T")


def _through_outage(job_id: str, log: logging.Logger, step: Callable[[], T]) -> T:
    """``step`` (a write of the job's end), tried again while the store is away, up to
    :data:`~baton.fleet.eventsink.DRAIN` seconds: a run that ended during a store outage (a restart,
    a failover) is recorded when the store is back, not run again by the worker that takes the job
    over. Both steps are idempotent (a lease renewal; ``done`` with the same fields)."""

    def said(state: retry.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "job %s: its end is not recorded yet (%s); trying again in %.1f s",
            job_id,
            exc,
            state.upcoming_sleep,
        )

    return retry.Retrying(
        retry=retry.retry_if_exception_type(StoreError),
        wait=retry.growing(FIRST_RETRY, LAST_RETRY),
        stop=retry.stop_before_delay(DRAIN),  # the next try would come after DRAIN: the error stands
        before_sleep=said,
        sleep=retry.sleep,
        reraise=True,
    )(step)


def _after(job_id: str, outcome: str, fields: dict[str, Any], log: logging.Logger) -> None:
    """Run the registered :data:`AFTER_JOB` hooks; a hook that fails is logged, never the job's end."""
    for name, hook in list(AFTER_JOB.items()):
        try:
            hook(job_id, outcome, fields)
        except Exception:
            log.exception("job %s: the %s hook failed", job_id, name)
