"""``baton run``: one instruction on one key, resuming its conversation.

The Typer command; what it does once the request is parsed is :func:`baton.cli.running.execute`,
which the fast path of :mod:`baton.cli.fast` calls as well. ``--wait-quota`` is this command's own
(a queued run waits for a quota in its executor, not in a process): the fast path does not know it,
so a run with it is always parsed here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from baton.cli.common import JsonOpt
from baton.cli.options import request_command
from baton.cli.running import execute
from baton.runner.request import RunRequest

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
    from baton.cli.render import say

    say(message, to_err=True)
