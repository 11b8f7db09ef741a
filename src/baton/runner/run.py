"""The runner: one call of :func:`run` runs one instruction on one key, in this order:

validate everything that can be validated, once (:func:`~baton.runner.resolve.check_request`; nothing
written yet) → hold the key's lease (kept alive through every step by :func:`baton.store.leases.held`)
→ mark runs left ``running`` by dead runners as ``crashed``, killing their agent if it survived
(:func:`~baton.runner.crashed.settle`, which also says whether the key's last turn was cut short) →
prepare the key: refusals, worktree, session, sync (:func:`~baton.runner.prepare.prepare`; a worktree
made now is undone if the run is refused after it) → per attempt: choose the mode
(:mod:`~baton.runner.decide`) and run it (:mod:`~baton.runner.attempt`) → retry retryable outcomes
with backoff, resuming the same conversation → release the lease.

Each step hands the next a frozen value (:mod:`baton.runner.state`); an attempt is told whether it
is the first, the first after an interrupted turn, or a retry (:class:`~baton.runner.state.Start`).
"""

from __future__ import annotations

import os
import shutil
import time

from baton.agents import get_agent
from baton.errors import Cancelled, DiskFull, QuotaHeld
from baton.models import Mode, Outcome, RunRecord
from baton.runner import quota
from baton.runner.attempt import new_run_id, record_conflict, run_attempt, usage_delta
from baton.runner.crashed import mark_crashed, settle
from baton.runner.decide import decide
from baton.runner.prepare import prepare
from baton.runner.request import RunRequest, RunResult
from baton.runner.resolve import Resolved, check_request
from baton.runner.state import Attempt, Context, Prepared, Start
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.store.leases import held, key_lease
from baton.workspace.workdirs import Workdirs

__all__ = ["Resolved", "check_request", "mark_crashed", "new_run_id", "run", "usage_delta"]


def run(request: RunRequest, settings: Settings | None = None, store: Store | None = None) -> RunResult:
    """Run one instruction on one key. Raises BadInput (nothing written), Busy, DiskFull or QuotaHeld
    (its credential's usage quota is spent: nothing started); agent failures are outcomes in the
    result, not exceptions. With ``request.wait_quota`` a spent quota is waited for instead, and the
    run made again after the reset (the next turn delivers the instruction, once)."""
    settings = settings or load_settings()
    while True:
        try:
            result = _run_once(request, settings, store)
        except QuotaHeld as held:
            if not request.wait_quota:
                raise
            _wait_for_quota(request, held.resets_at, str(held))
            continue
        ended = result.run
        if not (request.wait_quota and ended.outcome == Outcome.RATE_LIMITED and ended.resets_at):
            return result
        _wait_for_quota(request, ended.resets_at, ended.error or "the usage quota is spent")


def _wait_for_quota(request: RunRequest, resets_at: float, why: str) -> None:
    """Sleep until a little after ``resets_at`` (:func:`~baton.runner.quota.jitter`); Cancelled when
    the request is cancelled meanwhile."""
    now = time.time()
    until = quota.jitter(resets_at, now)
    if request.on_wait is not None:
        request.on_wait(f"{why}; waiting until {quota.when(until, now)} (--wait-quota)")
    if request.cancel.wait(max(0.0, until - now)):
        raise Cancelled("cancelled while waiting for the usage quota to reset")


def _run_once(request: RunRequest, settings: Settings, store: Store | None) -> RunResult:
    resolved = check_request(request, settings)
    check_free_space(settings)
    own_store = store is None
    store = store or open_store(settings.resolved_store_url)
    try:
        operators = get_agent(resolved.key.agent, settings)  # its credential as the operator set it
        breaker = quota.Breaker.check(store, operators, os.environ)
        lease = key_lease(settings, store, resolved.key.id)
        with held(lease, resolved.request.wait, settings.heartbeat, resolved.request.cancel) as lost:
            last = settle(store, resolved.key, lease.proof)
            run_id = request.job_id or new_run_id()  # a job's id, or the first attempt's own
            ctx = Context(resolved, settings, store, Workdirs(settings), lost, lease.proof, run_id, breaker)
            return _execute(ctx, last)
    finally:
        if own_store:
            store.close()


def check_free_space(settings: Settings) -> None:
    """Refuse to start with less than ``min_free`` free where BATON_HOME lives: a run on a full
    disk cannot record what it did, and SQLite cannot commit."""
    probe = settings.home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < settings.min_free_bytes:
        raise DiskFull(
            f"only {free / 1024 / 1024:.0f} MiB free on the disk holding {settings.home} "
            f"(baton needs {settings.min_free_bytes / 2**20:.0f} MiB, setting min_free); free some space"
        )


def _execute(ctx: Context, last: RunRecord | None) -> RunResult:
    """Prepare the key, then its attempts; ``last``: the key's last turn (the first attempt is told
    when it did not end, and what of it was left running and stopped)."""
    prepared = prepare(ctx)
    warnings = list(prepared.warnings)
    if prepared.conflicted:
        record = record_conflict(ctx, prepared)  # the agent does not start: nothing to resume on
        return RunResult(run=record, attempts=[record], session=prepared.session, warnings=warnings)
    interrupted = last if last is not None and last.outcome.interrupted else None
    start = Start.AFTER_INTERRUPTION if interrupted else Start.FIRST
    left = last.left_running if last is not None else None
    attempts = _attempts(ctx, prepared, Attempt(1, start, interrupted, left_running=left))
    return RunResult(run=attempts[-1], attempts=attempts, session=prepared.session, warnings=warnings)


def _attempts(ctx: Context, prepared: Prepared, attempt: Attempt) -> list[RunRecord]:
    """Attempts until one ends for good: a lost conversation is recovered at once (no retry used up:
    the agent did no work), a retryable outcome is retried after a growing delay."""
    request = ctx.request
    attempts: list[RunRecord] = []
    retries_left, delay = request.retries, ctx.settings.retry_backoff
    decision = prepared.first
    while True:
        record = run_attempt(ctx, prepared, decision or decide(ctx, prepared, attempt), attempt)
        attempts.append(record)
        decision = None
        if record.outcome == Outcome.SESSION_LOST and attempt.forced != Mode.RECOVER:
            attempt = attempt.retry(record, forced=Mode.RECOVER)
            continue
        if not record.outcome.retryable or retries_left <= 0 or request.cancel.is_set():
            return attempts
        if ctx.lost.is_set() or (record.exit_code is None and record.outcome == Outcome.FAILED):
            return attempts  # the key is someone else's now, or the agent could not even start
        retries_left -= 1
        attempt = attempt.retry(record)
        if request.cancel.wait(delay):
            return attempts
        delay *= 2
