"""``baton run``: one instruction on one key, resuming its conversation."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from baton.cli.common import JsonOpt, emit_json, err, esc, out
from baton.cli.options import request_command
from baton.errors import exit_code_of
from baton.models import Outcome
from baton.runner.request import RunRequest

if TYPE_CHECKING:
    from baton.runner.request import RunResult
    from baton.store.base import Store

T = TypeVar("T")


@request_command()
def run_cmd(request: RunRequest, as_json: JsonOpt = False) -> None:
    """Run one instruction on one key, resuming its conversation."""
    result = _with_cancel(request.cancel, lambda: _run_with_status(request, quiet=as_json))
    if as_json:
        emit_json(result.to_json())
    else:
        _print_result(result)
    raise typer.Exit(exit_code_of(result.run.outcome))


def _with_cancel(cancel: threading.Event, work: Callable[[], T]) -> T:
    """SIGINT/SIGTERM cancel the run cleanly (the agent's group is killed, the outcome recorded)."""

    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return work()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_with_status(request: RunRequest, quiet: bool) -> RunResult:
    from baton.runner.run import run

    if quiet or not err().is_terminal:
        return run(request)
    with err().status(esc(f"{request.agent} on {request.thread}: starting")) as status:
        request.on_start = lambda r: status.update(
            esc(f"{r.agent} on {r.thread}: {r.mode.value} run {r.run_id[-8:]}, attempt {r.attempt}")
        )
        return run(request)


def _print_result(result: RunResult) -> None:
    from baton.runner.runids import short_id
    from baton.settings import load_settings
    from baton.store import open_store

    r = result.run
    store: Store = open_store(load_settings().resolved_store_url)
    try:
        run_id = short_id(store, result.run_id)
    finally:
        store.close()
    color = "green" if r.outcome == Outcome.SUCCEEDED else "red"
    out().print(
        f"[{color}]{r.outcome.value}[/{color}]  run {esc(run_id)}  {esc(f'{r.agent}:{r.repo}:{r.thread}')}  "
        f"mode={r.mode.value} attempt={r.attempt} session={esc(result.session.agent_session_id)}",
        highlight=False,
    )
    out().print(f"worktree: {esc(result.session.worktree)}  ({r.duration_s} s)", highlight=False)
    if r.result:
        out().print(r.result, highlight=False, markup=False)
    if r.note:
        err().print(f"note: {r.note}", highlight=False, markup=False)
    if r.error:
        err().print(f"error: {r.error}", highlight=False, markup=False)
    for warning in result.warnings:
        err().print(f"warning: {warning}", highlight=False, markup=False)
