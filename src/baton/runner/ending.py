"""How a turn ended, before it is written down (:class:`Ending`): its outcome from the agent's process
(:func:`classify`: a limit, a lost model, a timeout, a cancel, then the agent's own words: a full
context window, a usage limit, a conversation it silently replaced), a question it asked a person
(:func:`asked`), and the permissions it was refused as one (:func:`refused_question`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton.agents import Agent, Turn, clean_error
from baton.agents.limits import Limit, LimitKind
from baton.asking import questions
from baton.asking.questions import Question
from baton.models import Mode, OnPermission, Outcome
from baton.runner.modelwatch import ModelWatch
from baton.runner.process import ProcessResult
from baton.runner.state import KEPT, Context, Decision


@dataclass
class Ending:
    """How an attempt ended, before it is written down."""

    outcome: Outcome
    error: str | None = None
    exit_code: int | None = None
    reaped: int | None = None  # processes that outlived the agent's own, ended (None: it never started)
    left_running: str | None = None  # what they were
    limit: Limit | None = None  # the usage limit the turn met (rate_limited; a transient one: failed)
    resets_at: float | None = None  # rate_limited: when runs of its credential may start again
    question: Question | None = None  # needs_input: what the agent asked
    parked: dict[str, Any] | None = None  # needs_input at a spending cap: baton's question (caps.words)


def classify(
    ctx: Context, decision: Decision, result: ProcessResult, turn: Turn, watch: ModelWatch
) -> Ending:
    agent = ctx.agent
    if result.reaped.limit:  # a limit of the run struck: the kernel or baton stopped its processes
        said = result.reaped.limit.removesuffix("; the conversation is kept")
        return Ending(Outcome.LIMITED, f"{said}; {KEPT}", result.exit_code)
    if result.stopped:  # its model API could not be reached (baton.runner.modelwatch)
        return Ending(Outcome.FAILED, result.stopped, result.exit_code)
    if result.timed_out:
        resolved = ctx.resolved
        why = (
            f"stopped after {resolved.idle_timeout:g} s without output (idle timeout)"
            if result.idle and resolved.idle_timeout
            else f"stopped after the {resolved.timeout or 0:g} s run timeout"
        )
        last = watch.last_error or (turn.errors[-1] if turn.errors else None)
        said = f" (the agent last reported: {last})" if last else ""
        return Ending(Outcome.TIMED_OUT, f"{why}{said}; {KEPT}", result.exit_code)
    if ctx.lost.is_set():
        return Ending(
            Outcome.CANCELLED, f"stopped: another runner took over the lease of {ctx.key}", result.exit_code
        )
    if result.cancelled:
        return Ending(Outcome.CANCELLED, f"cancelled; {KEPT}", result.exit_code)
    outcome = agent.classify(result.exit_code, turn, result.stderr)
    if outcome == Outcome.FAILED and (refused := agent.context_full(result.exit_code, turn, result.stderr)):
        error = f"the model refused the conversation as longer than its context window: {refused}"
        return Ending(Outcome.CONTEXT_FULL, error, result.exit_code)  # the run rolls over (baton.runner.run)
    limited = _limited(agent, outcome, result, turn)
    if limited is not None:
        return limited
    if (
        outcome == Outcome.SUCCEEDED
        and decision.mode == Mode.RESUME
        and agent.capabilities.resume_keeps_id
        and turn.session_id not in (None, decision.session_id)
    ):
        # The CLI silently started a NEW conversation (Codex does when it cannot find the id):
        # that is a lost session, never a success on the old one.
        error = f"asked to resume {decision.session_id}, the agent started {turn.session_id} instead"
        return Ending(Outcome.SESSION_LOST, error, result.exit_code)
    if outcome == Outcome.SUCCEEDED:
        return Ending(outcome, None, result.exit_code)
    unreached = watch.unreached() if outcome == Outcome.FAILED else None  # behind baton's model gateway
    return Ending(outcome, unreached or failure(ctx.key.agent, result, turn), result.exit_code)


def failure(agent: str, result: ProcessResult, turn: Turn) -> str:
    """Why a turn failed: the errors it reported, else the last stderr lines that are not the CLI's
    noise (which would push the real cause out); a clean exit that never ended its turn says so first
    (its stderr is then often only the CLI's noise)."""
    stderr = clean_error(agent, result.stderr)
    lines = turn.errors or [line for line in stderr.splitlines() if line.strip()][-3:]
    if result.exit_code == 0 and turn.result is None and not turn.errors:
        lines = ["the agent exited with code 0 without ending its turn (no result)", *lines]
    return "; ".join(lines) or f"the agent exited with code {result.exit_code}"


def asked(ending: Ending, question: Question | None) -> Ending:
    """A turn whose agent asked a person (``ask_human``) and then ended its turn — or failed after
    asking — ends ``needs_input`` with the question: never retried, the thread waits for an answer.
    A turn cut short (timeout, cancel, a limit) keeps that outcome; its question is dropped."""
    if question is None or ending.outcome not in (Outcome.SUCCEEDED, Outcome.FAILED):
        return ending
    return Ending(Outcome.NEEDS_INPUT, None, ending.exit_code, question=question)


def refused_question(ctx: Context, turn: Turn) -> Question | None:
    """With ``on_permission = "ask"``, the permissions the agent was refused, as a question."""
    if ctx.request.on_permission != OnPermission.ASK or not turn.refused:
        return None
    return questions.refused(turn.refused, ctx.access.value)


def _limited(agent: Agent, outcome: Outcome, result: ProcessResult, turn: Turn) -> Ending | None:
    """A turn that met a usage limit (:mod:`baton.agents.limits`): ``rate_limited`` for a spent quota,
    ``failed`` (retried with backoff) for a transient one; None when it met none, or went through
    anyway (a success with output, a lost conversation)."""
    if outcome not in (Outcome.FAILED, Outcome.SUCCEEDED):
        return None
    limit = agent.usage_limit(result.exit_code, turn, result.stderr)
    if limit is None or (outcome == Outcome.SUCCEEDED and turn.usage.get("output_tokens")):
        return None
    if limit.kind == LimitKind.EXHAUSTED:
        return Ending(Outcome.RATE_LIMITED, limit.detail, result.exit_code, limit=limit)
    if outcome == Outcome.SUCCEEDED:
        return None
    said = f": {limit.detail}" if limit.detail else ""
    why = f"rate limited (a transient limit, retried with backoff){said}"
    return Ending(Outcome.FAILED, why, result.exit_code, limit=limit)
