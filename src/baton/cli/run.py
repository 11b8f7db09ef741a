"""``baton run``: one instruction on one key, resuming its conversation.

The Typer command; what it does once the request is parsed is :func:`baton.cli.running.execute`,
which the fast path of :mod:`baton.cli.fast` calls as well.
"""

from __future__ import annotations

import typer

from baton.cli.common import JsonOpt
from baton.cli.options import request_command
from baton.cli.running import execute
from baton.runner.request import RunRequest


@request_command()
def run_cmd(request: RunRequest, as_json: JsonOpt = False) -> None:
    """Run one instruction on one key, resuming its conversation."""
    raise typer.Exit(execute(request, as_json))
