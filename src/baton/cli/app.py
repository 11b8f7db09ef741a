"""The ``baton`` Typer app: every command group, registered in one place.

A new group (``serve``, ``tokens``, ``sweep``, ``du``, ``worker``, ``submit``) is a module beside
these and one line here. Command modules import the core inside their commands, so building this app
(which ``--help`` does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from baton.cli.answer import answer_cmd
from baton.cli.budget import budget_cmd
from baton.cli.common import EXIT_CODES
from baton.cli.demo import demo_cmd
from baton.cli.doctor import agents_cmd, doctor_cmd
from baton.cli.forge import forge_app
from baton.cli.homes import homes_app
from baton.cli.housekeeping import du_cmd, sweep_cmd
from baton.cli.plan import plan_app
from baton.cli.quota import quota_app
from baton.cli.run import run_cmd
from baton.cli.runs import runs_app
from baton.cli.serve import serve_cmd
from baton.cli.sessions import sessions_app
from baton.cli.submit import submit_cmd
from baton.cli.sync import sync_cmd
from baton.cli.tokens import audit_cmd, tokens_app
from baton.cli.worker import worker_cmd

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter  # Typer's own copy of Click

EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


class Group(TyperGroup):
    """A command group whose help lists each command with its first sentence whole: Click cuts it to
    the room left on an 80-column line (``Queue one instruction on one key for `baton worker`s
    and...``); here it wraps onto the next lines instead."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=WHOLE)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


WHOLE = 10_000  # characters: more than any first sentence

app = typer.Typer(
    cls=Group,
    help="Durable conversations and durable workdirs for coding agents.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Click's plain help: Typer's Rich help costs ~80 ms of imports on every `--help` and renders
    # boolean flags as `--json <bool>` (a Typer 0.29 bug); the plain help has neither problem.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"baton {version('agent-baton')}")
        raise typer.Exit(0)


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Durable conversations and durable workdirs for coding agents."""


app.command("run", epilog=EPILOG)(run_cmd)
app.command("submit", epilog=EPILOG)(submit_cmd)
app.command("answer", epilog=EPILOG)(answer_cmd)
app.command("budget")(budget_cmd)
app.add_typer(sessions_app, name="sessions")
app.add_typer(runs_app, name="runs")
app.add_typer(plan_app, name="plan")
app.command("agents")(agents_cmd)
app.command("doctor")(doctor_cmd)
app.add_typer(homes_app, name="homes")
app.command("demo")(demo_cmd)
app.command("serve")(serve_cmd)
app.command("worker")(worker_cmd)
app.add_typer(tokens_app, name="tokens")
app.add_typer(forge_app, name="forge")
app.command("audit")(audit_cmd)
app.command("sweep")(sweep_cmd)
app.command("du")(du_cmd)
app.command("sync")(sync_cmd)
app.add_typer(quota_app, name="quota")
for _group in app.registered_groups:  # every group's help lists its commands as the app's does
    _group.cls = Group
