"""The runner: one call of :func:`run` runs one instruction on one key — validate once
(:func:`~baton.runner.resolve.check_request`, nothing written yet) → hold the key's lease
(:func:`baton.store.leases.held`), then its branch's (:mod:`baton.store.branchlease`) → settle the runs
dead runners left (:func:`~baton.runner.crashed.settle`) → prepare the key
(:func:`~baton.runner.prepare.prepare`) → per attempt, choose the mode (:mod:`~baton.runner.decide`) and
run it (:mod:`~baton.runner.attempt`), retrying retryable outcomes on the same conversation → release
the leases. Each step hands the next a frozen value (:mod:`baton.runner.state`); a spent quota's
consequence is :mod:`baton.runner.onspent`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import threading
import time
from collections.abc import Callable

from baton import environment, retry, tracing
from baton.agents import get_agent
from baton.errors import Cancelled, DiskFull, NotWaiting, QuotaHeld
from baton.files import make_private_dir
from baton.models import Access, Environment, Mode, Outcome, PromptKind, RunRecord, SessionRecord
from baton.runner import capped, onspent, quarantine, quota
from baton.runner.attempt import new_run_id, record_conflict, run_attempt, usage_delta
from baton.runner.crashed import mark_crashed, settle
from baton.runner.decide import decide, follow_up, told_new
from baton.runner.prepare import key_branch, prepare
from baton.runner.request import RunRequest, RunResult
from baton.runner.resolve import Resolved, check_request
from baton.runner.state import Attempt, Context, Decision, Prepared, Start
from baton.settings import Settings, check_on_limit, load_settings
from baton.store import Store, store_for
from baton.store.branchlease import branch_lease
from baton.store.leases import held, key_lease
from baton.workspace.workdirs import Workdirs

__all__ = ["Resolved", "check_request", "mark_crashed", "new_run_id", "run", "usage_delta"]


def run(request: RunRequest, settings: Settings | None = None, store: Store | None = None) -> RunResult:
    """Run one instruction on one key. Raises BadInput (nothing written), Busy (BranchBusy: another key
    writes its branch), DiskFull or QuotaHeld
    (its credential's usage quota is spent: nothing started); agent failures are outcomes in the
    result, not exceptions. A spent quota (the run ended ``rate_limited``, or its breaker holds) is, by
    ``on_limit``, the result (``wait``), or the thread's turn carried by the fallback agent in its own
    conversation (``fallback:<agent>``, :func:`_fall_back`); with ``request.wait_quota`` it is waited
    for, and the run made again after the reset (the next turn delivers the instruction). Which of
    these is :func:`baton.runner.onspent.consequence`'s decision, as for the executors."""
    settings = settings or load_settings()
    tracing.configure(settings)
    can = onspent.Can(
        fall_back_to=check_on_limit(request.on_limit or settings.on_limit, "on_limit"),
        wait=request.wait_quota,
    )
    while True:
        result, spent = _spent(
            functools.partial(_run_once, request, settings, store, partner=can.fall_back_to)
        )
        if spent is None:
            assert result is not None
            return result
        then = onspent.consequence(spent, can)
        if then.then == onspent.Then.FALL_BACK:
            assert can.fall_back_to is not None
            before = result.attempts if result is not None else []
            result, spent = _spent(
                functools.partial(
                    _fall_back, request, can.fall_back_to, settings, store, then.spent.why, before
                )
            )
            if spent is None:
                assert result is not None
                return result
            # the fallback's own quota spent too: decided again, without a second fallback
            then = onspent.consequence(spent, dataclasses.replace(can, fall_back_to=None))
        if then.then == onspent.Then.WAIT:
            _wait_for_quota(request, then)
            continue
        if spent.held is not None:
            raise spent.held
        assert result is not None
        return result


def _spent(turn: Callable[[], RunResult]) -> tuple[RunResult | None, onspent.Spent | None]:
    """A turn's result (None: its breaker refused it) and the spent quota it met, if it met one."""
    try:
        result = turn()
    except QuotaHeld as held:
        return None, onspent.Spent.refused(held)
    return result, onspent.Spent.ended(result.run)


def _fall_back(
    request: RunRequest,
    fallback: str,
    settings: Settings,
    store: Store | None,
    why: str,
    before: list[RunRecord],
) -> RunResult:
    """The turn carried by the fallback agent on the same repo and thread while ``request.agent``'s
    quota is spent: its first time from a hand-off (a recap of the original conversation, its work
    seeded), later in its own conversation after taking the original's later work; it hands the
    thread back the same way, since the original agent's next run (with ``on_limit``) takes the
    fallback's later work (:func:`_run_once`'s ``partner``). A spent quota of the fallback's too
    raises QuotaHeld (``--wait-quota`` waits for it, a queued run is queued again)."""
    carried = f"carried for {request.agent}, whose usage quota is spent (on_limit fallback:{fallback})"
    # on a branch of its own (baton/<fallback>/<thread>), never the request's: git checks a branch out
    # in one worktree only, and the original key's next run takes the fallback's work from it
    carrier = dataclasses.replace(
        request,
        agent=fallback,
        on_limit="wait",
        handoff_from=None,
        mode=Mode.AUTO,
        carried_for=carried,
        branch=None,
    )
    result = _run_once(carrier, settings, store, partner=request.agent, first_from=True)
    note = (
        f"{request.agent}'s usage quota is spent ({why}); {fallback} carried this turn in its own "
        f"conversation (on_limit fallback:{fallback}); {request.agent}'s next run takes its work back"
    )
    return dataclasses.replace(
        result, attempts=[*before, *result.attempts], warnings=[note, *result.warnings]
    )


def _wait_for_quota(request: RunRequest, then: onspent.Consequence) -> None:
    """Sleep until ``then.until`` (a little after the reset: :func:`~baton.runner.quota.jitter`);
    Cancelled when the request is cancelled meanwhile."""
    assert then.until is not None
    now = time.time()
    if request.on_wait is not None:
        request.on_wait(f"{then.spent.why}; waiting until {quota.when(then.until, now)} (--wait-quota)")
    if request.cancel.wait(max(0.0, then.until - now)):
        raise Cancelled("cancelled while waiting for the usage quota to reset")


@tracing.traced("run")
def _run_once(
    request: RunRequest,
    settings: Settings,
    store: Store | None,
    partner: str | None,
    first_from: bool = False,
) -> RunResult:
    """One run of the key; ``partner``: the other agent of an ``on_limit`` fallback pair, whose later
    work on the thread this key takes first (``first_from``: by a hand-off when this key has no
    conversation yet)."""
    resolved = check_request(request, settings)
    tracing.note({"baton.key": str(resolved.key), "baton.agent": resolved.key.agent})
    check_free_space(settings)
    make_private_dir(settings.home)  # the first write: BATON_HOME 0700 if this run makes it
    own_store = store is None
    store = store or store_for(settings)
    try:
        operators = get_agent(resolved.key.agent, settings)  # its credential as the operator set it
        breaker = quota.Breaker.check(store, operators, os.environ)
        if partner is not None:
            resolved = _partnered(store, resolved, partner, first_from)
        lease = key_lease(settings, store, resolved.key.id)
        deadline = time.monotonic() + resolved.request.wait  # for both leases together
        waited = held(lease, resolved.request.wait, settings.heartbeat, resolved.request.cancel)
        with tracing.entered("run.lease", waited) as lost:
            run_id = request.job_id or new_run_id()  # a job's id, or the first attempt's own
            key = resolved.key
            stored = store.get_session(key.agent, key.repo.slug, key.thread)  # read once, under the lease
            with _branch_held(settings, store, resolved, stored, run_id, deadline, lost):
                last, crashed = settle(store, key, lease.proof)
                if crashed:  # settling wrote the session
                    stored = store.get_session(key.agent, key.repo.slug, key.thread)
                if request.answers is not None:
                    still_waits(last, request.answers)
                workdirs = Workdirs(settings)
                ctx = Context(resolved, settings, store, workdirs, lost, lease.proof, run_id, breaker)
                return _execute(ctx, last, stored)
    finally:
        if own_store:
            store.close()


def _branch_held(
    settings: Settings,
    store: Store,
    resolved: Resolved,
    session: SessionRecord | None,
    run_id: str,
    deadline: float,
    lost: threading.Event,
) -> contextlib.AbstractContextManager[threading.Event]:
    """Hold the lease of the branch the key's worktree is on (:func:`~baton.runner.prepare.key_branch`)
    for the rest of the run, under the key's lease: one writer per branch across keys and machines
    (:mod:`baton.store.branchlease`). Always after the key's lease, so two runs never wait on each other
    in a circle; waits what is left of ``request.wait`` (else :class:`~baton.errors.BranchBusy` naming
    the key that writes the branch), and a renewal that finds it taken over sets ``lost``, which stops
    the agent as the loss of the key's lease does. ``session``: the key's record, read under its lease."""
    key = resolved.key
    branch = key_branch(resolved.request, key, session)
    lease = branch_lease(settings, store, key.repo.slug, branch, key.id, run_id)
    wait = max(0.0, deadline - time.monotonic())
    return tracing.entered(
        "run.branch_lease", held(lease, wait, settings.heartbeat, resolved.request.cancel, on_loss=lost)
    )


def still_waits(last: RunRecord | None, answers: str) -> None:
    """NotWaiting unless the key's last turn is run ``answers`` and it asked a person: checked under the
    key's lease, so of two answers to one question (two `baton answer`s, two POSTs, a double click)
    one resumes the thread and the other is refused with nothing written."""
    if last is None or answers not in (last.run_id, last.id) or last.outcome != Outcome.NEEDS_INPUT:
        raise NotWaiting(f"run {answers}'s question is answered already, or the thread has moved on")


def _partnered(store: Store, resolved: Resolved, partner: str, first_from: bool) -> Resolved:
    """The request taking the partner's later work: the partner worked on the thread since this key
    did (a hand-back, or a fallback taking the thread again), or, with ``first_from``, this key has no
    conversation yet and the partner has one (the first hand-off)."""
    key = resolved.key
    own = store.get_session(key.agent, key.repo.slug, key.thread)
    theirs = store.get_session(partner, key.repo.slug, key.thread)
    if theirs is None or not theirs.agent_session_id:
        return resolved
    if own is None or not own.agent_session_id:
        if not first_from:
            return resolved
        return dataclasses.replace(
            resolved, request=dataclasses.replace(resolved.request, handoff_from=partner)
        )
    if theirs.last_used_at <= own.last_used_at:
        return resolved
    return dataclasses.replace(resolved, request=dataclasses.replace(resolved.request, catch_up_from=partner))


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


def _execute(ctx: Context, last: RunRecord | None, stored: SessionRecord | None) -> RunResult:
    """Prepare the key, then its attempts; ``last``: the key's last turn (the first attempt is told
    when it did not end, and what of it was left running and stopped); ``stored``: its session record
    as read under the lease."""
    prepared = prepare(ctx, stored)
    warnings = list(prepared.warnings)
    if prepared.conflicted:
        record = record_conflict(ctx, prepared)  # the agent does not start: nothing to resume on
        return RunResult(run=record, attempts=[record], session=prepared.session, warnings=warnings)
    prepared, failed = _environment(ctx, prepared)
    if failed is not None:  # its setup did not succeed: the agent does not start in an empty room
        return RunResult(run=failed, attempts=[failed], session=prepared.session, warnings=warnings)
    interrupted = last if last is not None and last.outcome.interrupted else None
    start = Start.AFTER_INTERRUPTION if interrupted else Start.FIRST
    left = last.left_running if last is not None else None
    attempts = _attempts(ctx, prepared, Attempt(1, start, interrupted, left_running=left))
    warnings += capped.crossed(ctx, attempts[-1])  # a cap this turn reached: the next one parks
    return RunResult(run=attempts[-1], attempts=attempts, session=prepared.session, warnings=warnings)


def _environment(ctx: Context, prepared: Prepared) -> tuple[Prepared, RunRecord | None]:
    """The key's environment prepared when it needs it: its services started (:mod:`baton.runner.services`),
    then its setup (:mod:`baton.runner.setup`); what they did goes on the first attempt's note and
    prompt; a service or a setup that did not succeed is the turn's recorded end. With ``environment =
    "container"`` the setup and the agent run in the repository's image (:mod:`baton.runner.inside`)."""
    if (ctx.request.environment or Environment(ctx.settings.environment)) == Environment.CONTAINER:
        # lazy: cold CLI
        from baton.runner.inside import inside

        prepared, failed = inside(ctx, prepared)
        if failed is not None:
            return prepared, failed
    if ctx.access == Access.READ:
        return prepared, None  # (a turn at read changes nothing)
    if environment.has_services(prepared.worktree):  # before the setup: it may need them
        # lazy: cold CLI
        from baton.runner.services import start_services

        prepared, failed = start_services(ctx, prepared)
        if failed is not None:
            return prepared, failed
    if not environment.wanted(prepared.worktree, ctx.request.setup):
        return prepared, None  # (no setup: none of it is imported)
    # lazy: cold CLI
    from baton.runner.setup import prepare_environment, record_failed

    done = prepare_environment(ctx, prepared)
    if done.error is not None:
        return prepared, record_failed(ctx, prepared, done)
    note = "; ".join(filter(None, [prepared.note, done.note])) or None
    return dataclasses.replace(prepared, note=note, setup_text=done.text), None


ROLLS_OVER = (Outcome.SESSION_LOST, Outcome.CONTEXT_FULL)  # attempts followed at once by a recover


def _attempts(ctx: Context, prepared: Prepared, attempt: Attempt) -> list[RunRecord]:
    """Attempts until one ends for good: a lost conversation, or one the model refused as longer than
    its window, is recovered at once, once (no retry used up: the agent did no work), a retryable
    outcome is retried after a growing delay (``retry_backoff``, doubling; :mod:`baton.retry`),
    ``request.retries`` times at most; a cancel ends the wait."""
    request = ctx.request
    attempts: list[RunRecord] = []
    decision = _opening(ctx, prepared, attempt)

    def one() -> RunRecord:
        nonlocal attempt, decision
        while True:
            # a thread at a spending cap parks before its agent starts (needs_input, never retried)
            record = capped.park(ctx, prepared, attempt) or run_attempt(
                ctx, prepared, decision or decide(ctx, prepared, attempt), attempt, capped.WireHold(ctx)
            )
            attempts.append(record)
            decision = None
            # a lost conversation, one this attempt quarantined, or one the model refused as too long
            # starts anew with a recap, once
            quarantined = _quarantined(ctx, record)
            if (record.outcome not in ROLLS_OVER and not quarantined) or attempt.forced == Mode.RECOVER:
                return record
            attempt = attempt.retry(record, forced=Mode.RECOVER)
            if quarantined:
                attempt = dataclasses.replace(attempt, lost=quarantined)

    def again(record: RunRecord) -> bool:
        if not record.outcome.retryable or request.cancel.is_set():
            return False
        # the key is someone else's now, or the agent could not even start
        return not (ctx.lost.is_set() or (record.exit_code is None and record.outcome == Outcome.FAILED))

    def next_attempt(state: retry.RetryCallState) -> None:
        nonlocal attempt
        attempt = attempt.retry(attempts[-1])

    with contextlib.suppress(retry.Stopped):  # cancelled while waiting to try again
        retry.Retrying(
            retry=retry.retry_if_result(again),
            wait=retry.growing(ctx.settings.retry_backoff),
            stop=retry.stop_after_attempt(request.retries + 1),
            before_sleep=next_attempt,
            sleep=retry.cancellable(request.cancel),
            retry_error_callback=lambda _state: None,  # out of retries: the last attempt stands
        )(one)
    return attempts


def _quarantined(ctx: Context, record: RunRecord) -> str | None:
    """The note when ``record`` (a resume that failed at once) quarantined its conversation."""
    if record.mode != Mode.RESUME or record.session_id_in is None or record.outcome != Outcome.FAILED:
        return None
    return quarantine.check(ctx, record.session_id_in)


def _opening(ctx: Context, prepared: Prepared, attempt: Attempt) -> Decision | None:
    """The first attempt's decision when preparing made it (a fork, a hand-off); a hand-off starts a
    new conversation, which is told the key's interrupted last turn (its agent had none to resume)."""
    first = prepared.first
    if first is None or first.kind != PromptKind.HANDOFF or attempt.interrupted is None:
        return first
    told = told_new(ctx, attempt, follow_up(ctx, attempt))
    return dataclasses.replace(
        first, reason=told["reason"], previous=told["previous"], cut_short=told.get("cut_short", ())
    )
