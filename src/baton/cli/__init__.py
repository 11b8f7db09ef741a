"""The ``baton`` command line: thin. Each command parses, calls one core function, prints.

One module per command group (``run``, ``sessions``, ``runs``, ``plan``, ``homes``, ``doctor`` with
``agents``, ``demo``); this module assembles them into one Typer app and turns errors into exit codes.
Tables for people, ``--json`` for scripts. Exit codes: 0 succeeded, 1 the agent failed or timed out,
2 bad input, 3 busy, 130 cancelled. Any :class:`BatonError` becomes one clean line on stderr.
"""

from __future__ import annotations

import sys

import typer

from baton.cli.common import err
from baton.cli.demo import demo_cmd
from baton.cli.doctor import agents_cmd, doctor_cmd
from baton.cli.homes import homes_app
from baton.cli.plan import plan_app
from baton.cli.run import run_cmd
from baton.cli.runs import runs_app
from baton.cli.sessions import sessions_app
from baton.errors import BatonError

app = typer.Typer(
    help="Durable conversations and durable workdirs for coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run_cmd)
app.add_typer(sessions_app, name="sessions")
app.add_typer(runs_app, name="runs")
app.add_typer(plan_app, name="plan")
app.command("agents")(agents_cmd)
app.command("doctor")(doctor_cmd)
app.add_typer(homes_app, name="homes")
app.command("demo")(demo_cmd)


def main() -> None:
    try:
        app()
    except BatonError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
