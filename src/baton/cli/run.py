"""``baton run``: one instruction on one key, resuming its conversation.

The Typer command and what it does once the request is parsed (:func:`execute`): run it with
SIGINT/SIGTERM as its cancel, print the result, answer the outcome's exit code. ``--wait-quota`` waits
for a spent quota's reset in this process (a queued run waits in its executor instead).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from baton.cli.common import JsonOpt, repository_egress
from baton.cli.interrupts import interrupted
from baton.cli.options import request_command
from baton.cli.render import emit_json, err, esc, out, say
from baton.errors import exit_code_of
from baton.models import Outcome, iso
from baton.runner.request import RunRequest
from baton.settings import load_settings

if TYPE_CHECKING:
    from baton.models import RunRecord, SessionRecord
    from baton.runner.request import EventCallback, RunResult
    from baton.settings import Settings

WaitQuotaOpt = Annotated[
    bool,
    typer.Option(
        "--wait-quota",
        help="a spent usage quota: wait for its reset (saying until when) and run again, instead of "
        "exiting 75",
    ),
]


@request_command()
def run_cmd(request: RunRequest, as_json: JsonOpt = False, wait_quota: WaitQuotaOpt = False) -> None:
    """Run one instruction on one key, resuming its conversation."""
    if wait_quota:
        request.wait_quota, request.on_wait = True, _tell_waiting
    raise typer.Exit(execute(request, as_json))


def _tell_waiting(message: str) -> None:
    """Why and until when ``--wait-quota`` waits, on standard error (stdout stays the result's)."""
    say(message, to_err=True)


T = TypeVar("T")


def execute(request: RunRequest, as_json: bool) -> int:
    """Run ``request``, print its result (JSON with ``as_json``) and return the outcome's exit code.

    It opens no store of its own: :func:`baton.runner.run.run` opens the SQL store once the request is
    checked, and the printed result reads the run's short id from it again (one engine per URL and
    process). That engine's connections are closed before this returns."""
    settings = load_settings()
    repository_egress(settings, request)
    told: list[str] = []  # the attempt whose answer was printed as soon as its run was recorded
    if not as_json:
        request.on_ended = _answer_early(request.on_ended, settings, told)
    try:
        result = _with_cancel(request.cancel, lambda: _run_with_status(request, as_json, settings))
        if as_json:
            emit_json(result.to_json())
        else:
            _print_result(result, settings, answered=result.run.id in told)
    finally:
        engine = sys.modules.get("baton.store.engine")  # not imported: no store was opened
        if engine is not None:
            engine.dispose_engine(settings.resolved_store_url)
    return exit_code_of(result.run.outcome)


def _with_cancel(cancel: threading.Event, work: Callable[[], T]) -> T:
    """SIGINT/SIGTERM cancel the run cleanly (the agent's group is killed, the outcome recorded)."""

    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    if interrupted():  # a Ctrl-C during the start-up that an import swallowed
        cancel.set()
    try:
        return work()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_with_status(request: RunRequest, quiet: bool, settings: Settings) -> RunResult:
    # lazy: cold CLI
    from baton.runner.run import run

    # isatty first: a pipe (a dispatcher's) never shows progress, and Rich is then not imported
    # before the agent starts
    if quiet or not sys.stderr.isatty() or not err().is_terminal:
        return run(request, settings)
    with err().status(esc(f"{request.agent} on {request.thread}: starting")) as status:
        request.on_start = lambda r: status.update(
            esc(f"{r.agent} on {r.thread}: {r.mode.value} run {r.run_id[-8:]}, attempt {r.attempt}")
        )
        request.on_event = _model_line(status.update, request.on_event)
        then = request.on_ended
        if then is not None:  # the spinner goes before the answer is printed under it

            def ended(record: RunRecord, session: SessionRecord) -> None:
                status.stop()
                then(record, session)

            request.on_ended = ended
        return run(request, settings)


def _model_line(show: Callable[[str], None], then: EventCallback | None) -> EventCallback:
    """An ``on_event`` that shows what the agent says of its model API as it retries (``baton.model``
    events: "waiting for the model at URL: connection failed, retry 3") on the status line, then
    calls ``then``."""

    def on_event(record: RunRecord, event: dict[str, Any]) -> None:
        if event.get("type") == "baton.model":
            show(esc(f"{record.agent} on {record.thread}: {event.get('text')}"))
        if then is not None:
            then(record, event)

    return on_event


def _answer_early(
    then: Callable[[RunRecord, SessionRecord], None] | None, settings: Settings, told: list[str]
) -> Callable[[RunRecord, SessionRecord], None]:
    """An ``on_ended`` that prints a success's answer (standard output's part of the result) as soon
    as its run is recorded, before its snapshot and checkpoint; the notes and warnings follow at the
    end (:func:`_print_result` with ``answered``)."""

    def ended(record: RunRecord, session: SessionRecord) -> None:
        _print_answer(record, session, record.run_id, settings)
        sys.stdout.flush()
        told.append(record.id)
        if then is not None:
            then(record, session)

    return ended


def _print_result(result: RunResult, settings: Settings, answered: bool = False) -> None:
    """The result as people read it; ``answered``: its standard output's part was printed already."""
    r = result.run
    if not answered:
        _print_answer(r, result.session, result.run_id, settings)
    if r.outcome == Outcome.NEEDS_INPUT:
        _print_question(r)
    if r.note:
        say(f"note: {r.note}", to_err=True)
    if r.error:
        say(f"error: {r.error}", to_err=True)
    for warning in result.warnings:
        say(f"warning: {warning}", to_err=True)


def _print_answer(r: RunRecord, session: SessionRecord, run_id: str, settings: Settings) -> None:
    """The outcome line, the worktree and the agent's answer (standard output)."""
    # lazy: cold CLI
    from baton.runner.runids import short_id
    from baton.store import store_for

    store = store_for(settings)  # the run's engine, opened already
    try:
        shown = short_id(store, run_id)
    finally:
        store.close()
    rest = (
        f"  run {shown}  {r.agent}:{r.repo}:{r.thread}  mode={r.mode.value} attempt={r.attempt} "
        f"session={session.agent_session_id}"
    )
    if sys.stdout.isatty():  # the outcome in colour
        colors = {Outcome.SUCCEEDED: "green", Outcome.RATE_LIMITED: "blue"}  # waiting is no failure
        color = colors.get(r.outcome, "red")
        out().print(f"[{color}]{r.outcome.value}[/{color}]{esc(rest)}", highlight=False)
    else:
        say(r.outcome.value + rest)
    say(f"worktree: {session.worktree}  ({r.duration_s} s)")
    if r.outcome == Outcome.RATE_LIMITED and r.resets_at:
        say(f"resets at: {iso(r.resets_at)} (exit 75; --wait-quota waits for it)")
    if r.result:
        say(r.result)


def _print_question(r: RunRecord) -> None:
    """The question a turn asked, and how to answer it (exit 7)."""
    # lazy: cold CLI
    from baton.asking.questions import Question
    from baton.caps.parked import of_run

    question = Question.from_json(r.question)
    shown = question.shown() if question else "(the question could not be read)"
    if of_run(r) is not None:  # baton's question: the thread is at a spending cap (its text says how on)
        how = "its agent did not start" if r.agent_pid is None else "its agent was stopped at a model request"
        say(f"the thread is parked at a spending cap (exit 7; {how}):")
        say(shown)
        return
    say("the agent asks (exit 7; the thread waits for an answer):")
    say(shown)
    say(f"answer it with: baton answer -a {r.agent} -r {r.repo} -t {r.thread} 'YOUR ANSWER'", to_err=True)
